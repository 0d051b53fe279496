package portal

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"keyward/views"
	"keyward/web/errs"
	"keyward/web/problem"
	"keyward/web/session"
)

// busy is formError for the one 503 a form shows: too many passwords are
// being checked (auth.ErrBusy). The form is shown again, with its
// message saying when to try again, and Retry-After; ok is false for any
// other error.
func busy(c echo.Context, err error) (p problem.P, ok bool) {
	if !errs.Is(err, errs.Unavailable) {
		return problem.P{}, false
	}
	p = problem.Of(err)
	problem.SetRetryAfter(c.Response().Header(), p.RetryAfter)
	return p, true
}

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
		prob, _, ok := formError(c, err)
		if !ok {
			if prob, ok = busy(c, err); !ok {
				return err
			}
		}
		return render(c, prob.Status, views.LoginPage(meta(c, "Sign in", ""), views.LoginProps{Email: email, Error: prob.Message}))
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
		prob, _, ok := formError(c, err)
		if !ok {
			return err
		}
		return render(c, prob.Status, views.LoginTOTPPage(meta(c, "Two-factor authentication", ""), views.CodeProps{Error: prob.Message}))
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
