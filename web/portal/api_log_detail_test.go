package portal_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"keyward/web/apikey"
	"keyward/web/auth"
	"keyward/web/webtest"
)

// TestAPILogShowsErrorCodesAndRequests: a refused request's row shows its
// error code, and its own page shows the code, the user agent and the
// secret's prefix, never the key; another tenant's request is not found.
func TestAPILogShowsErrorCodesAndRequests(t *testing.T) {
	e := webtest.New(t)
	owner := e.User(e.Tenant, "owner@acme.test", auth.RoleOwner)
	k, full := e.Key(e.Tenant, owner, apikey.Config{Name: "Fenced", Environment: apikey.Production, Scopes: apikey.AllScopes,
		IPAllowlist: []string{"203.0.113.0/24"}})
	const ua = "acme-sync/2.1 (+https://example.test/bot)"
	r := e.API("GET", "/api/v1/key", full, "", "User-Agent", ua)
	if r.Status != http.StatusForbidden || !strings.Contains(r.Body, "IP_NOT_ALLOWED") {
		t.Fatalf("a request from outside the allowlist: %d %s", r.Status, r.Body)
	}
	rid := r.Header.Get("X-Request-Id")
	globex := e.NewTenant("globex")
	gowner := e.User(globex, "owner@globex.test", auth.RoleOwner)
	_, theirs := e.Key(globex, gowner, apikey.Config{Name: "Theirs", Environment: apikey.Production, Scopes: apikey.AllScopes})
	theirRID := e.API("GET", "/api/v1/key", theirs, "").Header.Get("X-Request-Id")
	e.App.Usage.Flush(context.Background())

	v := newAdmin(t, e, "vic@acme.test", auth.RoleViewer)
	r = v.c.Get("/settings/developers/api-logs")
	row := regexp.MustCompile(`(?s)<tr data-testid="api-log-row">.*?</tr>`).FindString(r.Body)
	if !strings.Contains(row, `<td data-testid="api-log-code"><code>IP_NOT_ALLOWED</code></td>`) || !strings.Contains(row, ">403") {
		t.Fatalf("the refusal's row: %s", row)
	}
	m := regexp.MustCompile(`href="(/settings/developers/api-logs/[^"]+)" data-testid="api-log-link"`).FindStringSubmatch(row)
	if m == nil {
		t.Fatal("the row links to no request page")
	}
	detail := html.UnescapeString(m[1])
	for _, path := range []string{detail, "/settings/developers/api-logs/" + rid} { // with the time the log links with, and without
		r = v.c.Get(path)
		if r.Status != 200 {
			t.Fatalf("%s: %d", path, r.Status)
		}
		for _, want := range []string{`data-testid="api-log-request-id">` + rid + `<`, `<dd data-testid="api-log-code"><code>IP_NOT_ALLOWED</code>`,
			html.EscapeString(ua), prefixOf(t, full) + "…", `href="/settings/developers/api-keys/` + k.ID + `">Fenced<`, ">403<"} {
			if !strings.Contains(r.Body, want) {
				t.Errorf("%s lacks %s", path, want)
			}
		}
		if strings.Contains(r.Body, full) {
			t.Fatalf("%s shows the key", path)
		}
	}
	var stored string
	e.Store.Pool.QueryRow(context.Background(), `SELECT user_agent FROM api_request_logs WHERE request_id = $1`, rid).Scan(&stored)
	if stored != ua {
		t.Errorf("stored user agent %q", stored)
	}
	// Another tenant's request, and one that does not exist, are not found,
	// with or without a time.
	for _, path := range []string{"/settings/developers/api-logs/" + theirRID, "/settings/developers/api-logs/" + theirRID + "?at=" + url.QueryEscape(time.Now().Format(time.RFC3339Nano)),
		"/settings/developers/api-logs/no-such-request"} {
		if r := v.c.Get(path); r.Status != http.StatusNotFound {
			t.Errorf("%s: %d", path, r.Status)
		}
	}
}

