package portal

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"keyward/views"
	"keyward/web/mfa"
	"keyward/web/problem"
	"keyward/web/session"
)

// pending returns the enrolment to show, keeping its secret (sealed by the
// auth service) in the session, so a reload shows the same QR code.
func (h *Handler) pending(c echo.Context, st *state) (mfa.Enrolment, string, error) {
	kept, _ := st.sess.Values[session.KeyPendingTOTP].(string)
	en, sealed, err := h.Auth.PendingEnrolment(caller(c), kept)
	if err != nil || sealed == kept {
		return en, sealed, err
	}
	st.sess.Values[session.KeyPendingTOTP] = sealed
	return en, sealed, st.sess.Save(c.Request(), c.Response())
}

func (h *Handler) renderEnroll(c echo.Context, status int, en mfa.Enrolment, prob problem.P, fields map[string]string) error {
	return render(c, status, views.EnrollPage(meta(c, "Set up two-factor authentication", ""),
		views.EnrollProps{Secret: en.Secret, URL: en.URL, Error: prob.Message, Errors: fields}))
}

func (h *Handler) handleEnrollForm(c echo.Context) error {
	st := getState(c)
	if st.user.TOTPEnrolled {
		return c.Redirect(http.StatusSeeOther, "/login/totp")
	}
	en, _, err := h.pending(c, st)
	if err != nil {
		return err
	}
	return h.renderEnroll(c, http.StatusOK, en, problem.P{}, nil)
}

func (h *Handler) handleEnroll(c echo.Context) error {
	st := getState(c)
	if st.user.TOTPEnrolled {
		return c.Redirect(http.StatusSeeOther, "/login/totp")
	}
	en, sealed, err := h.pending(c, st)
	if err != nil {
		return err
	}
	codes, err := h.Auth.Enrol(c.Request().Context(), caller(c), sealed, c.FormValue("code"))
	if errors.Is(err, mfa.ErrAlreadyEnrolled) {
		// Another tab won; its codes stand. Sign in with the app instead.
		return c.Redirect(http.StatusSeeOther, "/login/totp")
	} else if err != nil {
		prob, fields, ok := formError(c, err)
		if !ok {
			return err
		}
		return h.renderEnroll(c, prob.Status, en, prob, fields)
	}
	if err := h.markSignedIn(c, st); err != nil {
		return err
	}
	st.user.TOTPEnrolled = true
	// Shown once, in the response to the confirming POST: nothing can
	// fetch these codes again.
	return render(c, http.StatusOK, views.RecoveryCodesPage(meta(c, "Recovery codes", ""), codes))
}
