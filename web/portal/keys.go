package portal

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"keyward/db"
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

func (h *Handler) userEmails(c echo.Context, tenantID int64) (map[int64]string, error) {
	users, err := h.Store.ListUsersByTenant(c.Request().Context(), tenantID)
	if err != nil {
		return nil, err
	}
	m := make(map[int64]string, len(users))
	for _, u := range users {
		m[u.ID] = u.Email
	}
	return m, nil
}

func rateLimitText(k db.APIKey, plan string) string {
	if r := apikey.KeyRateLimit(k); r != nil {
		return formatInt(r.Requests) + " / " + apikey.WindowName(r.Window)
	}
	return "plan default (" + formatInt(planLimit(plan)) + " / hour)"
}

func planLimit(plan string) int { return auth.Plans[plan] }

func (h *Handler) handleKeysList(c echo.Context) error {
	st := getState(c)
	ctx := c.Request().Context()
	env, status := c.QueryParam("environment"), c.QueryParam("status")
	if env != "" && !apikey.Environment(env).Valid() {
		env = ""
	}
	switch status {
	case "", apikey.StatusActive, apikey.StatusDisabled, apikey.StatusExpired, apikey.StatusRevoked:
	default:
		status = ""
	}
	page, _ := strconv.Atoi(c.QueryParam("page"))
	page = min(max(page, 1), 100_000) // keeps the offset far from int32 overflow
	keys, err := h.Store.ListAPIKeysByTenant(ctx, db.ListAPIKeysByTenantParams{
		TenantID: st.tenant.ID, Environment: env, Status: status, Lim: keysPerPage + 1, Off: int32((page - 1) * keysPerPage),
	})
	if err != nil {
		return err
	}
	anyKeys := len(keys) > 0 || env != "" || status != "" || page > 1
	if !anyKeys {
		all, err := h.Store.ListAPIKeysByTenant(ctx, db.ListAPIKeysByTenantParams{TenantID: st.tenant.ID, Lim: 1})
		if err != nil {
			return err
		}
		anyKeys = len(all) > 0
	}
	prefixes, err := h.Store.ListSecretPrefixes(ctx, st.tenant.ID)
	if err != nil {
		return err
	}
	prefixOf := map[string]string{}
	for _, p := range prefixes {
		prefixOf[p.KeyID] = p.Prefix
	}
	emails, err := h.userEmails(c, st.tenant.ID)
	if err != nil {
		return err
	}
	p := views.KeysListProps{Environment: env, Status: status, Page: page, CanManage: canManage(st), AnyKeys: anyKeys}
	if len(keys) > keysPerPage {
		keys = keys[:keysPerPage]
		p.NextURL = listURL(env, status, page+1)
	}
	if page > 1 {
		p.PrevURL = listURL(env, status, page-1)
	}
	now := time.Now()
	for _, k := range keys {
		prefix := prefixOf[k.ID]
		if prefix == "" {
			prefix = "kw_" + apikey.Environment(k.Environment).Token() + "_"
		}
		by := "—"
		if k.CreatedBy != nil {
			by = emails[*k.CreatedBy]
		}
		last := fmtTime(k.LastUsedAt)
		if k.LastUsedIp != "" {
			last += " from " + k.LastUsedIp
		}
		p.Rows = append(p.Rows, views.KeyRow{
			ID: k.ID, Name: k.Name, Prefix: prefix, Environment: k.Environment,
			Permissions: apikey.Summary(k.Scopes), Status: apikey.Status(k, now),
			Created: fmtTime(&k.CreatedAt), CreatedBy: by, LastUsed: last,
			Expiry: fmtTime(k.ExpiresAt), RateLimit: rateLimitText(k, st.tenant.Plan),
		})
	}
	return render(c, http.StatusOK, views.KeysListPage(meta(c, "API keys", "api-keys"), p))
}

