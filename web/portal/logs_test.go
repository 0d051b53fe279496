package portal_test

import (
	"context"
	"html"
	"regexp"
	"strings"
	"testing"
	"time"

	"keyward/db"
	"keyward/web/apikey"
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
	if r := v.c.Get("/settings/developers/api-logs?key=" + ingest.ID); strings.Count(r.Body, `data-testid="api-log-row"`) != 3 || strings.Contains(r.Body, "/api/v1/events") {
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
	if strings.Count(r.Body, `data-testid="usage-chart" data-total="53"`) != 2 {
		t.Errorf("usage charts of the ingest key do not both count 53 requests")
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
	rows, err := db.New(conn).CountKeyRequestsByHour(ctx, db.CountKeyRequestsByHourParams{TenantID: e.Tenant.ID, KeyID: k.ID, Since: at.Add(-2 * time.Hour)})
	if err != nil || len(rows) != 1 || !rows[0].Hour.Equal(at.Truncate(time.Hour)) {
		t.Fatalf("hour buckets under +05:30: %+v %v (want %v)", rows, err, at.Truncate(time.Hour))
	}
}
