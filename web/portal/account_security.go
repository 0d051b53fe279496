package portal

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"keyward/views"
	"keyward/web/auth"
	"keyward/web/problem"
	"keyward/web/session"
)

// Session keys of an authenticator replacement under way: the new secret,
// sealed by the auth service, and when the chance to confirm it ends.
const (
	keyReplaceTOTP  = "replace_totp"
	keyReplaceUntil = "replace_totp_until"
)

// security reads the account page's security part into p.
func (h *Handler) security(c echo.Context, p views.SecurityProps) (views.SecurityProps, error) {
	st := getState(c)
	sessions, err := h.Auth.Sessions(c.Request().Context(), caller(c), session.Hash(st.sess), h.Sessions.Idle)
	if err != nil {
		return p, err
	}
	for _, s := range sessions {
		p.Sessions = append(p.Sessions, views.SessionRow{Created: fmtTime(&s.CreatedAt), LastSeen: fmtTime(&s.LastSeenAt),
			IP: orDash(s.IP), UserAgent: orDash(s.UserAgent), Current: s.Current})
	}
	return p, nil
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func (h *Handler) handleEndOtherSessions(c echo.Context) error {
	n, err := h.Auth.EndOtherSessions(c.Request().Context(), caller(c), session.Hash(getState(c).sess))
	if err != nil {
		return err
	}
	msg := "Your other sessions were signed out."
	if n == 0 {
		msg = "You had no other sessions."
	}
	return h.done(c, "/account", msg)
}

// handleRecoveryCodes answers with the new recovery codes, shown once: the
// form's own answer, never stored.
func (h *Handler) handleRecoveryCodes(c echo.Context) error {
	codes, err := h.Auth.RegenerateRecoveryCodes(c.Request().Context(), caller(c), c.FormValue("code"))
	if err != nil {
		prob, fields, ok := formError(c, err)
		if !ok {
			return err
		}
		return h.renderAccount(c, prob.Status, views.AccountProps{Security: views.SecurityProps{
			Error: prob.Message, ErrorForm: "recovery", CodeError: fields["code"]}})
	}
	return render(c, http.StatusOK, views.RecoveryCodesPage(meta(c, "Recovery codes", "account"), codes))
}

// replacement is the replacement under way in the session, if any.
func replacement(st *state) (auth.Replacement, bool) {
	sealed, _ := st.sess.Values[keyReplaceTOTP].(string)
	until, _ := st.sess.Values[keyReplaceUntil].(int64)
	if sealed == "" {
		return auth.Replacement{}, false
	}
	return auth.Replacement{Sealed: sealed, Until: time.Unix(until, 0)}, true
}

func (h *Handler) forgetReplacement(c echo.Context, st *state) error {
	delete(st.sess.Values, keyReplaceTOTP)
	delete(st.sess.Values, keyReplaceUntil)
	return st.sess.Save(c.Request(), c.Response())
}

// renderReplace shows step 2 (the new QR code) when a replacement is under
// way, else step 1 (a current code).
func (h *Handler) renderReplace(c echo.Context, status int, prob problem.P, fields map[string]string) error {
	st := getState(c)
	p := views.ReplaceProps{Error: prob.Message, Errors: fields}
	if r, ok := replacement(st); ok {
		en, err := h.Auth.ReplacementEnrolment(caller(c), r)
		if err == nil {
			p.Secret, p.URL = en.Secret, en.URL
		} else {
			// Run out: back to step 1, saying why.
			if err := h.forgetReplacement(c, st); err != nil {
				return err
			}
			pr := problem.Of(err)
			if p.Error == "" {
				p.Error = pr.Message
			}
		}
	}
	return render(c, status, views.ReplaceAuthenticatorPage(meta(c, "Replace your authenticator", "account"), p))
}

func (h *Handler) handleReplaceForm(c echo.Context) error {
	return h.renderReplace(c, http.StatusOK, problem.P{}, nil)
}

// handleReplaceStart checks a current code and starts a replacement.
func (h *Handler) handleReplaceStart(c echo.Context) error {
	st := getState(c)
	r, err := h.Auth.StartReplacement(c.Request().Context(), caller(c), c.FormValue("code"))
	if err != nil {
		prob, fields, ok := formError(c, err)
		if !ok {
			return err
		}
		if err := h.forgetReplacement(c, st); err != nil {
			return err
		}
		return h.renderReplace(c, prob.Status, prob, fields)
	}
	st.sess.Values[keyReplaceTOTP] = r.Sealed
	st.sess.Values[keyReplaceUntil] = r.Until.Unix()
	if err := st.sess.Save(c.Request(), c.Response()); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/account/authenticator")
}

// handleReplaceConfirm stores the new authenticator once a code from it
// matches.
func (h *Handler) handleReplaceConfirm(c echo.Context) error {
	st := getState(c)
	r, ok := replacement(st)
	if !ok {
		return c.Redirect(http.StatusSeeOther, "/account/authenticator")
	}
	err := h.Auth.ConfirmReplacement(c.Request().Context(), caller(c), r, c.FormValue("code"), session.Hash(getState(c).sess))
	if err != nil {
		prob, fields, ok := formError(c, err)
		if !ok {
			return err
		}
		return h.renderReplace(c, prob.Status, prob, fields)
	}
	delete(st.sess.Values, keyReplaceTOTP)
	delete(st.sess.Values, keyReplaceUntil)
	return h.done(c, "/account", "Your authenticator was replaced: use the new app from now on. Your recovery codes are unchanged.")
}