// usage reads a key's requests per hour over the last 7 days and returns
// two series: the last 24 hours and the last 7 days.
func (h *Handler) usage(c echo.Context, tenantID int64, keyID string, now time.Time) ([]views.UsageSeries, error) {
	end := now.UTC().Truncate(time.Hour) // the current hour, the series' last
	const week = 7 * 24
	start := end.Add(-(week - 1) * time.Hour)
	rows, err := h.Store.CountKeyRequestsByHour(c.Request().Context(), db.CountKeyRequestsByHourParams{TenantID: tenantID, KeyID: keyID, Since: start})
	if err != nil {
		return nil, err
	}
	hours := make([]int64, week)
	for _, r := range rows {
		if i := int(r.Hour.UTC().Sub(start) / time.Hour); i >= 0 && i < week {
			hours[i] = r.Requests
		}
	}
	label := func(t time.Time) string { return t.Format("Jan 2 15:00") }
	return []views.UsageSeries{
		{Caption: "Last 24 hours", Hours: hours[week-24:], FirstLabel: label(end.Add(-23 * time.Hour)), LastLabel: label(end)},
		{Caption: "Last 7 days", Hours: hours, FirstLabel: label(start), LastLabel: label(end)},
	}, nil
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

// loadKey finds the tenant's key named by the :id path parameter. Another
// tenant's id, or a malformed one, is simply not found.
func (h *Handler) loadKey(c echo.Context) (db.APIKey, error) {
	st := getState(c)
	id := c.Param("id")
	if !apikey.ValidID(id) {
		return db.APIKey{}, db.ErrNotFound
	}
	k, err := h.Store.GetAPIKey(c.Request().Context(), db.GetAPIKeyParams{TenantID: st.tenant.ID, ID: id})
	if err != nil {
		return db.APIKey{}, db.Wrap(err)
	}
	return k, nil
}

func (h *Handler) handleKeyDetail(c echo.Context) error {
	return h.renderKeyDetail(c, http.StatusOK, "", "", "")
}

func (h *Handler) renderKeyDetail(c echo.Context, status int, errForm, errMsg, notice string) error {
	st := getState(c)
	ctx := c.Request().Context()
	k, err := h.loadKey(c)
	if err != nil {
		return err
	}
	secrets, err := h.Store.ListAPIKeySecrets(ctx, db.ListAPIKeySecretsParams{TenantID: st.tenant.ID, KeyID: k.ID})
	if err != nil {
		return err
	}
	events, err := h.Store.ListAuditEventsForTarget(ctx, db.ListAuditEventsForTargetParams{TenantID: &st.tenant.ID, TargetType: "api_key", TargetID: k.ID})
	if err != nil {
		return err
	}
	emails, err := h.userEmails(c, st.tenant.ID)
	if err != nil {
		return err
	}
	now := time.Now()
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
		ID: k.ID, Name: k.Name, Description: k.Description, Environment: k.Environment,
		Status: apikey.Status(k, now), Permissions: apikey.Summary(k.Scopes), Scopes: strings.Join(k.Scopes, ", "),
		Sources: join(k.Sources, "any source"), IPAllowlist: join(k.IpAllowlist, "any address"),
		RateLimit: rateLimitText(k, st.tenant.Plan), Expiry: fmtTime(k.ExpiresAt),
		Created: fmtTime(&k.CreatedAt), CreatedBy: by, LastUsed: fmtTime(k.LastUsedAt), LastUsedIP: k.LastUsedIp,
		CanManage: canManage(st), Error: errMsg, ErrorForm: errForm, Notice: notice, Grace: "1h",
	}
	if p.Usage, err = h.usage(c, st.tenant.ID, k.ID, now); err != nil {
		return err
	}
	if g := c.FormValue("grace"); errForm == "rotate" && slices.Contains([]string{"0", "1h", "24h", "168h"}, g) {
		p.Grace = g // a failed rotation keeps the window the admin chose
	}
	if k.ExpiresAt == nil {
		p.Expiry = "never"
	}
	for _, s := range secrets {
		state := "active"
		switch {
		case s.ExpiresAt != nil && !s.ExpiresAt.After(now):
			state = "expired " + fmtTime(s.ExpiresAt)
		case s.ExpiresAt != nil:
			state = "expiring at " + fmtTime(s.ExpiresAt) + " (rotation grace)"
		}
		p.Secrets = append(p.Secrets, views.SecretRow{Prefix: s.Prefix, Created: fmtTime(&s.CreatedAt), State: state})
	}
	for _, e := range events {
		actor := e.ActorType
		if e.ActorType == "user" {
			if id, err := strconv.ParseInt(e.ActorID, 10, 64); err == nil && emails[id] != "" {
				actor = emails[id]
			}
		}
		p.History = append(p.History, views.AuditRow{When: fmtTime(&e.OccurredAt), Action: e.Action, Actor: actor, IP: e.Ip, Diff: string(e.Diff)})
	}
	return render(c, status, views.KeyDetailPage(meta(c, k.Name, "api-keys"), p))
}
