package portal

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"keyward/db"
	"keyward/views"
	"keyward/web/apikey"
)

func (h *Handler) renderKeyForm(c echo.Context, status int, title string, p views.KeyFormProps) error {
	p.PlanDefault = planDefault(getState(c).tenant.Plan)
	return render(c, status, views.KeyFormPage(meta(c, title, "api-keys"), title, p))
}

func newKeyForm() views.KeyFormProps {
	return views.KeyFormProps{Action: "/settings/developers/api-keys", Submit: "Create API key",
		Form: views.KeyForm{Environment: "development", Preset: "read_only", RateWindow: "1h"}}
}

func (h *Handler) handleKeyNew(c echo.Context) error {
	return h.renderKeyForm(c, http.StatusOK, "Create an API key", newKeyForm())
}

// handleKeyCreate validates the form first (a typo costs no code), then
// checks the TOTP code and creates the key in the same transaction, and
// answers with the reveal-once page: the full key lives only in this
// response.
func (h *Handler) handleKeyCreate(c echo.Context) error {
	st := getState(c)
	ctx := c.Request().Context()
	p := newKeyForm()
	form, cfg, err := readKeyForm(c)
	p.Form = form
	now := time.Now()
	if err == nil {
		err = cfg.Normalize(now)
	}
	var key db.APIKey
	var full string
	if err == nil {
		from := actor(c, st)
		err = h.Auth.CheckCode(ctx, *st.user, c.FormValue("code"), from, func(q *db.Queries, _ bool) error {
			var err error
			key, full, err = apikey.Create(ctx, q, st.tenant.ID, cfg, from, st.user.ID, now)
			return err
		})
	}
	if msg, field, status, ok := opError(c, err); ok {
		p.Error, p.ErrorField = msg, field
		return h.renderKeyForm(c, status, "Create an API key", p)
	} else if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.KeyRevealPage(meta(c, "API key created", "api-keys"), views.RevealProps{
		KeyID: key.ID, Name: key.Name, Environment: key.Environment, Secret: full, BaseURL: h.baseURL(c),
	}))
}

func (h *Handler) handleKeyEdit(c echo.Context) error {
	k, err := h.loadKey(c)
	if err != nil {
		return err
	}
	if k.RevokedAt != nil {
		return apikey.ErrRevoked
	}
	return h.renderKeyForm(c, http.StatusOK, "Edit "+k.Name, views.KeyFormProps{
		Action: "/settings/developers/api-keys/" + k.ID, Submit: "Save changes", Editing: true, Form: formOf(k),
	})
}

func (h *Handler) handleKeyUpdate(c echo.Context) error {
	st := getState(c)
	ctx := c.Request().Context()
	k, err := h.loadKey(c)
	if err != nil {
		return err
	}
	form, cfg, err := readKeyForm(c)
	form.Environment = k.Environment
	cfg.Environment = apikey.Environment(k.Environment)
	// The form shows the expiry as a date: the same date means "keep it",
	// to the second, not "move it to midnight".
	if cfg.ExpiresAt != nil && k.ExpiresAt != nil && form.ExpiresAt == k.ExpiresAt.UTC().Format("2006-01-02") {
		cfg.ExpiresAt = k.ExpiresAt
	}
	now := time.Now()
	if err == nil {
		err = cfg.NormalizeEdit(now, k.ExpiresAt)
	}
	if err == nil {
		from := actor(c, st)
		err = h.Auth.CheckCode(ctx, *st.user, c.FormValue("code"), from, func(q *db.Queries, _ bool) error {
			return apikey.Update(ctx, q, st.tenant.ID, k.ID, cfg, from, now)
		})
	}
	if msg, field, status, ok := opError(c, err); ok {
		return h.renderKeyForm(c, status, "Edit "+k.Name, views.KeyFormProps{
			Action: "/settings/developers/api-keys/" + k.ID, Submit: "Save changes", Editing: true, Form: form,
			Error: msg, ErrorField: field,
		})
	} else if err != nil {
		return err
	}
	return h.renderKeyDetail(c, http.StatusOK, "", "", "Changes saved.")
}

// keyOp runs one code-confirmed operation from the detail page and shows
// the page again, with the error on the operation's own form if it failed.
func (h *Handler) keyOp(c echo.Context, form, done string, op func(q *db.Queries, tenantID int64, id string) error) error {
	st := getState(c)
	k, err := h.loadKey(c)
	if err != nil {
		return err
	}
	err = h.Auth.CheckCode(c.Request().Context(), *st.user, c.FormValue("code"), actor(c, st), func(q *db.Queries, _ bool) error {
		return op(q, st.tenant.ID, k.ID)
	})
	if msg, field, status, ok := opError(c, err); ok {
		if field != "code" {
			form = "" // not about this form's code: shown at the top of the page
		}
		return h.renderKeyDetail(c, status, form, msg, "")
	} else if err != nil {
		return err
	}
	return h.renderKeyDetail(c, http.StatusOK, "", "", done)
}

func (h *Handler) handleKeyDisable(c echo.Context) error {
	from := actor(c, getState(c))
	return h.keyOp(c, "disable", "The key is disabled.", func(q *db.Queries, tenantID int64, id string) error {
		return apikey.SetDisabled(c.Request().Context(), q, tenantID, id, true, from, time.Now())
	})
}

func (h *Handler) handleKeyEnable(c echo.Context) error {
	from := actor(c, getState(c))
	return h.keyOp(c, "enable", "The key is enabled.", func(q *db.Queries, tenantID int64, id string) error {
		return apikey.SetDisabled(c.Request().Context(), q, tenantID, id, false, from, time.Now())
	})
}

func (h *Handler) handleKeyRevoke(c echo.Context) error {
	from := actor(c, getState(c))
	return h.keyOp(c, "revoke", "The key is revoked. It no longer works anywhere.", func(q *db.Queries, tenantID int64, id string) error {
		return apikey.Revoke(c.Request().Context(), q, tenantID, id, from, time.Now())
	})
}

// parseGrace reads the rotate form's grace window.
func parseGrace(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, &apikey.FieldError{Field: "grace", Message: "Choose a grace window of now, 1 hour, 24 hours or 7 days."}
	}
	return d, nil
}

func (h *Handler) handleKeyRotate(c echo.Context) error {
	st := getState(c)
	ctx := c.Request().Context()
	k, err := h.loadKey(c)
	if err != nil {
		return err
	}
	grace, err := parseGrace(c.FormValue("grace"))
	var full string
	if err == nil {
		from := actor(c, st)
		err = h.Auth.CheckCode(ctx, *st.user, c.FormValue("code"), from, func(q *db.Queries, _ bool) error {
			var err error
			full, err = apikey.Rotate(ctx, q, st.tenant.ID, k.ID, grace, from, time.Now())
			return err
		})
	}
	if msg, _, status, ok := opError(c, err); ok {
		return h.renderKeyDetail(c, status, "rotate", msg, "")
	} else if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.KeyRevealPage(meta(c, "New secret", "api-keys"), views.RevealProps{
		KeyID: k.ID, Name: k.Name, Environment: k.Environment, Secret: full, BaseURL: h.baseURL(c), Rotated: true,
	}))
}

// baseURL is the configured public URL, or the one this request came to.
func (h *Handler) baseURL(c echo.Context) string {
	if h.BaseURL != "" {
		return h.BaseURL
	}
	return c.Scheme() + "://" + c.Request().Host
}
