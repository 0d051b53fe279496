package portal

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"keyward/views"
	"keyward/web/apikey"
	"keyward/web/audit"
	"keyward/web/auth"
)

const keysPerPage = 25

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
		row.ExpiresSoon = expiresSoon(k, now)
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

// expiresSoon is the mark of an active key that expires within 14 days,
// in the words of the pages' times ("Expires in 3 days", "Expires in 5
// hours"), or "".
func expiresSoon(k apikey.Key, now time.Time) string {
	if !apikey.ExpiresSoon(k, now) {
		return ""
	}
	return "Expires " + views.Relative(*k.ExpiresAt, now)
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

// usageCharts turns the key's requests per hour by outcome into the
// page's charts: the last 24 hours by hour, and the last 7 and 30 days by
// UTC day. hours start at first, a UTC midnight.
func usageCharts(hours []apikey.Outcomes, first time.Time) []views.Chart {
	counts := func(o apikey.Outcomes) views.Counts {
		return views.Counts{o.Success, o.ClientError, o.RateLimited, o.ServerError}
	}
	day := views.Chart{ID: "usage-24h", Caption: "Last 24 hours", Span: "Hour (UTC)"}
	for i := max(len(hours)-24, 0); i < len(hours); i++ {
		start := first.Add(time.Duration(i) * time.Hour)
		b := views.Bar{Label: start.Format("Jan 2, 15:00") + "–" + start.Add(time.Hour).Format("15:00") + " UTC", Counts: counts(hours[i])}
		if start.Hour()%3 == 0 {
			b.Tick, b.Minor = start.Format("15:00"), start.Hour()%6 != 0
		}
		day.Bars = append(day.Bars, b)
	}
	var days []views.Bar
	for d := 0; d*24 < len(hours); d++ {
		var sum apikey.Outcomes
		for _, o := range hours[d*24 : min((d+1)*24, len(hours))] {
			sum = sum.Add(o)
		}
		start := first.AddDate(0, 0, d)
		days = append(days, views.Bar{Label: start.Format("Mon Jan 2") + " (UTC)", Tick: start.Format("Jan 2"), Counts: counts(sum)})
	}
	// Ticks count back from today, so that today is always named: every
	// day of the week (every other one on narrow screens), every fifth day
	// of the month (every tenth).
	week := views.Chart{ID: "usage-7d", Caption: "Last 7 days", Span: "Day (UTC)"}
	for i, b := range days[max(len(days)-7, 0):] {
		b.Minor = (6-i)%2 != 0
		week.Bars = append(week.Bars, b)
	}
	month := views.Chart{ID: "usage-30d", Caption: "Last 30 days", Span: "Day (UTC)"}
	for i, b := range days {
		ago := len(days) - 1 - i
		if ago%5 != 0 {
			b.Tick = ""
		}
		b.Minor = ago%10 != 0
		month.Bars = append(month.Bars, b)
	}
	return []views.Chart{day, week, month}
}

func (h *Handler) handleKeyDetail(c echo.Context) error {
	p, err := h.keyDetail(c, c.Param("id"))
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.KeyDetailPage(meta(c, p.Name, "api-keys"), p))
}

// actorName says who an audit event's actor is: a user's email, or the
// kind of actor.
func actorName(e audit.Entry, emails map[int64]string) string {
	if e.ActorType == audit.ActorUser {
		if id, err := strconv.ParseInt(e.ActorID, 10, 64); err == nil && emails[id] != "" {
			return emails[id]
		}
	}
	if e.ActorType == audit.ActorAPIKey {
		return "the key itself"
	}
	return e.ActorType
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
	status := k.Status(now)
	p := views.KeyDetailProps{
		ID: k.ID, Name: k.Name, Description: k.Description, Environment: string(k.Environment),
		Status: status, Permissions: apikey.Summary(k.Scopes), Scopes: strings.Join(k.Scopes, ", "),
		Sources: join(k.Sources, "any source"), IPAllowlist: join(k.IPAllowlist, "any address"),
		RateLimit: rateLimitText(k, st.tenant), Created: views.At(k.CreatedAt, now), CreatedBy: by,
		LastUsed: views.AtPtr(k.LastUsedAt, now), LastUsedIP: k.LastUsedIP,
		CanManage: canManage(st), Grace: "1h", Charts: usageCharts(d.Hours, d.First),
	}
	p.Expiry, p.ExpiryNote = expiry(k, now)
	if k.RevokedAt != nil {
		p.Revoked = &views.Revocation{At: views.At(*k.RevokedAt, now), By: "unknown"}
		if d.Revocation != nil {
			p.Revoked.By = actorName(*d.Revocation, emails)
		}
	}
	if k.Leaked != nil {
		p.Leak = &views.LeakBanner{At: views.At(k.Leaked.At, now), Source: k.Leaked.Source, URL: k.Leaked.URL, Advice: leakAdvice(k, status)}
	}
	for _, s := range d.Secrets {
		row := views.SecretRow{Prefix: s.Prefix, Created: views.At(s.CreatedAt, now), LastRequest: views.AtPtr(s.LastRequestAt, now)}
		row.State, row.Class, row.Until = secretState(k, status, s, now)
		row.EndGrace = p.CanManage && status != apikey.StatusRevoked && s.InGrace(now)
		p.Secrets = append(p.Secrets, row)
	}
	for _, e := range d.History {
		p.History = append(p.History, views.AuditRow{When: views.At(e.At, now), Action: e.Action, Name: audit.ActionName(e.Action),
			Actor: actorName(e, emails), IP: e.IP, Lines: audit.Describe(e.Action, e.Diff), Diff: string(e.Diff)})
	}
	return p, nil
}

// leakAdvice says what to do about a key reported leaked, by its status
// now and whether the reported secret is still one of its live ones: a
// key disabled for a leak and enabled again works with the very secret
// that leaked.
func leakAdvice(k apikey.Key, status string) string {
	live := slices.Contains(k.Live, k.Leaked.Prefix)
	switch {
	case status == apikey.StatusRevoked:
		return "It is revoked: make a new key for the clients that used it."
	case live && status == apikey.StatusDisabled:
		return "It is disabled: revoke it and make a new key, or enable it again if the report was wrong."
	case live && status == apikey.StatusExpired:
		return "It has expired, but the reported secret would work again if its expiry were extended: make a new key instead."
	case live:
		return "The reported secret still works: the key was enabled again after the report. Rotate or revoke the key unless the report was wrong."
	}
	return "The reported secret no longer works. If the key's current secret may have leaked too, rotate or revoke the key."
}

// secretState says whether a secret works, consistently with its key: a
// key's revocation, disablement or expiry speaks for all its secrets.
func secretState(k apikey.Key, status string, s apikey.Secret, now time.Time) (state, class string, until *views.When) {
	switch {
	case status == apikey.StatusRevoked:
		return "revoked with the key", "revoked", nil
	case s.ExpiresAt != nil && !s.ExpiresAt.After(now):
		return "expired", "expired", views.AtPtr(s.ExpiresAt, now)
	case status == apikey.StatusDisabled && s.InGrace(now):
		return "disabled with the key; its rotation grace ends", "disabled", views.AtPtr(s.ExpiresAt, now)
	case status == apikey.StatusDisabled:
		return "disabled with the key", "disabled", nil
	case status == apikey.StatusExpired:
		return "expired with the key", "expired", views.AtPtr(k.ExpiresAt, now)
	case s.InGrace(now):
		return "in rotation grace, stops working", "grace", views.AtPtr(s.ExpiresAt, now)
	}
	return "active", "active", nil
}