// TestAPILogFiltersAndPages: the log filters by time range, path prefix
// and address, besides key and status, and pages both ways.
func TestAPILogFiltersAndPages(t *testing.T) {
	e := webtest.New(t)
	owner := e.User(e.Tenant, "owner@acme.test", auth.RoleOwner)
	k, _ := e.Key(e.Tenant, owner, apikey.Config{Name: "k", Environment: apikey.Production, Scopes: apikey.AllScopes})
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	if e.Clock.Now().Before(base.Add(200 * time.Minute)) {
		t.Skip("the test's rows are dated March 2026")
	}
	// 120 requests a minute apart: even ones to /api/v1/key from
	// 192.0.2.1, odd ones to /api/v1/events from 198.51.100.2.
	if _, err := e.Store.Pool.Exec(context.Background(), `INSERT INTO api_request_logs
		(tenant_id, key_id, key_prefix, method, path, status, ip, latency_us, request_id, at)
		SELECT $1, $2, 'kw_prod_x', 'GET', CASE WHEN i % 2 = 0 THEN '/api/v1/key' ELSE '/api/v1/events' END, 200,
		       CASE WHEN i % 2 = 0 THEN '192.0.2.1' ELSE '198.51.100.2' END, 10, 'rid-' || lpad(i::text, 3, '0'), $3::timestamptz + i * interval '1 minute'
		FROM generate_series(0, 119) AS i`, e.Tenant.ID, k.ID, base); err != nil {
		t.Fatal(err)
	}
	v := newAdmin(t, e, "viewer@acme.test", auth.RoleViewer)
	ridRe := regexp.MustCompile(`title="request (rid-\d+)"`)
	rids := func(body string) []string {
		var out []string
		for _, m := range ridRe.FindAllStringSubmatch(body, -1) {
			out = append(out, m[1])
		}
		return out
	}
	link := func(body, testid string) string {
		m := regexp.MustCompile(`href="([^"]+)"[^>]* data-testid="` + testid + `"`).FindStringSubmatch(body)
		if m == nil {
			return ""
		}
		return html.UnescapeString(m[1])
	}
	for _, c := range []struct {
		query       string
		n           int
		first, last string
	}{
		{"?from=2026-03-01T10:30&to=2026-03-01T10:39", 10, "rid-039", "rid-030"}, // "to" includes its minute
		{"?from=2026-03-01T11:00:00Z", 60, "rid-119", "rid-070"},                 // a page of 50
		{"?to=2026-03-01", 120, "rid-119", "rid-070"},                            // a date: the whole day
		{"?to=2026-02-28", 0, "", ""},
		{"?path=/api/v1/ev&from=2026-03-01T10:00&to=2026-03-01T10:09", 5, "rid-009", "rid-001"},
		{"?ip=198.51.100.2&from=2026-03-01T10:00&to=2026-03-01T10:09", 5, "rid-009", "rid-001"},
		{"?ip=192.0.2.1&path=/api/v1/key&from=2026-03-01T10:00&to=2026-03-01T10:09", 5, "rid-008", "rid-000"},
		{"?ip=192.0.2.1&path=/api/v1/events", 0, "", ""},
	} {
		r := v.c.Get("/settings/developers/api-logs" + c.query)
		got := rids(r.Body)
		if c.n == 0 {
			if len(got) != 0 || !strings.Contains(r.Body, "No requests") {
				t.Errorf("%s: %d rows, want none", c.query, len(got))
			}
			continue
		}
		if len(got) != min(c.n, 50) || got[0] != c.first || got[len(got)-1] != c.last {
			t.Errorf("%s: %d rows %v…, want %d from %s to %s", c.query, len(got), got[:min(len(got), 3)], c.n, c.first, c.last)
		}
	}
	if r := v.c.Get("/settings/developers/api-logs?path=/api/v1/key&ip=192.0.2.1"); !strings.Contains(r.Body, `value="/api/v1/key"`) || !strings.Contains(r.Body, `value="192.0.2.1"`) || !strings.Contains(r.Body, `data-testid="clear-filters"`) {
		t.Error("the form does not keep the path and address filters, or offers no clearing")
	}

	// Paging: newest, older, older, then newer and newer back to the top.
	r := v.c.Get("/settings/developers/api-logs")
	page1 := rids(r.Body)
	if len(page1) != 50 || page1[0] != "rid-119" || link(r.Body, "api-log-newer") != "" || link(r.Body, "api-log-newest") != "" {
		t.Fatalf("the newest page: %d rows from %v, or it links to newer ones", len(page1), page1[:1])
	}
	r = v.c.Get(link(r.Body, "api-log-older"))
	page2 := rids(r.Body)
	if len(page2) != 50 || page2[0] != "rid-069" || link(r.Body, "api-log-newest") != "/settings/developers/api-logs" {
		t.Fatalf("the second page: %d rows from %v", len(page2), page2[:1])
	}
	r = v.c.Get(link(r.Body, "api-log-older"))
	if page3 := rids(r.Body); len(page3) != 20 || page3[0] != "rid-019" || link(r.Body, "api-log-older") != "" {
		t.Fatalf("the last page: %d rows from %v", len(page3), page3[:1])
	}
	r = v.c.Get(link(r.Body, "api-log-newer"))
	if got := rids(r.Body); strings.Join(got, ",") != strings.Join(page2, ",") || link(r.Body, "api-log-newer") == "" {
		t.Fatalf("newer than the last page: %v…, want the second page again", got[:min(len(got), 3)])
	}
	r = v.c.Get(link(r.Body, "api-log-newer"))
	if got := rids(r.Body); strings.Join(got, ",") != strings.Join(page1, ",") || link(r.Body, "api-log-newer") != "" {
		t.Fatalf("newer than the second page: %v…, want the newest page", got[:min(len(got), 3)])
	}
	// The filters travel with the page links.
	r = v.c.Get("/settings/developers/api-logs?path=/api/v1/key")
	if older := link(r.Body, "api-log-older"); !strings.Contains(older, "path=%2Fapi%2Fv1%2Fkey") {
		t.Errorf("the older link %s drops the path filter", older)
	}
}
