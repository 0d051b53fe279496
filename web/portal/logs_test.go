package portal_test

import (
	"context"
	"html"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"keyward/db"
	"keyward/web/apikey"
	"keyward/web/audit"
	"keyward/web/auth"
	"keyward/web/webtest"
)

// TestAPILogsAndUsage: requests made with a tenant's keys appear in its
// request log, filtered by key and status, and in the key's usage chart;
// another tenant's never do.
func TestAPILogsAndUsage(t *testing.T) {
	e := webtest.New(t)
	owner := e.User(e.Tenant, "owner@acme.test", auth.RoleOwner)
	full := apikey.Config{Environment: apikey.Production, Scopes: apikey.AllScopes}
	full.Name = "Ingest"
	ingest, ingestKey := e.Key(e.Tenant, owner, full)
	full.Name, full.Scopes = "Reader", []string{apikey.ScopeEventsRead}
	reader, readerKey := e.Key(e.Tenant, owner, full)
	globex := e.NewTenant("globex")
	gowner := e.User(globex, "owner@globex.test", auth.RoleOwner)
	full.Name, full.Scopes = "Theirs", apikey.AllScopes
	_, theirKey := e.Key(globex, gowner, full)

	for range 3 {
		e.API("GET", "/api/v1/key", ingestKey, "")
	}
	e.API("POST", "/api/v1/events", readerKey, `{"source":"s","type":"t","occurred_at":"2026-01-02T15:04:05Z"}`, "Idempotency-Key", "x") // 403
	e.API("GET", "/api/v1/events/secret-path-of-globex", theirKey, "")
	e.App.Usage.Flush(context.Background())

	v := newAdmin(t, e, "viewer@acme.test", auth.RoleViewer) // reading the log needs no manager role
	r := v.c.Get("/settings/developers/api-logs")
	if r.Status != 200 || strings.Count(r.Body, `data-testid="api-log-row"`) != 4 {
		t.Fatalf("log page: %d, %d rows", r.Status, strings.Count(r.Body, `data-testid="api-log-row"`))
	}
	if strings.Contains(r.Body, "secret-path-of-globex") || strings.Contains(r.Body, "Theirs") {
		t.Fatal("another tenant's requests are shown")
	}
	if r := v.c.Get("/settings/developers/api-logs?status=4xx"); strings.Count(r.Body, `data-testid="api-log-row"`) != 1 || !strings.Contains(r.Body, ">403<") {
		t.Errorf("status filter: %d rows", strings.Count(r.Body, `data-testid="api-log-row"`))
	}
	if r := v.c.Get("/settings/developers/api-logs?key=" + ingest.ID); strings.Count(r.Body, `data-testid="api-log-row"`) != 3 || strings.Contains(r.Body, "<code class=\"path\">/api/v1/events") {
		t.Errorf("key filter: %d rows", strings.Count(r.Body, `data-testid="api-log-row"`))
	}
	if r := v.c.Get("/settings/developers/api-logs?key=" + reader.ID + "&status=2xx"); !strings.Contains(r.Body, "No requests") {
		t.Error("key and status filters together should match nothing")
	}
	// Nonsense filters are ignored, not errors.
	if r := v.c.Get("/settings/developers/api-logs?key=x&status=teapot&before=yesterday"); r.Status != 200 || strings.Count(r.Body, `data-testid="api-log-row"`) != 4 {
		t.Errorf("nonsense filters: %d", r.Status)
	}

	// Pages of 50, newest first, through an "older" link.
	for range 50 {
		e.API("GET", "/api/v1/key", ingestKey, "")
	}
	e.App.Usage.Flush(context.Background())
	r = v.c.Get("/settings/developers/api-logs")
	m := regexp.MustCompile(`href="(/settings/developers/api-logs\?before=[^"]+)"`).FindStringSubmatch(r.Body)
	if strings.Count(r.Body, `data-testid="api-log-row"`) != 50 || m == nil {
		t.Fatalf("first page: %d rows, older link %v", strings.Count(r.Body, `data-testid="api-log-row"`), m)
	}
	if r := v.c.Get(html.UnescapeString(m[1])); strings.Count(r.Body, `data-testid="api-log-row"`) != 4 {
		t.Errorf("second page: %d rows, want 4", strings.Count(r.Body, `data-testid="api-log-row"`))
	}

	r = v.c.Get("/settings/developers/api-keys/" + ingest.ID)
	if strings.Count(r.Body, `data-testid="usage-chart" data-total="53"`) != 3 {
		t.Errorf("usage charts of the ingest key do not all count 53 requests")
	}
}

