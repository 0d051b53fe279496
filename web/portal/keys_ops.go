package portal

import (
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"

	"keyward/views"
	"keyward/web/apikey"
)

func (h *Handler) handleKeyNew(c echo.Context) error {
	return h.renderKeyForm(c, http.StatusOK, "Create an API key", newKeyForm())
}

// handleKeyCreate answers with the reveal-once page: the full key lives
// only in this response, which is why it is not a redirect.
func (h *Handler) handleKeyCreate(c echo.Context) error {
	p := newKeyForm()
	form, cfg := parseKeyForm(formValues(c), h.Now())
	p.Form = form
	k, full, err := h.Keys.Create(c.Request().Context(), caller(c), c.FormValue("code"), cfg)
	if err != nil {
		return h.failedForm(c, err, "Create an API key", p)
	}
	return render(c, http.StatusOK, views.KeyRevealPage(meta(c, "API key created", "api-keys"), views.RevealProps{
		KeyID: k.ID, Name: k.Name, Environment: string(k.Environment), Secret: full, BaseURL: h.baseURL(c),
		Scopes: k.Scopes, Sources: k.Sources, IPAllowlist: k.IPAllowlist, ExpiresAt: k.ExpiresAt, RateLimit: rateLimitText(k, getState(c).tenant),
	}))
}

func editForm(k apikey.Key, form views.KeyForm) views.KeyFormProps {
	return views.KeyFormProps{Action: keyURL(k.ID), Submit: "Save changes", Editing: true, Form: form}
}

func (h *Handler) handleKeyEdit(c echo.Context) error {
	k, err := h.Keys.Get(c.Request().Context(), getState(c).tenant.ID, c.Param("id"))
	if err != nil {
		return err
	}
	if k.RevokedAt != nil {
		return apikey.ErrRevoked
	}
	return h.renderKeyForm(c, http.StatusOK, "Edit "+k.Name, editForm(k, formOf(k)))
}

func (h *Handler) handleKeyUpdate(c echo.Context) error {
	form, cfg := parseKeyForm(formValues(c), h.Now())
	id := c.Param("id")
	_, err := h.Keys.Update(c.Request().Context(), caller(c), c.FormValue("code"), id, cfg)
	if err == nil {
		return h.done(c, keyURL(id), "Changes saved.")
	}
	cur, gerr := h.Keys.Get(c.Request().Context(), getState(c).tenant.ID, id)
	if gerr != nil {
		return gerr
	}
	form.Environment = string(cur.Environment)
	return h.failedForm(c, err, "Edit "+cur.Name, editForm(cur, form))
}

// keyOp ends one code-confirmed operation of the detail page: a redirect
// with a flash, or the page again with the error on the operation's form,
// which takes the focus so that the page opens at it (views.opAttrs). An
// error no form on the page can show (the key was revoked meanwhile) is
// shown at the top instead.
func (h *Handler) keyOp(c echo.Context, form, flash string, err error) error {
	if err == nil {
		return h.done(c, keyURL(c.Param("id")), flash)
	}
	prob, fields, ok := formError(c, err)
	if !ok {
		return err
	}
	p, err := h.keyDetail(c, c.Param("id"))
	if err != nil {
		return err
	}
	p.Error, p.ErrorForm, p.Fields = prob.Message, form, fields
	switch form {
	case "rotate":
		if slices.Contains([]string{"0", "1h", "24h", "168h"}, c.FormValue("grace")) {
			p.Grace = c.FormValue("grace") // a failed rotation keeps the window the admin chose
		}
	case "revoke":
		p.ConfirmName = c.FormValue("confirm_name")
	}
	return render(c, prob.Status, views.KeyDetailPage(meta(c, p.Name, "api-keys"), p))
}

func (h *Handler) handleKeyDisable(c echo.Context) error {
	_, err := h.Keys.Disable(c.Request().Context(), caller(c), c.FormValue("code"), c.Param("id"))
	return h.keyOp(c, "disable", "The key is disabled. Requests with it fail until you enable it again.", err)
}

func (h *Handler) handleKeyEnable(c echo.Context) error {
	_, err := h.Keys.Enable(c.Request().Context(), caller(c), c.FormValue("code"), c.Param("id"))
	return h.keyOp(c, "enable", "The key is enabled.", err)
}

// handleKeyRevoke revokes once the key's name is typed again
// (confirm_name), besides the code. The console's DELETE route does not
// ask for it: scripts name the key by its id.
func (h *Handler) handleKeyRevoke(c echo.Context) error {
	_, err := h.Keys.RevokeConfirmed(c.Request().Context(), caller(c), c.FormValue("code"), c.Param("id"), c.FormValue("confirm_name"))
	return h.keyOp(c, "revoke", "The key is revoked. It no longer works anywhere.", err)
}

// handleKeyEndGrace ends now the rotation grace of the secret with the
// posted prefix.
func (h *Handler) handleKeyEndGrace(c echo.Context) error {
	prefix := c.FormValue("prefix")
	_, err := h.Keys.EndGrace(c.Request().Context(), caller(c), c.FormValue("code"), c.Param("id"), prefix)
	return h.keyOp(c, views.EndGraceForm(prefix), "The secret "+prefix+"… no longer works. Requests with it get KEY_EXPIRED.", err)
}

// handleKeyRotate answers with the reveal-once page of the new secret.
func (h *Handler) handleKeyRotate(c echo.Context) error {
	grace, err := apikey.ParseGrace(c.FormValue("grace"))
	var k apikey.Key
	var full string
	if err == nil {
		k, full, err = h.Keys.Rotate(c.Request().Context(), caller(c), c.FormValue("code"), c.Param("id"), grace)
	}
	if err != nil {
		return h.keyOp(c, "rotate", "", err)
	}
	return render(c, http.StatusOK, views.KeyRevealPage(meta(c, "New secret", "api-keys"), views.RevealProps{
		KeyID: k.ID, Name: k.Name, Environment: string(k.Environment), Secret: full, BaseURL: h.baseURL(c), Rotated: true,
		Scopes: k.Scopes, Sources: k.Sources, IPAllowlist: k.IPAllowlist, ExpiresAt: k.ExpiresAt, RateLimit: rateLimitText(k, getState(c).tenant),
	}))
}

// baseURL is the configured public URL, or the one this request came to.
func (h *Handler) baseURL(c echo.Context) string {
	if h.BaseURL != "" {
		return h.BaseURL
	}
	return c.Scheme() + "://" + c.Request().Host
}
