// Package portal holds the handlers of the signed-in portal: sign-in, TOTP,
// enrolment, account and the developer settings. Every route here sits
// behind CSRF protection and the server-side session; handlers translate
// HTTP to calls into the domain packages and render views.
package portal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"keyward/views"
	"keyward/web/apikey"
	"keyward/web/audit"
	"keyward/web/auth"
	"keyward/web/errs"
	"keyward/web/org"
	"keyward/web/problem"
	"keyward/web/session"
	"keyward/web/usage"
	"keyward/web/webhook"
)

// Handler carries the portal's dependencies: services, never the store.
type Handler struct {
	Sessions *session.Store
	Auth     *auth.Service
	Keys     *apikey.Service
	Org      *org.Service
	Webhooks *webhook.Service
	Logs     *usage.Reader
	Audit    *audit.Log
	Now      func() time.Time
	// Log takes what cannot reach the client any more, such as an export
	// cut short.
	Log *slog.Logger
	// Secure marks cookies Secure (production, behind TLS).
	Secure bool
	// BaseURL is the public URL, for the snippets on the reveal page.
	BaseURL string
}

// getAndHead: every page answers HEAD as it answers GET, as HTTP asks of
// every GET resource; echo adds no HEAD route by itself. The server sends
// a HEAD answer's status and headers and drops its body.
var getAndHead = []string{http.MethodGet, http.MethodHead}

// InviteRoute is where an invitation link points. Its path holds the
// invitation's secret, so the request log writes it without the token.
const InviteRoute = "/invite/:token"

// bodyLimit bounds every portal request, forms and console JSON alike.
const bodyLimit = 64 << 10

