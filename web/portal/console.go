package portal

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"keyward/db"
	"keyward/web/api"
	"keyward/web/apikey"
	"keyward/web/auth"
	"keyward/web/mfa"
)

// rejectAPIKeys: management is portal-only. A request that carries an API
// key, in either header, gets 403 whatever else it carries.
func rejectAPIKeys(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Header.Get("X-API-Key") != "" || strings.HasPrefix(strings.ToLower(r.Header.Get(echo.HeaderAuthorization)), "bearer ") {
			return &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden, Message: "API keys cannot manage API keys"}
		}
		return next(c)
	}
}

// requireConsoleManager is requireSignedIn and requireManager for JSON
// clients: errors in the envelope, not redirects.
func (h *Handler) requireConsoleManager(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		st := getState(c)
		switch {
		case st.user == nil || !st.mfa || st.user.TotpEnrolledAt == nil:
			return &api.Error{Status: http.StatusUnauthorized, Code: api.CodeUnauthorized, Message: "Sign in to the portal (password and TOTP) first; these routes take a portal session."}
		case st.user.MustChangePassword:
			return &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden, Message: "Change your one-time password in the portal first."}
		case c.Request().Method != http.MethodGet && !canManage(st):
			return &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden, Message: "Your role (viewer) cannot create or change API keys."}
		}
		return next(c)
	}
}

type consoleRateLimit struct {
	Requests int    `json:"requests"`
	Window   string `json:"window"`
}

type consoleRequest struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Environment string            `json:"environment"`
	Scopes      []string          `json:"scopes"`
	Sources     []string          `json:"sources"`
	IPAllowlist []string          `json:"ip_allowlist"`
	RateLimit   *consoleRateLimit `json:"rate_limit"`
	ExpiresAt   *time.Time        `json:"expires_at"`
	Grace       string            `json:"grace"`
	Code        string            `json:"code"`
}

func bindConsole(c echo.Context) (consoleRequest, error) {
	var req consoleRequest
	if !strings.HasPrefix(c.Request().Header.Get(echo.HeaderContentType), echo.MIMEApplicationJSON) {
		return req, &api.Error{Status: http.StatusUnsupportedMediaType, Code: api.CodeUnsupported, Message: "Send a JSON body with Content-Type: application/json."}
	}
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return req, &api.Error{Status: http.StatusRequestEntityTooLarge, Code: api.CodeTooLarge, Message: "The body is larger than 64 KiB."}
		}
		return req, &api.Error{Status: http.StatusBadRequest, Code: api.CodeValidation, Message: "The body is not valid JSON for this route: " + err.Error()}
	}
	if dec.More() {
		return req, &api.Error{Status: http.StatusBadRequest, Code: api.CodeValidation, Message: "The body must hold one JSON object and nothing after it."}
	}
	return req, nil
}

// consoleError turns domain failures into envelope errors.
func consoleError(err error) error {
	var fe *apikey.FieldError
	var te *auth.ThrottledError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe):
		return &api.Error{Status: http.StatusBadRequest, Code: api.CodeValidation, Message: fe.Message, Field: fe.Field}
	case errors.Is(err, mfa.ErrReplayed):
		return &api.Error{Status: http.StatusUnauthorized, Code: api.CodeInvalidCode, Message: "That TOTP code was already used; wait for the next one.", Field: "code"}
	case errors.Is(err, mfa.ErrInvalidCode):
		return &api.Error{Status: http.StatusUnauthorized, Code: api.CodeInvalidCode, Message: "The TOTP or recovery code is not valid.", Field: "code"}
	case errors.As(err, &te):
		return &api.Error{Status: http.StatusTooManyRequests, Code: api.CodeRateLimited, Message: te.Error()}
	case errors.Is(err, apikey.ErrRevoked):
		return &api.Error{Status: http.StatusConflict, Code: api.CodeConflict, Message: "The key is revoked; it can never be changed again."}
	case errors.Is(err, db.ErrNotFound):
		return &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: "No such API key in your organisation."}
	}
	return err
}

