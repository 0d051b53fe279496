package portal

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"keyward/web/api"
	"keyward/web/apikey"
	"keyward/web/errs"
	"keyward/web/problem"
)

// errKeysCannotManage: management is portal-only.
var errKeysCannotManage = errs.New(errs.Forbidden, "", "API keys cannot manage API keys")

// rejectAPIKeys: a request that carries an API key, in either header, gets
// 403 whatever else it carries.
func rejectAPIKeys(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Header.Get("X-API-Key") != "" || strings.HasPrefix(strings.ToLower(r.Header.Get(echo.HeaderAuthorization)), "bearer ") {
			return errKeysCannotManage
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
		case st.user == nil || !st.mfa || !st.user.TOTPEnrolled:
			return errs.New(errs.Unauthorized, "", "Sign in to the portal (password and TOTP) first; these routes take a portal session.")
		case st.user.MustChangePassword:
			return errs.New(errs.Forbidden, "", "Change your one-time password in the portal first.")
		case c.Request().Method != http.MethodGet && !canManage(st):
			return errs.New(errs.Forbidden, "", "Your role (viewer) cannot create or change API keys.")
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
		return req, problem.Unsupported()
	}
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		var he *echo.HTTPError
		if errors.As(err, &tooBig) || errors.As(err, &he) && he.Code == http.StatusRequestEntityTooLarge {
			return req, problem.TooLarge(bodyLimit)
		}
		return req, errs.New(errs.Invalid, "", consoleJSONProblem(err))
	}
	if dec.More() {
		return req, errs.New(errs.Invalid, "", "The body must hold one JSON object and nothing after it.")
	}
	return req, nil
}

// consoleJSONProblem says what is wrong with a console body in the
// route's own words, never the decoder's Go names.
func consoleJSONProblem(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "The body is not valid JSON: send one JSON object."
	case errors.As(err, &typ) && typ.Field != "":
		return fmt.Sprintf("%s has the wrong type: send %s.", typ.Field, jsonTypeName(typ.Type.Kind()))
	case errors.As(err, &typ):
		return "The body must be a JSON object."
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "Unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ") +
			": the fields are id, name, description, environment, scopes, sources, ip_allowlist, rate_limit, expires_at, grace and code."
	}
	return "The body is not valid JSON for this route."
}

func jsonTypeName(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "a whole number"
	case reflect.Slice:
		return "an array"
	case reflect.Struct, reflect.Pointer, reflect.Map:
		return "an object, or a string in RFC 3339 for a time"
	}
	return "another type"
}

// configOf reads a console body into a key configuration; an unreadable
// window is reported with the rest.
func configOf(req consoleRequest) apikey.Config {
	cfg := apikey.Config{Name: req.Name, Description: req.Description, Environment: apikey.Environment(req.Environment),
		Scopes: req.Scopes, Sources: req.Sources, IPAllowlist: req.IPAllowlist, ExpiresAt: req.ExpiresAt}
	if req.RateLimit != nil {
		w, err := apikey.ParseWindow(req.RateLimit.Window)
		if err != nil {
			cfg.Unreadable.Add("rate_limit", "rate_limit.window must be 1m, 1h or 24h.")
		} else {
			cfg.RateLimit = &apikey.RateLimit{Requests: req.RateLimit.Requests, Window: w}
		}
	}
	return cfg
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

func (h *Handler) viewOf(k apikey.Key) keyView {
	v := keyView{ID: k.ID, Name: k.Name, Description: k.Description, Environment: string(k.Environment),
		Status: k.Status(h.Now()), Scopes: k.Scopes, Sources: k.Sources, IPAllowlist: k.IPAllowlist,
		ExpiresAt: k.ExpiresAt, CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, LastUsedIP: k.LastUsedIP, Prefixes: k.Live}
	if v.Prefixes == nil {
		v.Prefixes = []string{}
	}
	if r := k.RateLimit; r != nil {
		v.RateLimit = &consoleRateLimit{Requests: r.Requests, Window: shortDuration(r.Window)}
	}
	return v
}

func (h *Handler) handleConsoleGenerate(c echo.Context) error {
	req, err := bindConsole(c)
	if err != nil {
		return err
	}
	k, full, err := h.Keys.Create(c.Request().Context(), caller(c), req.Code, configOf(req))
	if err != nil {
		return err
	}
	v := h.viewOf(k)
	v.Key = full
	return api.OK(c, http.StatusCreated, v)
}

func (h *Handler) handleConsoleRotate(c echo.Context) error {
	req, err := bindConsole(c)
	if err != nil {
		return err
	}
	grace, err := apikey.ParseGrace(req.Grace)
	if err != nil {
		return err
	}
	k, full, err := h.Keys.Rotate(c.Request().Context(), caller(c), req.Code, req.ID, grace)
	if err != nil {
		return err
	}
	v := h.viewOf(k)
	v.Key = full
	return api.OK(c, http.StatusOK, v)
}

// consoleListCap bounds GET /api/v1/orgs/api-key without ?id=; the
// portal's list pages through more.
const consoleListCap = 1000

// handleConsoleGet returns one key (?id=) or every key of the tenant (up
// to consoleListCap, newest first).
func (h *Handler) handleConsoleGet(c echo.Context) error {
	ctx := c.Request().Context()
	tenant := getState(c).tenant.ID
	if id := c.QueryParam("id"); id != "" {
		k, err := h.Keys.Get(ctx, tenant, id)
		if err != nil {
			return err
		}
		return api.OK(c, http.StatusOK, h.viewOf(k))
	}
	keys, err := h.Keys.All(ctx, tenant, consoleListCap)
	if err != nil {
		return err
	}
	out := make([]keyView, 0, len(keys))
	for _, k := range keys {
		out = append(out, h.viewOf(k))
	}
	return api.OK(c, http.StatusOK, out)
}

func (h *Handler) handleConsoleRevoke(c echo.Context) error {
	req, err := bindConsole(c)
	if err != nil {
		return err
	}
	k, err := h.Keys.Revoke(c.Request().Context(), caller(c), req.Code, req.ID)
	if err != nil {
		return err
	}
	return api.OK(c, http.StatusOK, h.viewOf(k))
}