// Register mounts the portal routes on e.
func (h *Handler) Register(e *echo.Echo) {
	stack := []echo.MiddlewareFunc{
		problem.BodyLimit(bodyLimit),
		noStore,
		fetchMetadata,
		middleware.CSRFWithConfig(middleware.CSRFConfig{
			TokenLookup:    "header:" + echo.HeaderXCSRFToken + ",form:csrf_token",
			ContextKey:     ctxCSRF,
			CookieName:     h.csrfCookie(),
			CookiePath:     "/",
			CookieMaxAge:   12 * 3600,
			CookieHTTPOnly: true,
			CookieSecure:   h.Secure,
			CookieSameSite: http.SameSiteLaxMode,
			// A typed error, so the one error table knows it without
			// reading echo's message.
			ErrorHandler: func(err error, c echo.Context) error { return problem.ErrCSRF },
		}),
		h.loadSession,
	}
	// The console JSON routes share the portal's session and CSRF stack, and
	// refuse anything carrying an API key before even that.
	console := e.Group("/api/v1/orgs", append([]echo.MiddlewareFunc{rejectAPIKeys}, append(stack, h.requireConsoleManager)...)...)
	console.POST("/api-key/generate", h.handleConsoleGenerate)
	console.POST("/api-key/rotate", h.handleConsoleRotate)
	console.Match(getAndHead, "/api-key", h.handleConsoleGet)
	console.DELETE("/api-key", h.handleConsoleRevoke)

	g := e.Group("", stack...)
	g.Match(getAndHead, "/", h.handleHome)
	g.Match(getAndHead, "/login", h.handleLoginForm)
	g.POST("/login", h.handleLogin)
	g.POST("/logout", h.handleLogout)
	g.Match(getAndHead, InviteRoute, h.handleInviteForm)
	g.POST(InviteRoute, h.handleInviteAccept)

	pw := g.Group("", h.requirePasswordStage)
	pw.Match(getAndHead, "/login/totp", h.handleTOTPForm)
	pw.POST("/login/totp", h.handleTOTP)
	pw.Match(getAndHead, "/mfa/enroll", h.handleEnrollForm)
	pw.POST("/mfa/enroll", h.handleEnroll)

	in := g.Group("", h.requireSignedIn)
	in.Match(getAndHead, "/account", h.handleAccount)
	in.POST("/account/password", h.handlePasswordChange)
	in.Match(getAndHead, "/settings/developers/api-keys", h.handleKeysList)
	in.Match(getAndHead, "/settings/developers/api-keys/:id", h.handleKeyDetail)
	in.Match(getAndHead, "/settings/developers/api-logs", h.handleAPILogs)
	in.Match(getAndHead, "/settings/developers/audit-log", h.handleAuditLog)
	in.Match(getAndHead, "/settings", h.handleSettings)
	in.Match(getAndHead, "/settings/developers", h.handleDevelopers)
	in.Match(getAndHead, "/settings/team", h.handleTeam)
	in.POST("/account/sessions/others", h.handleEndOtherSessions)
	in.POST("/account/recovery-codes", h.handleRecoveryCodes)
	in.Match(getAndHead, "/account/authenticator", h.handleReplaceForm)
	in.POST("/account/authenticator", h.handleReplaceStart)
	in.POST("/account/authenticator/confirm", h.handleReplaceConfirm)
	owner := in.Group("", h.requireOwner)
	owner.POST("/settings/team/invitations", h.handleInvite)
	owner.POST("/settings/team/invitations/:id/revoke", h.handleRevokeInvitation)
	owner.Match(getAndHead, "/settings/team/members/:id", h.handleMember)
	owner.POST("/settings/team/members/:id/role", h.handleMemberRole)
	owner.POST("/settings/team/members/:id/disable", h.handleMemberDisable)
	owner.POST("/settings/team/members/:id/enable", h.handleMemberEnable)
	owner.POST("/settings/team/members/:id/reset-mfa", h.handleMemberResetMFA)
	owner.Match(getAndHead, "/settings/organization", h.handleOrg)
	owner.POST("/settings/organization", h.handleOrgSave)
	owner.Match(getAndHead, "/settings/developers/webhooks", h.handleWebhooks)
	owner.POST("/settings/developers/webhooks", h.handleWebhookCreate)
	owner.Match(getAndHead, "/settings/developers/webhooks/:id", h.handleWebhook)
	owner.POST("/settings/developers/webhooks/:id", h.handleWebhookUpdate)
	owner.POST("/settings/developers/webhooks/:id/delete", h.handleWebhookDelete)
	owner.POST("/settings/developers/webhooks/:id/test", h.handleWebhookTest)
	in.Match(getAndHead, "/settings/developers/api-logs/:rid", h.handleAPILog)
	ops := in.Group("", h.requireManager)
	ops.Match(getAndHead, "/settings/developers/api-keys/new", h.handleKeyNew)
	ops.POST("/settings/developers/api-keys", h.handleKeyCreate)
	ops.Match(getAndHead, "/settings/developers/api-keys/:id/edit", h.handleKeyEdit)
	ops.POST("/settings/developers/api-keys/:id", h.handleKeyUpdate)
	ops.POST("/settings/developers/api-keys/:id/rotate", h.handleKeyRotate)
	ops.POST("/settings/developers/api-keys/:id/disable", h.handleKeyDisable)
	ops.POST("/settings/developers/api-keys/:id/enable", h.handleKeyEnable)
	ops.POST("/settings/developers/api-keys/:id/revoke", h.handleKeyRevoke)
	ops.POST("/settings/developers/api-keys/:id/end-grace", h.handleKeyEndGrace)
}

// csrfCookie names the CSRF cookie. In production it is a __Host- cookie,
// which a sibling subdomain cannot set: that closes the usual hole in
// double-submit tokens.
func (h *Handler) csrfCookie() string {
	if h.Secure {
		return "__Host-kw_csrf"
	}
	return "kw_csrf"
}

// dropCSRFToken expires the CSRF cookie; the next page issues a new token.
// Sign-in and sign-out call it so a token never spans two identities.
func (h *Handler) dropCSRFToken(c echo.Context) {
	c.SetCookie(&http.Cookie{Name: h.csrfCookie(), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: h.Secure, SameSite: http.SameSiteLaxMode})
}

