package portal

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"keyward/views"
	"keyward/web/auth"
	"keyward/web/session"
)

func (h *Handler) renderAccount(c echo.Context, status int, p views.AccountProps) error {
	st := getState(c)
	n, err := h.Auth.RecoveryCodesLeft(c.Request().Context(), st.user.ID)
	if err != nil {
		return err
	}
	p.RecoveryCodesLeft = n
	p.MustChange = st.user.MustChangePassword
	if !p.MustChange {
		if p.Security, err = h.security(c, p.Security); err != nil {
			return err
		}
	}
	return render(c, status, views.AccountPage(meta(c, "Account", "account"), p))
}

func (h *Handler) handleAccount(c echo.Context) error {
	return h.renderAccount(c, http.StatusOK, views.AccountProps{})
}

func (h *Handler) handlePasswordChange(c echo.Context) error {
	st := getState(c)
	err := h.Auth.ChangePassword(c.Request().Context(), caller(c), auth.PasswordChange{
		Current: c.FormValue("current_password"), New: c.FormValue("new_password"), Confirm: c.FormValue("confirm_password"),
		KeepSession: session.Hash(st.sess),
	})
	if err != nil {
		prob, fields, ok := formError(c, err)
		if !ok {
			return err
		}
		return h.renderAccount(c, prob.Status, views.AccountProps{Error: prob.Message, Errors: fields})
	}
	// A new id for the session that survives the change, ending when the
	// old one would have: a password change does not extend a session.
	if err := h.Sessions.Rotate(c.Request(), c.Response(), st.sess); err != nil {
		return err
	}
	return h.done(c, "/account", "Your password was changed. Your other sessions were signed out.")
}
