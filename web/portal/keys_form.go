package portal

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"keyward/db"
	"keyward/views"
	"keyward/web/apikey"
	"keyward/web/auth"
)

// requireManager lets owners and admins through to key operations; a
// viewer gets a 403 page that says why.
func (h *Handler) requireManager(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !canManage(getState(c)) {
			return echo.NewHTTPError(http.StatusForbidden, "Your role (viewer) can see API keys but not create or change them. Ask an owner or admin.")
		}
		return next(c)
	}
}

func canManage(st *state) bool {
	return st.user != nil && (st.user.Role == auth.RoleOwner || st.user.Role == auth.RoleAdmin)
}

// readKeyForm reads a create or edit form: the values as typed (to show
// again) and the Config they mean, or a FieldError.
func readKeyForm(c echo.Context) (views.KeyForm, apikey.Config, error) {
	vals, _ := c.FormParams()
	f := views.KeyForm{
		Name: c.FormValue("name"), Description: c.FormValue("description"),
		Environment: c.FormValue("environment"), Preset: c.FormValue("preset"), Scopes: vals["scopes"],
		Sources: c.FormValue("sources"), IPAllowlist: c.FormValue("ip_allowlist"),
		RateRequests: strings.TrimSpace(c.FormValue("rate_limit_requests")), RateWindow: c.FormValue("rate_limit_window"),
		ExpiresAt: strings.TrimSpace(c.FormValue("expires_at")),
	}
	cfg := apikey.Config{
		Name: f.Name, Description: f.Description, Environment: apikey.Environment(f.Environment),
		Sources: splitList(f.Sources), IPAllowlist: splitList(f.IPAllowlist),
	}
	if f.Preset == "custom" || f.Preset == "" {
		cfg.Scopes = f.Scopes
	} else if cfg.Scopes = apikey.PresetScopes(f.Preset); cfg.Scopes == nil {
		return f, cfg, &apikey.FieldError{Field: "scopes", Message: "Choose one of the permission presets or individual scopes."}
	}
	if f.RateRequests != "" {
		n, err := strconv.Atoi(f.RateRequests)
		if err != nil {
			return f, cfg, &apikey.FieldError{Field: "rate_limit", Message: "The rate limit must be a whole number of requests."}
		}
		w, err := time.ParseDuration(f.RateWindow)
		if err != nil {
			return f, cfg, &apikey.FieldError{Field: "rate_limit", Message: "The rate-limit window must be 1m, 1h or 24h."}
		}
		cfg.RateLimit = &apikey.RateLimit{Requests: n, Window: w}
	}
	if f.ExpiresAt != "" {
		d, err := time.Parse("2006-01-02", f.ExpiresAt)
		if err != nil {
			return f, cfg, &apikey.FieldError{Field: "expires_at", Message: "The expiry must be a date such as 2027-01-31."}
		}
		cfg.ExpiresAt = &d
	}
	return f, cfg, nil
}

// formOf fills a form from a key, for editing.
func formOf(k db.APIKey) views.KeyForm {
	f := views.KeyForm{
		Name: k.Name, Description: k.Description, Environment: k.Environment, Preset: "custom", Scopes: k.Scopes,
		Sources: strings.Join(k.Sources, "\n"), IPAllowlist: strings.Join(k.IpAllowlist, "\n"), RateWindow: "1h",
	}
	for _, p := range apikey.Presets {
		if apikey.Summary(k.Scopes) == p.Label {
			f.Preset = p.ID
		}
	}
	if r := apikey.KeyRateLimit(k); r != nil {
		f.RateRequests, f.RateWindow = strconv.Itoa(r.Requests), shortDuration(r.Window)
	}
	if k.ExpiresAt != nil {
		f.ExpiresAt = k.ExpiresAt.UTC().Format("2006-01-02")
	}
	return f
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' || r == ' ' || r == '\t' })
}

func shortDuration(d time.Duration) string {
	switch d {
	case time.Minute:
		return "1m"
	case time.Hour:
		return "1h"
	case 24 * time.Hour:
		return "24h"
	}
	return d.String()
}

func planDefault(plan string) string {
	return fmt.Sprintf("%s requests per hour (%s plan)", formatInt(auth.Plans[plan]), plan)
}

func formatInt(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// opError maps an operation's failure to a message for its form and a
// status; ok is false for errors the error handler should take.
func opError(c echo.Context, err error) (msg, field string, status int, ok bool) {
	var fe *apikey.FieldError
	if m, st := codeError(c, err); m != "" {
		return m, "code", st, true
	}
	switch {
	case errors.As(err, &fe):
		return fe.Message, fe.Field, http.StatusBadRequest, true
	case errors.Is(err, apikey.ErrRevoked):
		return "This key is revoked: it can never be enabled or changed again.", "", http.StatusConflict, true
	}
	return "", "", 0, false
}