// keyView is a key as the console routes show it: never a secret.
type keyView struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Environment string            `json:"environment"`
	Status      string            `json:"status"`
	Prefixes    []string          `json:"prefixes"`
	Scopes      []string          `json:"scopes"`
	Sources     []string          `json:"sources"`
	IPAllowlist []string          `json:"ip_allowlist"`
	RateLimit   *consoleRateLimit `json:"rate_limit"`
	ExpiresAt   *time.Time        `json:"expires_at"`
	CreatedAt   time.Time         `json:"created_at"`
	LastUsedAt  *time.Time        `json:"last_used_at"`
	LastUsedIP  string            `json:"last_used_ip,omitempty"`
	Key         string            `json:"key,omitempty"` // generate and rotate only, once
}

// viewOf builds a key's view from the row and its live prefixes.
func viewOf(k db.APIKey, prefixes []string) keyView {
	v := keyView{ID: k.ID, Name: k.Name, Description: k.Description, Environment: k.Environment,
		Status: apikey.Status(k, time.Now()), Scopes: k.Scopes, Sources: k.Sources, IPAllowlist: k.IpAllowlist,
		ExpiresAt: k.ExpiresAt, CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, LastUsedIP: k.LastUsedIp, Prefixes: prefixes}
	if v.Prefixes == nil {
		v.Prefixes = []string{}
	}
	if r := apikey.KeyRateLimit(k); r != nil {
		v.RateLimit = &consoleRateLimit{Requests: r.Requests, Window: shortDuration(r.Window)}
	}
	return v
}

// loadKeyView reads key id's row and live secrets through q: inside an
// operation's transaction, so the reply shows exactly what was committed.
func loadKeyView(ctx context.Context, q *db.Queries, tenantID int64, id string) (keyView, error) {
	k, err := q.GetAPIKey(ctx, db.GetAPIKeyParams{TenantID: tenantID, ID: id})
	if err != nil {
		return keyView{}, err
	}
	secrets, err := q.ListAPIKeySecrets(ctx, db.ListAPIKeySecretsParams{TenantID: tenantID, KeyID: id})
	if err != nil {
		return keyView{}, err
	}
	var prefixes []string
	for _, s := range secrets {
		if s.ExpiresAt == nil || s.ExpiresAt.After(time.Now()) {
			prefixes = append(prefixes, s.Prefix)
		}
	}
	return viewOf(k, prefixes), nil
}

func (h *Handler) getKeyByID(c echo.Context, tenantID int64, id string) (db.APIKey, error) {
	if !apikey.ValidID(id) {
		return db.APIKey{}, consoleError(db.ErrNotFound)
	}
	k, err := h.Store.GetAPIKey(c.Request().Context(), db.GetAPIKeyParams{TenantID: tenantID, ID: id})
	return k, consoleError(db.Wrap(err))
}

func (h *Handler) handleConsoleGenerate(c echo.Context) error {
	st := getState(c)
	ctx := c.Request().Context()
	req, err := bindConsole(c)
	if err != nil {
		return err
	}
	cfg := apikey.Config{Name: req.Name, Description: req.Description, Environment: apikey.Environment(req.Environment),
		Scopes: req.Scopes, Sources: req.Sources, IPAllowlist: req.IPAllowlist, ExpiresAt: req.ExpiresAt}
	if req.RateLimit != nil {
		w, err := time.ParseDuration(req.RateLimit.Window)
		if err != nil {
			return consoleError(&apikey.FieldError{Field: "rate_limit", Message: "rate_limit.window must be 1m, 1h or 24h."})
		}
		cfg.RateLimit = &apikey.RateLimit{Requests: req.RateLimit.Requests, Window: w}
	}
	now := time.Now()
	if err := cfg.Normalize(now); err != nil {
		return consoleError(err)
	}
	var v keyView
	from := actor(c, st)
	err = h.Auth.CheckCode(ctx, *st.user, req.Code, from, func(q *db.Queries, _ bool) error {
		key, full, err := apikey.Create(ctx, q, st.tenant.ID, cfg, from, st.user.ID, now)
		if err != nil {
			return err
		}
		v, err = loadKeyView(ctx, q, st.tenant.ID, key.ID)
		v.Key = full
		return err
	})
	if err != nil {
		return consoleError(err)
	}
	return api.OK(c, http.StatusCreated, v)
}

