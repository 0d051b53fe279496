// Package portal holds the handlers of the signed-in portal: sign-in, TOTP,
// enrolment, account and the developer settings. Every route here sits
// behind CSRF protection and the server-side session; handlers translate
// HTTP to calls into the domain packages and render views.
package portal

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/a-h/templ"
	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"keyward/db"
	"keyward/views"
	"keyward/web/audit"
	"keyward/web/auth"
	"keyward/web/mfa"
	"keyward/web/session"
)

// Handler carries the portal's dependencies.
type Handler struct {
	Store    *db.Store
	Sessions *session.Store
	Auth     *auth.Service
	MFA      *mfa.Service
	// Secure marks cookies Secure (production, behind TLS).
	Secure bool
	// BaseURL is the public URL, for the snippets on the reveal page.
	BaseURL string
}

// Register mounts the portal routes on e.
func (h *Handler) Register(e *echo.Echo) {
	stack := []echo.MiddlewareFunc{
		middleware.BodyLimit("64K"),
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
		}),
		h.loadSession,
	}
	// The console JSON routes share the portal's session and CSRF stack, and
	// refuse anything carrying an API key before even that.
	console := e.Group("/api/v1/orgs", append([]echo.MiddlewareFunc{rejectAPIKeys}, append(stack, h.requireConsoleManager)...)...)
	console.POST("/api-key/generate", h.handleConsoleGenerate)
	console.POST("/api-key/rotate", h.handleConsoleRotate)
	console.GET("/api-key", h.handleConsoleGet)
	console.DELETE("/api-key", h.handleConsoleRevoke)

	g := e.Group("", stack...)
	g.GET("/", h.handleHome)
	g.GET("/login", h.handleLoginForm)
	g.POST("/login", h.handleLogin)
	g.POST("/logout", h.handleLogout)

	pw := g.Group("", h.requirePasswordStage)
	pw.GET("/login/totp", h.handleTOTPForm)
	pw.POST("/login/totp", h.handleTOTP)
	pw.GET("/mfa/enroll", h.handleEnrollForm)
	pw.POST("/mfa/enroll", h.handleEnroll)

	in := g.Group("", h.requireSignedIn)
	in.GET("/account", h.handleAccount)
	in.POST("/account/password", h.handlePasswordChange)
	in.GET("/settings/developers/api-keys", h.handleKeysList)
	in.GET("/settings/developers/api-keys/:id", h.handleKeyDetail)
	in.GET("/settings/developers/api-logs", h.handleAPILogs)
	ops := in.Group("", h.requireManager)
	ops.GET("/settings/developers/api-keys/new", h.handleKeyNew)
	ops.POST("/settings/developers/api-keys", h.handleKeyCreate)
	ops.GET("/settings/developers/api-keys/:id/edit", h.handleKeyEdit)
	ops.POST("/settings/developers/api-keys/:id", h.handleKeyUpdate)
	ops.POST("/settings/developers/api-keys/:id/rotate", h.handleKeyRotate)
	ops.POST("/settings/developers/api-keys/:id/disable", h.handleKeyDisable)
	ops.POST("/settings/developers/api-keys/:id/enable", h.handleKeyEnable)
	ops.POST("/settings/developers/api-keys/:id/revoke", h.handleKeyRevoke)
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

const (
	ctxCSRF  = "csrf"
	ctxState = "portal.state"
)

// state is what the session says about the request.
type state struct {
	sess   *sessions.Session
	user   *db.User   // set once the password was checked
	tenant *db.Tenant // the user's tenant
	mfa    bool       // the second factor was checked too
}

func getState(c echo.Context) *state {
	st, _ := c.Get(ctxState).(*state)
	return st
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
		if uid, ok := sess.Values[session.KeyUserID].(int64); ok {
			u, err := h.Store.GetUser(r.Context(), uid)
			if err != nil && !errors.Is(db.Wrap(err), db.ErrNotFound) {
				return err
			}
			if err != nil || u.DisabledAt != nil {
				if err := h.Sessions.Destroy(r, c.Response(), sess); err != nil {
					return err
				}
				st.sess, _ = h.Sessions.New(r, session.CookieName)
			} else {
				t, err := h.Store.GetTenant(r.Context(), u.TenantID)
				if err != nil {
					return err
				}
				st.user, st.tenant = &u, &t
				st.mfa, _ = sess.Values[session.KeyMFA].(bool)
			}
		}
		c.Set(ctxState, st)
		return next(c)
	}
}

// next returns where a partly signed-in user must go now.
func (st *state) nextStep() string {
	switch {
	case st.user == nil:
		return "/login"
	case st.user.TotpEnrolledAt == nil:
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
		if st.user == nil || !st.mfa || st.user.TotpEnrolledAt == nil {
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
			return echo.NewHTTPError(http.StatusForbidden, "cross-site request blocked by CSRF")
		}
		r.Header.Del(echo.HeaderSecFetchSite)
		return next(c)
	}
}

// meta is the per-request page model.
func meta(c echo.Context, title, nav string) views.Meta {
	m := views.Meta{Title: title, Nav: nav}
	m.CSRF, _ = c.Get(ctxCSRF).(string)
	if st := getState(c); st != nil && st.user != nil && st.mfa {
		m.User = &views.User{Email: st.user.Email, Role: st.user.Role, Tenant: st.tenant.Name}
	}
	return m
}

func render(c echo.Context, status int, page templ.Component) error {
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	c.Response().WriteHeader(status)
	return page.Render(c.Request().Context(), c.Response())
}

// RenderError renders the portal's error page; the server's error handler
// calls it.
func (h *Handler) RenderError(c echo.Context, status int, title, message string) error {
	return render(c, status, views.ErrorPage(meta(c, title, ""), views.ErrorProps{Status: status, Title: title, Message: message}))
}

// actor describes the request for the audit trail.
func actor(c echo.Context, st *state) audit.Actor {
	a := audit.Actor{Type: audit.ActorSystem, IP: c.RealIP(), UserAgent: c.Request().UserAgent()}
	if st != nil && st.user != nil {
		a.Type, a.ID, a.TenantID = audit.ActorUser, strconv.FormatInt(st.user.ID, 10), &st.user.TenantID
	}
	return a
}

func (h *Handler) handleHome(c echo.Context) error {
	return c.Redirect(http.StatusSeeOther, getState(c).nextStep())
}
