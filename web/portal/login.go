package portal

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"keyward/db"
	"keyward/views"
	"keyward/web/audit"
	"keyward/web/auth"
	"keyward/web/mfa"
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
	email := strings.TrimSpace(c.FormValue("email"))
	password := c.FormValue("password")
	form := views.LoginProps{Email: email}
	page := func(status int, msg string) error {
		form.Error = msg
		return render(c, status, views.LoginPage(meta(c, "Sign in", ""), form))
	}
	if email == "" || password == "" {
		return page(http.StatusBadRequest, "Enter your email address and password.")
	}
	u, err := h.Auth.Login(c.Request().Context(), email, password, actor(c, nil))
	var te *auth.ThrottledError
	switch {
	case errors.Is(err, auth.ErrBadCredentials):
		return page(http.StatusUnauthorized, "The email address or password is incorrect.")
	case errors.As(err, &te):
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(te.RetryAfter.Seconds())))
		return page(http.StatusTooManyRequests, "Too many failed sign-in attempts. Wait "+te.RetryAfter.String()+" and try again.")
	case err != nil:
		return err
	}
	sess := getState(c).sess
	clear(sess.Values)
	sess.Values[session.KeyUserID] = u.ID
	sess.Values[session.KeyMFA] = false
	if err := h.Sessions.Renew(c.Request(), c.Response(), sess); err != nil {
		return err
	}
	if u.TotpEnrolledAt == nil {
		return c.Redirect(http.StatusSeeOther, "/mfa/enroll")
	}
	return c.Redirect(http.StatusSeeOther, "/login/totp")
}

func (h *Handler) handleTOTPForm(c echo.Context) error {
	st := getState(c)
	if st.user.TotpEnrolledAt == nil {
		return c.Redirect(http.StatusSeeOther, "/mfa/enroll")
	}
	return render(c, http.StatusOK, views.LoginTOTPPage(meta(c, "Two-factor authentication", ""), views.CodeProps{}))
}

func (h *Handler) handleTOTP(c echo.Context) error {
	st := getState(c)
	if st.user.TotpEnrolledAt == nil {
		return c.Redirect(http.StatusSeeOther, "/mfa/enroll")
	}
	from := actor(c, st)
	err := h.Auth.CheckCode(c.Request().Context(), *st.user, c.FormValue("code"), from, func(q *db.Queries, usedRecovery bool) error {
		method := "totp"
		if usedRecovery {
			method = "recovery_code"
		}
		return audit.Record(c.Request().Context(), q, from.Event("auth.login.succeeded", "user", from.ID, map[string]string{"method": method}))
	})
	if msg, status := codeError(c, err); msg != "" {
		return render(c, status, views.LoginTOTPPage(meta(c, "Two-factor authentication", ""), views.CodeProps{Error: msg}))
	}
	if err != nil {
		return err
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

// codeError turns a second-factor failure into a message for the form; it
// returns "" for success and for errors that are not about the code.
func codeError(c echo.Context, err error) (string, int) {
	var te *auth.ThrottledError
	switch {
	case errors.Is(err, mfa.ErrReplayed):
		return "That code was already used. Wait for your app to show the next code.", http.StatusUnauthorized
	case errors.Is(err, mfa.ErrInvalidCode):
		return "That code is not valid. Enter the current 6-digit code from your app, or an unused recovery code.", http.StatusUnauthorized
	case errors.As(err, &te):
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(te.RetryAfter.Seconds())))
		return "Too many wrong codes. Wait " + te.RetryAfter.String() + " and try again.", http.StatusTooManyRequests
	}
	return "", 0
}

func (h *Handler) handleLogout(c echo.Context) error {
	st := getState(c)
	if st.user != nil {
		from := actor(c, st)
		if err := h.Store.InTx(c.Request().Context(), func(q *db.Queries) error {
			return audit.Record(c.Request().Context(), q, from.Event("auth.logout", "user", from.ID, nil))
		}); err != nil {
			return err
		}
	}
	if err := h.Sessions.Destroy(c.Request(), c.Response(), st.sess); err != nil {
		return err
	}
	h.dropCSRFToken(c)
	return c.Redirect(http.StatusSeeOther, "/login")
}
