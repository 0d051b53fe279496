package portal

import (
	"encoding/base64"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"keyward/views"
	"keyward/web/mfa"
	"keyward/web/session"
)

// pendingSecret returns the enrolment secret kept (encrypted) in the
// session, making one on the first visit so a reload shows the same QR code.
func (h *Handler) pendingSecret(c echo.Context, st *state) (string, error) {
	if enc, ok := st.sess.Values[session.KeyPendingTOTP].(string); ok {
		sealed, err := base64.StdEncoding.DecodeString(enc)
		if err == nil {
			if secret, err := h.Auth.MFA.Decrypt(st.user.ID, sealed); err == nil {
				return secret, nil
			}
		}
	}
	en, err := h.Auth.StartEnrolment(caller(c))
	if err != nil {
		return "", err
	}
	sealed, err := h.Auth.MFA.Encrypt(st.user.ID, en.Secret)
	if err != nil {
		return "", err
	}
	st.sess.Values[session.KeyPendingTOTP] = base64.StdEncoding.EncodeToString(sealed)
	return en.Secret, st.sess.Save(c.Request(), c.Response())
}

func (h *Handler) renderEnroll(c echo.Context, st *state, status int, secret, msg string) error {
	en, err := h.Auth.MFA.EnrolmentFor(st.user.Email, secret)
	if err != nil {
		return err
	}
	return render(c, status, views.EnrollPage(meta(c, "Set up two-factor authentication", ""),
		views.EnrollProps{Secret: en.Secret, URL: en.URL, Error: msg}))
}

func (h *Handler) handleEnrollForm(c echo.Context) error {
	st := getState(c)
	if st.user.TOTPEnrolled {
		return c.Redirect(http.StatusSeeOther, "/login/totp")
	}
	secret, err := h.pendingSecret(c, st)
	if err != nil {
		return err
	}
	return h.renderEnroll(c, st, http.StatusOK, secret, "")
}

func (h *Handler) handleEnroll(c echo.Context) error {
	st := getState(c)
	if st.user.TOTPEnrolled {
		return c.Redirect(http.StatusSeeOther, "/login/totp")
	}
	secret, err := h.pendingSecret(c, st)
	if err != nil {
		return err
	}
	codes, err := h.Auth.Enrol(c.Request().Context(), caller(c), secret, c.FormValue("code"))
	if errors.Is(err, mfa.ErrAlreadyEnrolled) {
		// Another tab won; its codes stand. Sign in with the app instead.
		return c.Redirect(http.StatusSeeOther, "/login/totp")
	} else if err != nil {
		prob, _, ok := formError(c, err)
		if !ok {
			return err
		}
		return h.renderEnroll(c, st, prob.Status, secret, prob.Message)
	}
	if err := h.markSignedIn(c, st); err != nil {
		return err
	}
	st.user.TOTPEnrolled = true
	// Shown once, in the response to the confirming POST: nothing can
	// fetch these codes again.
	return render(c, http.StatusOK, views.RecoveryCodesPage(meta(c, "Recovery codes", ""), codes))
}