// ctxCSRF is where echo's CSRF middleware leaves the token (its contract,
// a string key); csrfToken reads it into the typed state.
const ctxCSRF = "csrf"

// stateKey is the typed context key of the portal's request state.
type stateKey struct{}

// state is what the session says about the request.
type state struct {
	sess   *sessions.Session
	csrf   string
	user   *auth.User   // set once the password was checked
	tenant *auth.Tenant // the user's tenant
	mfa    bool         // the second factor was checked too
}

// getState returns the request's state. A route without loadSession is a
// wiring mistake, reported as such rather than as a nil dereference.
func getState(c echo.Context) *state {
	st, ok := c.Request().Context().Value(stateKey{}).(*state)
	if !ok {
		panic("portal: no session state for " + c.Path() + ": the route is missing the loadSession middleware")
	}
	return st
}

// caller is the signed-in user acting through this request.
func caller(c echo.Context) auth.Caller {
	st := getState(c)
	if st.user == nil {
		panic("portal: caller on " + c.Path() + " without a signed-in user: the route is missing requireSignedIn")
	}
	return auth.Caller{User: *st.user, Tenant: *st.tenant, Origin: origin(c)}
}

func origin(c echo.Context) auth.Origin {
	return auth.Origin{IP: c.RealIP(), UserAgent: c.Request().UserAgent()}
}

// loadSession reads the session and its user. A disabled user's sessions
// end on their next request, as well as at the moment of disablement.
func (h *Handler) loadSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		sess, err := h.Sessions.Get(r, session.CookieName)
		if err != nil {
			return err
		}
		st := &state{sess: sess}
		st.csrf, _ = c.Get(ctxCSRF).(string)
		if uid, ok := sess.Values[session.KeyUserID].(int64); ok {
			u, t, err := h.Auth.Session(r.Context(), uid)
			switch {
			case errors.Is(err, auth.ErrSessionEnded):
				if err := h.Sessions.Destroy(r, c.Response(), sess); err != nil {
					return err
				}
				st.sess, _ = h.Sessions.New(r, session.CookieName)
			case err != nil:
				return err
			default:
				st.user, st.tenant = &u, &t
				st.mfa, _ = sess.Values[session.KeyMFA].(bool)
			}
		}
		c.SetRequest(r.WithContext(context.WithValue(r.Context(), stateKey{}, st)))
		return next(c)
	}
}

// done ends a successful POST: a 303 to the page that shows the result,
// with a flash message kept in the session for that page, shown once.
func (h *Handler) done(c echo.Context, to, flash string) error {
	st := getState(c)
	st.sess.Values[session.KeyFlash] = to + "\x00" + flash
	if err := st.sess.Save(c.Request(), c.Response()); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, to)
}

// takeFlash returns the flash meant for this page and forgets it. Only a
// GET of the page the change redirected to takes it: another tab's request,
// an error page or a JSON call leave it for its page. Forgetting it is
// saved at once; if that fails, the worst is that it shows again.
func takeFlash(c echo.Context, st *state) string {
	v, _ := st.sess.Values[session.KeyFlash].(string)
	to, msg, ok := strings.Cut(v, "\x00")
	if !ok || c.Request().Method != http.MethodGet || to != c.Request().URL.Path {
		return ""
	}
	delete(st.sess.Values, session.KeyFlash)
	_ = st.sess.Save(c.Request(), c.Response())
	return msg
}

