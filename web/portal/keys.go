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

// sortChoices are the key list's orders, as its form offers them.
var sortChoices = []views.Choice{
	{Value: apikey.SortNewest, Label: "Newest first"},
	{Value: apikey.SortOldest, Label: "Oldest first"},
	{Value: apikey.SortLastUsed, Label: "Recently used first"},
	{Value: apikey.SortLastUsedAsc, Label: "Least recently used first"},
	{Value: apikey.SortExpiresSoon, Label: "Expiring soonest first"},
	{Value: apikey.SortExpiresLatest, Label: "Expiring latest first"},
}

// sortColumns are the sortable columns: each one's two orders, the first
// being the one a click on it starts with.
var sortColumns = []struct {
	label       string
	first, then string
}{
	{"Created", apikey.SortNewest, apikey.SortOldest},
	{"Last used", apikey.SortLastUsed, apikey.SortLastUsedAsc},
	{"Expires", apikey.SortExpiresSoon, apikey.SortExpiresLatest},
}

// ascending says which orders go from small to large, for aria-sort.
var ascending = map[string]bool{apikey.SortOldest: true, apikey.SortLastUsedAsc: true, apikey.SortExpiresSoon: true}

// handleKeysList shows a page of the tenant's keys: searched by name or
// prefix (q), filtered by environment and status, sorted (sort), with how
// many match.
func (h *Handler) handleKeysList(c echo.Context) error {
	st := getState(c)
	ctx := c.Request().Context()
	page, _ := strconv.Atoi(c.QueryParam("page"))
	res, err := h.Keys.List(ctx, st.tenant.ID, apikey.Filter{Environment: c.QueryParam("environment"), Status: c.QueryParam("status"),
		Search: c.QueryParam("q"), Sort: c.QueryParam("sort"), Page: page, PerPage: keysPerPage})
	if err != nil {
		return err
	}
	emails, err := h.Auth.Users(ctx, st.tenant.ID)
	if err != nil {
		return err
	}
	f := res.Filter
	p := views.KeysListProps{Environment: f.Environment, Status: f.Status, Search: f.Search, Sort: f.Sort, Sorts: sortChoices,
		Page: f.Page, Matching: res.Matching, Filtered: f.Environment != "" || f.Status != "" || f.Search != "",
		CanManage: canManage(st), AnyKeys: res.Any, ClearURL: "/settings/developers/api-keys"}
	if res.More {
		p.NextURL = listURL(f, f.Sort, f.Page+1)
	}
	if f.Page > 1 {
		p.PrevURL = listURL(f, f.Sort, f.Page-1)
	}
	headers := []*views.SortHeader{&p.Created, &p.LastUsed, &p.Expiry}
	for i, col := range sortColumns {
		hd := views.SortHeader{Label: col.label, URL: listURL(f, col.first, 1)}
		if f.Sort == col.first || f.Sort == col.then {
			hd.Order = map[bool]string{true: "ascending", false: "descending"}[ascending[f.Sort]]
			if f.Sort == col.first {
				hd.URL = listURL(f, col.then, 1)
			}
		}
		*headers[i] = hd
	}
	now := h.Now()
	for _, k := range res.Keys {
		by := "—"
		if k.CreatedBy != nil {
			by = emails[*k.CreatedBy]
		}
		row := views.KeyRow{
			ID: k.ID, Name: k.Name, Prefix: k.Prefix, Environment: string(k.Environment),
			Permissions: apikey.Summary(k.Scopes), Status: k.Status(now),
			Created: views.At(k.CreatedAt, now), CreatedBy: by, LastUsed: views.AtPtr(k.LastUsedAt, now), LastUsedIP: k.LastUsedIP,
			RateLimit: rateLimitText(k, st.tenant),
		}
		row.Expiry, row.ExpiryNote = expiry(k, now)
		p.Rows = append(p.Rows, row)
	}
	return render(c, http.StatusOK, views.KeysListPage(meta(c, "API keys", "api-keys"), p))
}

// expiry is when the key expires, or, with nil, why it shows no time: it
// never expires, or it is revoked, which ended it before any expiry.
func expiry(k apikey.Key, now time.Time) (*views.When, string) {
	switch {
	case k.RevokedAt != nil:
		return nil, "— (revoked)"
	case k.ExpiresAt == nil:
		return nil, "never"
	}
	return views.AtPtr(k.ExpiresAt, now), ""
}

// listURL is the key list with filter f, in order sort, at page.
func listURL(f apikey.Filter, sort string, page int) string {
	q := url.Values{}
	if f.Search != "" {
		q.Set("q", f.Search)
	}
	if f.Environment != "" {
		q.Set("environment", f.Environment)
	}
	if f.Status != "" {
		q.Set("status", f.Status)
	}
	if sort != apikey.SortNewest {
		q.Set("sort", sort)
	}
	if page > 1 {
		q.Set("page", strconv.Itoa(page))
	}
	if len(q) == 0 {
		return "/settings/developers/api-keys"
	}
	return "/settings/developers/api-keys?" + q.Encode()
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