// TestAPILogsPagesThroughTies: rows of the same microsecond are neither
// lost nor repeated between pages.
func TestAPILogsPagesThroughTies(t *testing.T) {
	e := webtest.New(t)
	owner := e.User(e.Tenant, "owner@acme.test", auth.RoleOwner)
	k, _ := e.Key(e.Tenant, owner, apikey.Config{Name: "k", Environment: apikey.Production, Scopes: apikey.AllScopes})
	_, err := e.Store.Pool.Exec(context.Background(), `INSERT INTO api_request_logs
		(tenant_id, key_id, key_prefix, method, path, status, ip, latency_us, request_id, at)
		SELECT $1, $2, 'kw_prod_x', 'GET', '/api/v1/key', 200, '192.0.2.1', 10, 'rid-' || lpad(i::text, 3, '0'), now()
		FROM generate_series(1, 120) AS i`, e.Tenant.ID, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	v := newAdmin(t, e, "viewer@acme.test", auth.RoleViewer)
	seen := map[string]bool{}
	next := "/settings/developers/api-logs"
	for pages := 0; next != "" && pages < 10; pages++ {
		r := v.c.Get(next)
		for _, m := range regexp.MustCompile(`title="request (rid-\d+)"`).FindAllStringSubmatch(r.Body, -1) {
			if seen[m[1]] {
				t.Fatalf("%s on two pages", m[1])
			}
			seen[m[1]] = true
		}
		next = ""
		if m := regexp.MustCompile(`href="(/settings/developers/api-logs\?before=[^"]+)"`).FindStringSubmatch(r.Body); m != nil {
			next = html.UnescapeString(m[1])
		}
	}
	if len(seen) != 120 {
		t.Fatalf("paged through %d of 120 rows of one microsecond", len(seen))
	}
}

// TestUsageHoursAreUTC: the chart's hours are UTC hours even when the
// database session runs in a half-hour time zone.
func TestUsageHoursAreUTC(t *testing.T) {
	e := webtest.New(t)
	owner := e.User(e.Tenant, "owner@acme.test", auth.RoleOwner)
	k, _ := e.Key(e.Tenant, owner, apikey.Config{Name: "k", Environment: apikey.Production, Scopes: apikey.AllScopes})
	ctx := context.Background()
	at := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour + 45*time.Minute)
	if _, err := e.Store.Pool.Exec(ctx, `INSERT INTO api_request_logs
		(tenant_id, key_id, key_prefix, method, path, status, ip, latency_us, request_id, at)
		VALUES ($1, $2, 'kw_prod_x', 'GET', '/api/v1/key', 200, '192.0.2.1', 10, 'r1', $3)`, e.Tenant.ID, k.ID, at); err != nil {
		t.Fatal(err)
	}
	conn, err := e.Store.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SET TIME ZONE 'Asia/Kolkata'"); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, "RESET TIME ZONE")
	rows, err := db.New(conn).CountKeyOutcomesByHour(ctx, db.CountKeyOutcomesByHourParams{TenantID: e.Tenant.ID, KeyID: k.ID, Since: at.Add(-2 * time.Hour)})
	if err != nil || len(rows) != 1 || !rows[0].Hour.Equal(at.Truncate(time.Hour)) || rows[0].Success != 1 {
		t.Fatalf("hour buckets under +05:30: %+v %v (want %v)", rows, err, at.Truncate(time.Hour))
	}
}

