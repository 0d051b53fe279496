package portal

import (
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

const keysPerPage = 25

func fmtTime(t *time.Time) string {
	if t == nil {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func rateLimitText(k apikey.Key, t *auth.Tenant) string {
	if r := k.RateLimit; r != nil {
		return formatInt(r.Requests) + " / " + apikey.WindowName(r.Window)
	}
	return "plan default (" + formatInt(t.PlanLimit()) + " / hour)"
}

func (h *Handler) handleKeysList(c echo.Context) error {
	st := getState(c)
	ctx := c.Request().Context()
	page, _ := strconv.Atoi(c.QueryParam("page"))
	res, err := h.Keys.List(ctx, st.tenant.ID, apikey.Filter{Environment: c.QueryParam("environment"), Status: c.QueryParam("status"),
		Page: page, PerPage: keysPerPage})
	if err != nil {
		return err
	}
	emails, err := h.Auth.Users(ctx, st.tenant.ID)
	if err != nil {
		return err
	}
	env, status, page := res.Filter.Environment, res.Filter.Status, res.Filter.Page
	p := views.KeysListProps{Environment: env, Status: status, Page: page, CanManage: canManage(st), AnyKeys: res.Any}
	if res.More {
		p.NextURL = listURL(env, status, page+1)
	}
	if page > 1 {
		p.PrevURL = listURL(env, status, page-1)
	}
	now := h.Now()
	for _, k := range res.Keys {
		by := "—"
		if k.CreatedBy != nil {
			by = emails[*k.CreatedBy]
		}
		last := fmtTime(k.LastUsedAt)
		if k.LastUsedIP != "" {
			last += " from " + k.LastUsedIP
		}
		p.Rows = append(p.Rows, views.KeyRow{
			ID: k.ID, Name: k.Name, Prefix: k.Prefix, Environment: string(k.Environment),
			Permissions: apikey.Summary(k.Scopes), Status: k.Status(now),
			Created: fmtTime(&k.CreatedAt), CreatedBy: by, LastUsed: last,
			Expiry: fmtTime(k.ExpiresAt), RateLimit: rateLimitText(k, st.tenant),
		})
	}
	return render(c, http.StatusOK, views.KeysListPage(meta(c, "API keys", "api-keys"), p))
}

// usageSeries turns a week of hourly counts into the page's two charts:
// the last 24 hours and the last 7 days.
func usageSeries(hours []int64, lastHour time.Time) []views.UsageSeries {
	week := len(hours)
	label := func(t time.Time) string { return t.Format("Jan 2 15:00") }
	start := lastHour.Add(-time.Duration(week-1) * time.Hour)
	return []views.UsageSeries{
		{Caption: "Last 24 hours", Hours: hours[week-24:], FirstLabel: label(lastHour.Add(-23 * time.Hour)), LastLabel: label(lastHour)},
		{Caption: "Last 7 days", Hours: hours, FirstLabel: label(start), LastLabel: label(lastHour)},
	}
}

func listURL(env, status string, page int) string {
	q := url.Values{}
	if env != "" {
		q.Set("environment", env)
	}
	if status != "" {
		q.Set("status", status)
	}
	q.Set("page", strconv.Itoa(page))
	return "/settings/developers/api-keys?" + q.Encode()
}

func (h *Handler) handleKeyDetail(c echo.Context) error {
	p, err := h.keyDetail(c, c.Param("id"))
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.KeyDetailPage(meta(c, p.Name, "api-keys"), p))
}

// keyDetail builds the detail page's props from the key service.
func (h *Handler) keyDetail(c echo.Context, id string) (views.KeyDetailProps, error) {
	st := getState(c)
	ctx := c.Request().Context()
	d, err := h.Keys.Detail(ctx, st.tenant.ID, id)
	if err != nil {
		return views.KeyDetailProps{}, err
	}
	emails, err := h.Auth.Users(ctx, st.tenant.ID)
	if err != nil {
		return views.KeyDetailProps{}, err
	}
	k, now := d.Key, h.Now()
	join := func(s []string, none string) string {
		if len(s) == 0 {
			return none
		}
		return strings.Join(s, ", ")
	}
	by := "—"
	if k.CreatedBy != nil {
		by = emails[*k.CreatedBy]
	}
	p := views.KeyDetailProps{
		ID: k.ID, Name: k.Name, Description: k.Description, Environment: string(k.Environment),
		Status: k.Status(now), Permissions: apikey.Summary(k.Scopes), Scopes: strings.Join(k.Scopes, ", "),
		Sources: join(k.Sources, "any source"), IPAllowlist: join(k.IPAllowlist, "any address"),
		RateLimit: rateLimitText(k, st.tenant), Expiry: fmtTime(k.ExpiresAt),
		Created: fmtTime(&k.CreatedAt), CreatedBy: by, LastUsed: fmtTime(k.LastUsedAt), LastUsedIP: k.LastUsedIP,
		CanManage: canManage(st), Grace: "1h", Usage: usageSeries(d.Hours, d.LastHour),
	}
	if k.ExpiresAt == nil {
		p.Expiry = "never"
	}
	for _, s := range d.Secrets {
		state := "active"
		switch {
		case s.ExpiresAt != nil && !s.ExpiresAt.After(now):
			state = "expired " + fmtTime(s.ExpiresAt)
		case s.ExpiresAt != nil:
			state = "expiring at " + fmtTime(s.ExpiresAt) + " (rotation grace)"
		}
		p.Secrets = append(p.Secrets, views.SecretRow{Prefix: s.Prefix, Created: fmtTime(&s.CreatedAt), State: state})
	}
	for _, e := range d.History {
		actor := e.ActorType
		if e.ActorType == "user" {
			if id, err := strconv.ParseInt(e.ActorID, 10, 64); err == nil && emails[id] != "" {
				actor = emails[id]
			}
		}
		p.History = append(p.History, views.AuditRow{When: fmtTime(&e.At), Action: e.Action, Actor: actor, IP: e.IP, Diff: string(e.Diff)})
	}
	return p, nil
}
