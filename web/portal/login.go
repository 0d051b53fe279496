package portal

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"keyward/views"
	"keyward/web/session"
)

func (h *Handler) handleLoginForm(c echo.Context) error {
	st := getState(c)
	if st.user != nil {
		return c.Redirect(http.StatusSeeOther, st.nextStep())
	}
	return render(c, http.StatusOK, views.LoginPage(meta(c, "Sign in", ""), views.LoginProps{}))
}

func (h *Handler) handleLogin(c echo.Context) error {
	email := c.FormValue("email")
	u, err := h.Auth.PasswordStep(c.Request().Context(), email, c.FormValue("password"), origin(c))
	if err != nil {
		prob, fields, ok := formError(c, err)
		if !ok {
			return err
		}
		return render(c, prob.Status, views.LoginPage(meta(c, "Sign in", ""), views.LoginProps{Email: email, Error: prob.Message, Errors: fields}))
	}
	sess := getState(c).sess
	clear(sess.Values)
	sess.Values[session.KeyUserID] = u.ID
	sess.Values[session.KeyMFA] = false
	if err := h.Sessions.Renew(c.Request(), c.Response(), sess); err != nil {
		return err
	}
	if !u.TOTPEnrolled {
		return c.Redirect(http.StatusSeeOther, "/mfa/enroll")
	}
	return c.Redirect(http.StatusSeeOther, "/login/totp")
}

func (h *Handler) handleTOTPForm(c echo.Context) error {
	if !getState(c).user.TOTPEnrolled {
		return c.Redirect(http.StatusSeeOther, "/mfa/enroll")
	}
	return render(c, http.StatusOK, views.LoginTOTPPage(meta(c, "Two-factor authentication", ""), views.CodeProps{}))
}

func (h *Handler) handleTOTP(c echo.Context) error {
	st := getState(c)
	if !st.user.TOTPEnrolled {
		return c.Redirect(http.StatusSeeOther, "/mfa/enroll")
	}
	if err := h.Auth.TOTPStep(c.Request().Context(), caller(c), c.FormValue("code")); err != nil {
		prob, fields, ok := formError(c, err)
		if !ok {
			return err
		}
		return render(c, prob.Status, views.LoginTOTPPage(meta(c, "Two-factor authentication", ""), views.CodeProps{Error: prob.Message, Errors: fields}))
	}
	if err := h.markSignedIn(c, st); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, st.nextStep())
}

// markSignedIn marks the session as past both factors, under a new session
// id and with a new CSRF token to come, so nothing issued before sign-in
// carries over.
func (h *Handler) markSignedIn(c echo.Context, st *state) error {
	st.sess.Values[session.KeyMFA] = true
	delete(st.sess.Values, session.KeyPendingTOTP)
	if err := h.Sessions.Renew(c.Request(), c.Response(), st.sess); err != nil {
		return err
	}
	st.mfa = true
	h.dropCSRFToken(c)
	return nil
}

func (h *Handler) handleLogout(c echo.Context) error {
	st := getState(c)
	if st.user != nil {
		if err := h.Auth.Logout(c.Request().Context(), caller(c)); err != nil {
			return err
		}
	}
	if err := h.Sessions.Destroy(c.Request(), c.Response(), st.sess); err != nil {
		return err
	}
	h.dropCSRFToken(c)
	return c.Redirect(http.StatusSeeOther, "/login")
}
