package portal

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"keyward/views"
	"keyward/web/apikey"
	"keyward/web/auth"
)

// requireManager lets owners and admins through to key operations; a
// viewer gets a 403 page that says why.
func (h *Handler) requireManager(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !canManage(getState(c)) {
			return auth.ErrCannotManageKeys
		}
		return next(c)
	}
}

func canManage(st *state) bool { return st.user != nil && st.user.CanManageKeys() }

// parseKeyForm reads a create or edit form: the values as typed (to show
// again) and the Config they mean. What cannot even be read (a number that
// is not one) goes into Config.Unreadable, so validation reports it with
// everything else.
//
// The expiry comes as expires_in: a preset number of days (see
// expiryPresets), "custom" for the date in expires_at, or "none". A form
// without expires_in (a script's, or an older page's) means the date in
// expires_at when there is one, and no expiry otherwise. now is when a
// preset counts from.
func parseKeyForm(vals url.Values, now time.Time) (views.KeyForm, apikey.Config) {
	get := func(k string) string { return vals.Get(k) }
	f := views.KeyForm{
		Name: get("name"), Description: get("description"),
		Environment: get("environment"), Preset: get("preset"), Scopes: vals["scopes"],
		Sources: get("sources"), IPAllowlist: get("ip_allowlist"),
		RateRequests: strings.TrimSpace(get("rate_limit_requests")), RateWindow: get("rate_limit_window"),
		ExpiresIn: strings.TrimSpace(get("expires_in")), ExpiresAt: strings.TrimSpace(get("expires_at")),
	}
	cfg := apikey.Config{
		Name: f.Name, Description: f.Description, Environment: apikey.Environment(f.Environment),
		Sources: splitList(f.Sources), IPAllowlist: splitList(f.IPAllowlist), ExpiresOnDate: true,
	}
	if f.Preset == "custom" || f.Preset == "" {
		cfg.Scopes = f.Scopes
	} else if cfg.Scopes = apikey.PresetScopes(f.Preset); cfg.Scopes == nil {
		cfg.Unreadable.Add("scopes", "Choose one of the permission presets or individual scopes.")
	}
	if f.RateRequests != "" {
		n, err := strconv.Atoi(f.RateRequests)
		if err != nil {
			cfg.Unreadable.Add("rate_limit", "The rate limit must be a whole number of requests.")
		}
		w, err := apikey.ParseWindow(f.RateWindow)
		if err != nil {
			cfg.Unreadable.Add("rate_limit", "The rate-limit window must be 1m, 1h or 24h.")
		}
		if !cfg.Unreadable.Has("rate_limit") {
			cfg.RateLimit = &apikey.RateLimit{Requests: n, Window: w}
		}
	}
	if f.ExpiresIn == "" {
		f.ExpiresIn = "none"
		if f.ExpiresAt != "" {
			f.ExpiresIn = "custom"
		}
	}
	switch days, preset := presetDays(f.ExpiresIn); {
	case preset:
		t := presetExpiry(now, days)
		cfg.ExpiresAt = &t
	case f.ExpiresIn == "none":
	case f.ExpiresIn != "custom":
		cfg.Unreadable.Add("expires_at", "Choose one of the expiry options.")
	case f.ExpiresAt == "":
		cfg.Unreadable.Add("expires_at", "Choose the date the key expires on, or another expiry option.")
	default:
		d, err := time.Parse(time.DateOnly, f.ExpiresAt)
		if err != nil {
			cfg.Unreadable.Add("expires_at", "The expiry must be a date such as 2027-01-31.")
		} else {
			cfg.ExpiresAt = &d
		}
	}
	return f, cfg
}

// expiryPresets are the key form's expiry choices, in days.
var expiryPresets = []int{7, 30, 60, 90}

// defaultExpiry is the choice a new key's form starts with.
const defaultExpiry = "90"

// presetDays reads an expires_in value that names a preset.
func presetDays(s string) (int, bool) {
	for _, d := range expiryPresets {
		if s == strconv.Itoa(d) {
			return d, true
		}
	}
	return 0, false
}

// presetExpiry is when a key given a preset of days at now expires: at the
// end of the UTC day that is days from now, i.e. at 00:00 UTC the day
// after. The key so works for at least days whole days, and its expiry
// reads as a date, like one chosen by hand (a date means 00:00 UTC).
func presetExpiry(now time.Time, days int) time.Time {
	d := now.UTC().AddDate(0, 0, days)
	return time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, time.UTC)
}

// expiryChoices are the presets as the form shows them, each with the
// moment it would give at now.
func expiryChoices(now time.Time) []views.ExpiryChoice {
	var out []views.ExpiryChoice
	for _, d := range expiryPresets {
		out = append(out, views.ExpiryChoice{Value: strconv.Itoa(d), Days: d, Until: presetExpiry(now, d)})
	}
	return out
}

// formOf fills a form from a key, for editing.
func formOf(k apikey.Key) views.KeyForm {
	f := views.KeyForm{
		Name: k.Name, Description: k.Description, Environment: string(k.Environment), Preset: "custom", Scopes: k.Scopes,
		Sources: strings.Join(k.Sources, "\n"), IPAllowlist: strings.Join(k.IPAllowlist, "\n"), RateWindow: "1h",
	}
	for _, p := range apikey.Presets {
		if apikey.Summary(k.Scopes) == p.Label {
			f.Preset = p.ID
		}
	}
	if r := k.RateLimit; r != nil {
		f.RateRequests, f.RateWindow = strconv.Itoa(r.Requests), shortDuration(r.Window)
	}
	f.ExpiresIn = "none"
	if k.ExpiresAt != nil {
		f.ExpiresIn, f.ExpiresAt = "custom", k.ExpiresAt.UTC().Format(time.DateOnly)
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

func planDefault(t *auth.Tenant) string {
	return fmt.Sprintf("%s requests per hour (%s plan)", formatInt(t.PlanLimit()), t.Plan)
}

func formatInt(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func (h *Handler) renderKeyForm(c echo.Context, status int, title string, p views.KeyFormProps) error {
	p.PlanDefault = planDefault(getState(c).tenant)
	p.ExpiryChoices = expiryChoices(h.Now())
	if !p.Editing && c.Request().Method != http.MethodPost && p.Form.ExpiresAt == "" {
		// A fresh create form offers the organisation's default expiry.
		d, err := h.Org.DefaultExpiry(c.Request().Context(), getState(c).tenant.ID)
		if err != nil {
			return err
		}
		if d != nil {
			p.Form.ExpiresAt = d.Format(time.DateOnly)
		}
	}
	return render(c, status, views.KeyFormPage(meta(c, title, "api-keys"), title, p))
}

func newKeyForm() views.KeyFormProps {
	return views.KeyFormProps{Action: "/settings/developers/api-keys", Submit: "Create API key",
		Form: views.KeyForm{Environment: "development", Preset: "read_only", RateWindow: "1h", ExpiresIn: defaultExpiry}}
}

// failedForm re-renders a key form with every problem of err, or passes
// err on to the error page.
func (h *Handler) failedForm(c echo.Context, err error, title string, p views.KeyFormProps) error {
	prob, fields, ok := formError(c, err)
	if !ok {
		return err
	}
	p.Error, p.Errors = prob.Message, fields
	return h.renderKeyForm(c, prob.Status, title, p)
}

func keyURL(id string) string { return "/settings/developers/api-keys/" + id }

// formValues reads the request's form; a body that is not a form is
// simply an empty one, which validation then explains.
func formValues(c echo.Context) url.Values {
	vals, err := c.FormParams()
	if err != nil {
		return url.Values{}
	}
	return vals
}
