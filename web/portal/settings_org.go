package portal

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"keyward/views"
	"keyward/web/apikey"
	"keyward/web/errs"
	"keyward/web/org"
)

func daysText(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

func orgForm(s org.Settings) views.OrgForm {
	return views.OrgForm{Name: s.Name, MaxLifetimeDays: daysText(s.Policy.MaxLifetimeDays), IdleDisableDays: daysText(s.Policy.IdleDisableDays),
		DefaultExpiryDays: daysText(s.Policy.DefaultExpiryDays), RequireProdAllowlist: s.Policy.RequireProdAllowlist,
		LeakAction: s.Policy.Leak()}
}

// renderOrg shows the organisation page; form, when not nil, is what the
// owner typed, kept after a refused save.
func (h *Handler) renderOrg(c echo.Context, status int, form *views.OrgForm, p views.OrgProps) error {
	pg, err := h.Org.Get(c.Request().Context(), caller(c))
	if err != nil {
		return err
	}
	p.Form = orgForm(pg.Settings)
	if form != nil {
		p.Form = *form
	}
	p.Plan = pg.Settings.Plan + ": " + formatInt(pg.PlanLimit) + " requests per hour by default"
	for _, b := range pg.Breaches {
		p.Breaches = append(p.Breaches, views.BreachRow{ID: b.Key.ID, Name: b.Key.Name, Environment: string(b.Key.Environment),
			Policies: errs.Join(b.Policies)})
	}
	return render(c, status, views.OrgSettingsPage(meta(c, "Organisation", "settings"), p))
}

func (h *Handler) handleOrg(c echo.Context) error {
	return h.renderOrg(c, http.StatusOK, nil, views.OrgProps{})
}

// parseOrgForm reads the organisation form: the values as typed and the
// settings they mean. A number of days that is not one is reported as
// such, with everything else.
func parseOrgForm(c echo.Context) (views.OrgForm, org.Settings, errs.Fields) {
	f := views.OrgForm{Name: c.FormValue("name"), MaxLifetimeDays: strings.TrimSpace(c.FormValue("max_lifetime_days")),
		IdleDisableDays: strings.TrimSpace(c.FormValue("idle_disable_days")), DefaultExpiryDays: strings.TrimSpace(c.FormValue("default_expiry_days")),
		RequireProdAllowlist: c.FormValue("require_prod_allowlist") != "", LeakAction: c.FormValue("leak_action")}
	var bad errs.Fields
	days := func(name, v string) int {
		if v == "" {
			return 0
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > apikey.MaxPolicyDays {
			bad.Add(name, "Enter a number of days from 1 to 3650, or leave it empty for no limit.")
			return 0
		}
		return n
	}
	s := org.Settings{Name: f.Name, Policy: apikey.Policy{
		MaxLifetimeDays: days("max_lifetime_days", f.MaxLifetimeDays), IdleDisableDays: days("idle_disable_days", f.IdleDisableDays),
		DefaultExpiryDays: days("default_expiry_days", f.DefaultExpiryDays), RequireProdAllowlist: f.RequireProdAllowlist,
		LeakAction: f.LeakAction}}
	return f, s, bad
}

func (h *Handler) handleOrgSave(c echo.Context) error {
	f, s, bad := parseOrgForm(c)
	err := bad.Err()
	if err == nil {
		err = h.Org.Save(c.Request().Context(), caller(c), c.FormValue("code"), s)
	}
	if err == nil {
		return h.done(c, "/settings/organization", "Settings saved. Keys that break a policy are listed below; none was changed.")
	}
	prob, fields, ok := formError(c, err)
	if !ok {
		return err
	}
	return h.renderOrg(c, prob.Status, &f, views.OrgProps{Error: prob.Message, Errors: fields})
}
