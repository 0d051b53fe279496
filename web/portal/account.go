package portal

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"keyward/views"
	"keyward/web/auth"
	"keyward/web/session"
)

func (h *Handler) renderAccount(c echo.Context, status int, p views.AccountProps) error {
	st := getState(c)
	n, err := h.Store.CountUnusedRecoveryCodes(c.Request().Context(), st.user.ID)
	if err != nil {
		return err
	}
	p.RecoveryCodesLeft = n
	p.MustChange = st.user.MustChangePassword
	return render(c, status, views.AccountPage(meta(c, "Account", "account"), p))
}

func (h *Handler) handleAccount(c echo.Context) error {
	return h.renderAccount(c, http.StatusOK, views.AccountProps{})
}

func (h *Handler) handlePasswordChange(c echo.Context) error {
	st := getState(c)
	current, next := c.FormValue("current_password"), c.FormValue("new_password")
	if next != c.FormValue("confirm_password") {
		return h.renderAccount(c, http.StatusBadRequest, views.AccountProps{Error: "The new passwords do not match."})
	}
	err := h.Auth.ChangePassword(c.Request().Context(), *st.user, current, next, session.Hash(st.sess), actor(c, st))
	if errors.Is(err, auth.ErrInvalidInput) || errors.Is(err, auth.ErrPasswordPolicy) {
		return h.renderAccount(c, http.StatusBadRequest, views.AccountProps{Error: err.Error()})
	}
	if err != nil {
		return err
	}
	// A new id for the session that survives the change.
	if err := h.Sessions.Renew(c.Request(), c.Response(), st.sess); err != nil {
		return err
	}
	st.user.MustChangePassword = false
	return h.renderAccount(c, http.StatusOK, views.AccountProps{Notice: "Your password was changed. Your other sessions were signed out."})
}