// formError turns a service's error into what a form shows: the status,
// a summary and each field's message. ok is false for errors a form does
// not show (not found, internal), which go to the error page instead.
func formError(c echo.Context, err error) (p problem.P, fields map[string]string, ok bool) {
	e, isErr := errs.As(err)
	if !isErr {
		return problem.P{}, nil, false
	}
	switch e.Kind {
	case errs.Invalid, errs.Conflict, errs.Unauthorized, errs.Throttled, errs.Unavailable:
	default:
		return problem.P{}, nil, false
	}
	p = problem.Of(err)
	problem.SetRetryAfter(c.Response().Header(), p.RetryAfter)
	fields = make(map[string]string, len(p.Fields))
	for _, f := range p.Fields {
		fields[f.Name] = f.Message
	}
	if e.Kind == errs.Throttled {
		fields["code"] = p.Message
	}
	if len(p.Fields) > 1 { // each message stands next to its field
		p.Message = fmt.Sprintf("%d fields need fixing: each says what is wrong next to it.", len(p.Fields))
	}
	return p, fields, true
}

// next returns where a partly signed-in user must go now.
func (st *state) nextStep() string {
	switch {
	case st.user == nil:
		return "/login"
	case !st.user.TOTPEnrolled:
		return "/mfa/enroll"
	case !st.mfa:
		return "/login/totp"
	case st.user.MustChangePassword:
		return "/account"
	}
	return "/settings/developers/api-keys"
}

// requireSignedIn lets through only users past both factors. A user still
// holding a one-time password is kept on the account page until they set
// their own.
func (h *Handler) requireSignedIn(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		st := getState(c)
		if st.user == nil || !st.mfa || !st.user.TOTPEnrolled {
			return c.Redirect(http.StatusSeeOther, st.nextStep())
		}
		if st.user.MustChangePassword && c.Path() != "/account" && c.Path() != "/account/password" {
			return c.Redirect(http.StatusSeeOther, "/account")
		}
		return next(c)
	}
}

// requirePasswordStage admits users whose password was checked but who have
// not finished the second factor.
func (h *Handler) requirePasswordStage(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		st := getState(c)
		if st.user == nil || st.mfa {
			return c.Redirect(http.StatusSeeOther, st.nextStep())
		}
		return next(c)
	}
}

// noStore keeps portal pages, which may show recovery codes or keys, out
// of every cache.
func noStore(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
		return next(c)
	}
}

// fetchMetadata refuses state-changing requests that a browser marks as
// cross-site, then removes the header so echo's CSRF middleware always
// checks the token too (it would otherwise accept a same-origin request on
// the header alone, and scripts rely on the token contract).
func fetchMetadata(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		site := r.Header.Get(echo.HeaderSecFetchSite)
		if site == "cross-site" && r.Method != http.MethodGet && r.Method != http.MethodHead {
			return problem.ErrCSRF
		}
		r.Header.Del(echo.HeaderSecFetchSite)
		return next(c)
	}
}

// meta is the per-request page model.
func meta(c echo.Context, title, nav string) views.Meta {
	m := views.Meta{Title: title, Nav: nav}
	st, ok := c.Request().Context().Value(stateKey{}).(*state)
	if !ok { // an error page for a request that never reached loadSession
		m.CSRF, _ = c.Get(ctxCSRF).(string)
		return m
	}
	m.CSRF, m.Flash = st.csrf, takeFlash(c, st)
	if st.user != nil && st.mfa {
		m.User = &views.User{Email: st.user.Email, Role: st.user.Role, Tenant: st.tenant.Name}
	}
	return m
}

// render writes page with status. It renders into a buffer first, so a
// template that fails sends a clean error page, never half a page.
func render(c echo.Context, status int, page templ.Component) error {
	var buf bytes.Buffer
	if err := page.Render(c.Request().Context(), &buf); err != nil {
		return fmt.Errorf("rendering %s: %w", c.Path(), err)
	}
	return c.HTMLBlob(status, buf.Bytes())
}

// RenderError renders the portal's error page for p; the server's error
// handler calls it.
func (h *Handler) RenderError(c echo.Context, p problem.P) error {
	return render(c, p.Status, views.ErrorPage(meta(c, p.Title, ""), views.ErrorProps{Status: p.Status, Title: p.Title, Message: p.Message}))
}

func (h *Handler) handleHome(c echo.Context) error {
	return c.Redirect(http.StatusSeeOther, getState(c).nextStep())
}