func (h *Handler) handleConsoleRotate(c echo.Context) error {
	st := getState(c)
	ctx := c.Request().Context()
	req, err := bindConsole(c)
	if err != nil {
		return err
	}
	k, err := h.getKeyByID(c, st.tenant.ID, req.ID)
	if err != nil {
		return err
	}
	grace, err := parseGrace(req.Grace)
	if err != nil {
		return consoleError(err)
	}
	var v keyView
	from := actor(c, st)
	err = h.Auth.CheckCode(ctx, *st.user, req.Code, from, func(q *db.Queries, _ bool) error {
		full, err := apikey.Rotate(ctx, q, st.tenant.ID, k.ID, grace, from, time.Now())
		if err != nil {
			return err
		}
		v, err = loadKeyView(ctx, q, st.tenant.ID, k.ID)
		v.Key = full
		return err
	})
	if err != nil {
		return consoleError(err)
	}
	return api.OK(c, http.StatusOK, v)
}

// consoleListCap bounds GET /api/v1/orgs/api-key without ?id=; the
// portal's list pages through more.
const consoleListCap = 1000

// handleConsoleGet returns one key (?id=) or every key of the tenant (up
// to consoleListCap, newest first), in two queries.
func (h *Handler) handleConsoleGet(c echo.Context) error {
	st := getState(c)
	if id := c.QueryParam("id"); id != "" {
		k, err := h.getKeyByID(c, st.tenant.ID, id)
		if err != nil {
			return err
		}
		v, err := loadKeyView(c.Request().Context(), h.Store.Queries, st.tenant.ID, k.ID)
		if err != nil {
			return err
		}
		return api.OK(c, http.StatusOK, v)
	}
	ctx := c.Request().Context()
	keys, err := h.Store.ListAPIKeysByTenant(ctx, db.ListAPIKeysByTenantParams{TenantID: st.tenant.ID, Lim: consoleListCap})
	if err != nil {
		return err
	}
	secrets, err := h.Store.ListLiveSecretsByTenant(ctx, st.tenant.ID)
	if err != nil {
		return err
	}
	prefixes := map[string][]string{}
	for _, s := range secrets {
		prefixes[s.KeyID] = append(prefixes[s.KeyID], s.Prefix)
	}
	out := make([]keyView, 0, len(keys))
	for _, k := range keys {
		out = append(out, viewOf(k, prefixes[k.ID]))
	}
	return api.OK(c, http.StatusOK, out)
}

func (h *Handler) handleConsoleRevoke(c echo.Context) error {
	st := getState(c)
	ctx := c.Request().Context()
	req, err := bindConsole(c)
	if err != nil {
		return err
	}
	k, err := h.getKeyByID(c, st.tenant.ID, req.ID)
	if err != nil {
		return err
	}
	var v keyView
	from := actor(c, st)
	err = h.Auth.CheckCode(ctx, *st.user, req.Code, from, func(q *db.Queries, _ bool) error {
		if err := apikey.Revoke(ctx, q, st.tenant.ID, k.ID, from, time.Now()); err != nil {
			return err
		}
		v, err = loadKeyView(ctx, q, st.tenant.ID, k.ID)
		return err
	})
	if err != nil {
		return consoleError(err)
	}
	return api.OK(c, http.StatusOK, v)
}
