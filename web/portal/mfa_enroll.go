package portal

import (
	"encoding/base64"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"keyward/db"
	"keyward/views"
	"keyward/web/audit"
	"keyward/web/mfa"
	"keyward/web/session"
)

// pendingSecret returns the enrolment secret kept (encrypted) in the
// session, making one on the first visit so a reload shows the same QR code.
func (h *Handler) pendingSecret(c echo.Context, st *state) (string, error) {
	if enc, ok := st.sess.Values[session.KeyPendingTOTP].(string); ok {
		sealed, err := base64.StdEncoding.DecodeString(enc)
		if err == nil {
			if secret, err := h.MFA.Decrypt(st.user.ID, sealed); err == nil {
				return secret, nil
			}
		}
	}
	en, err := h.MFA.NewEnrolment(st.user.Email)
	if err != nil {
		return "", err
	}
	sealed, err := h.MFA.Encrypt(st.user.ID, en.Secret)
	if err != nil {
		return "", err
	}
	st.sess.Values[session.KeyPendingTOTP] = base64.StdEncoding.EncodeToString(sealed)
	return en.Secret, st.sess.Save(c.Request(), c.Response())
}

func (h *Handler) renderEnroll(c echo.Context, st *state, status int, secret, msg string) error {
	en, err := h.MFA.EnrolmentFor(st.user.Email, secret)
	if err != nil {
		return err
	}
	return render(c, status, views.EnrollPage(meta(c, "Set up two-factor authentication", ""),
		views.EnrollProps{Secret: en.Secret, URL: en.URL, Error: msg}))
}

func (h *Handler) handleEnrollForm(c echo.Context) error {
	st := getState(c)
	if st.user.TotpEnrolledAt != nil {
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
	if st.user.TotpEnrolledAt != nil {
		return c.Redirect(http.StatusSeeOther, "/login/totp")
	}
	secret, err := h.pendingSecret(c, st)
	if err != nil {
		return err
	}
	step, err := h.MFA.CheckEnrolmentCode(secret, c.FormValue("code"))
	if err != nil {
		return h.renderEnroll(c, st, http.StatusUnauthorized, secret,
			"That code does not match. Check that your device's clock is right and enter the code your app shows now.")
	}
	ctx := c.Request().Context()
	from := actor(c, st)
	var codes []string
	if err := h.Store.InTx(ctx, func(q *db.Queries) error {
		var err error
		if codes, err = h.MFA.Confirm(ctx, q, st.user.ID, secret, step); err != nil {
			return err
		}
		if err := audit.Record(ctx, q, from.Event("auth.mfa.enrolled", "user", from.ID, map[string]int{"recovery_codes": len(codes)})); err != nil {
			return err
		}
		return audit.Record(ctx, q, from.Event("auth.login.succeeded", "user", from.ID, map[string]string{"method": "totp_enrolment"}))
	}); errors.Is(err, mfa.ErrAlreadyEnrolled) {
		// Another tab won; its codes stand. Sign in with the app instead.
		return c.Redirect(http.StatusSeeOther, "/login/totp")
	} else if err != nil {
		return err
	}
	if err := h.markSignedIn(c, st); err != nil {
		return err
	}
	u, err := h.Store.GetUser(ctx, st.user.ID)
	if err != nil {
		return err
	}
	st.user = &u
	// Shown once, in the response to the confirming POST: nothing can
	// fetch these codes again.
	return render(c, http.StatusOK, views.RecoveryCodesPage(meta(c, "Recovery codes", ""), codes))
}