// TestRevokedKeyFloodIsCounted: 4,000 requests with a revoked key in one
// minute are 60 rows of their own and one row counting the rest, not
// 4,000 rows; the log page shows that row's number, and the counts add up
// to every request made.
func TestRevokedKeyFloodIsCounted(t *testing.T) {
	e := webtest.New(t)
	v := newAdmin(t, e, "viewer@acme.test", auth.RoleViewer)
	owner := e.User(e.Tenant, "owner@acme.test", auth.RoleOwner)
	k, full := e.Key(e.Tenant, owner, apikey.Config{Name: "Old", Environment: apikey.Production, Scopes: apikey.AllScopes})
	ctx := context.Background()
	err := e.Store.InTx(ctx, func(q *db.Queries) error {
		return apikey.Revoke(ctx, q, e.App.Audit, e.Tenant.ID, k.ID, audit.Actor{TenantID: &e.Tenant.ID, Type: audit.ActorSystem}, e.Clock.Now())
	})
	if err != nil {
		t.Fatal(err)
	}
	// All in one minute of the application's clock: the start of one.
	e.Clock.Set(time.Now().Truncate(time.Minute).Add(time.Minute))
	const sent = 4000
	for i := range sent {
		req := httptest.NewRequest("GET", "/api/v1/key", nil)
		req.Header.Set("Authorization", "Bearer "+full)
		// The first few are held against openapi.json (Serve); the rest,
		// the same 401 again, go straight to the router: checking 4,000
		// identical exchanges would take seconds and find nothing new.
		if i < 10 {
			if r := e.Serve(req); r.Status != 401 || !strings.Contains(r.Body, `"KEY_REVOKED"`) {
				t.Fatalf("request %d: %d %s", i, r.Status, r.Body)
			}
			continue
		}
		rec := httptest.NewRecorder()
		if e.App.Echo.ServeHTTP(rec, req); rec.Code != 401 {
			t.Fatalf("request %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	e.App.Usage.Flush(ctx)

	var rows, total int
	if err := e.Store.Pool.QueryRow(ctx, "SELECT count(*), sum(count) FROM api_request_logs WHERE key_id = $1", k.ID).Scan(&rows, &total); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d requests with a revoked key: %d request-log rows", sent, rows)
	if rows > 100 || total != sent {
		t.Fatalf("%d rows counting %d requests; want at most 100 counting %d", rows, total, sent)
	}

	// The page: every row is one request, or says how many it counts.
	rowRe := regexp.MustCompile(`(?s)<tr data-testid="api-log-row">.*?</tr>`)
	countRe := regexp.MustCompile(`data-testid="api-log-count"[^>]*>×([0-9,]+)<`)
	shown, counted, next := 0, []string{}, "/settings/developers/api-logs?status=401"
	for pages := 0; next != "" && pages < 5; pages++ {
		r := v.c.Get(next)
		for _, row := range rowRe.FindAllString(r.Body, -1) {
			if !strings.Contains(row, ">401") || !strings.Contains(row, ">Old<") {
				t.Fatalf("a row of another request: %s", row)
			}
			n := 1
			if m := countRe.FindStringSubmatch(row); m != nil {
				counted = append(counted, m[1])
				n, _ = strconv.Atoi(strings.ReplaceAll(m[1], ",", ""))
			}
			shown += n
		}
		next = ""
		if m := regexp.MustCompile(`href="(/settings/developers/api-logs\?before=[^"]+)"`).FindStringSubmatch(r.Body); m != nil {
			next = html.UnescapeString(m[1])
		}
	}
	if shown != sent || len(counted) != 1 || counted[0] != "3,940" {
		t.Fatalf("the log page shows %d requests, counted rows %v; want %d with one ×3,940", shown, counted, sent)
	}
}
