package portal_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"keyward/web/apikey"
	"keyward/web/auth"
	"keyward/web/webtest"
)

// TestUsageChartsCountOutcomes: a key's charts stack its requests by
// outcome, and each bar's title says every outcome's number.
func TestUsageChartsCountOutcomes(t *testing.T) {
	e := webtest.New(t)
	// A few minutes into an hour, so that every request lands in one bar.
	e.Clock.Set(time.Now().UTC().Truncate(time.Hour).Add(5 * time.Minute))
	a := newAdmin(t, e, "ann@acme.test", auth.RoleAdmin)
	owner, _ := e.Store.GetUserByEmail(context.Background(), "ann@acme.test")
	k, full := e.Key(e.Tenant, owner, apikey.Config{Name: "Mixed", Environment: apikey.Production, Scopes: []string{apikey.ScopeEventsRead},
		RateLimit: &apikey.RateLimit{Requests: 3, Window: time.Minute}})
	for _, c := range []struct {
		method, path, body string
		status             int
	}{
		{"GET", "/api/v1/key", "", 200},
		{"GET", "/api/v1/key", "", 200},
		{"POST", "/api/v1/events", `{"source":"s","type":"t","occurred_at":"2026-01-02T15:04:05Z"}`, 403}, // no events:write
		{"GET", "/api/v1/key", "", 429},
	} {
		if r := e.API(c.method, c.path, full, c.body, "Idempotency-Key", "k1"); r.Status != c.status {
			t.Fatalf("%s %s: %d, want %d", c.method, c.path, r.Status, c.status)
		}
	}
	e.App.Usage.Flush(context.Background())
	// Server errors cannot be caused on purpose: four, counted in one row.
	if _, err := e.Store.Pool.Exec(context.Background(), `INSERT INTO api_request_logs
		(tenant_id, key_id, key_prefix, method, path, status, ip, latency_us, request_id, at, count, code)
		VALUES ($1, $2, 'kw_prod_x', 'GET', '/api/v1/events', 503, '192.0.2.1', 10, 'r503', $3, 4, 'SERVICE_UNAVAILABLE')`,
		e.Tenant.ID, k.ID, e.Clock.Now()); err != nil {
		t.Fatal(err)
	}

	r := a.c.Get("/settings/developers/api-keys/" + k.ID)
	const numbers = ": 8 requests: 2 successes, 1 client error, 1 rate-limited, 4 server errors</title>"
	if n := strings.Count(r.Body, numbers); n != 3 {
		t.Errorf("%d bars (want 3: this hour, today in 7 days, today in 30 days) titled %q", n, numbers)
	}
	if n := strings.Count(r.Body, `data-testid="usage-chart" data-total="8"`); n != 3 {
		t.Errorf("%d charts count 8 requests, want 3", n)
	}
	for _, want := range []string{
		`class="seg seg-success"`, `class="seg seg-client"`, `class="seg seg-limited"`, `class="seg seg-server"`, `fill="url(#kw-pat-server)"`,
		`<pattern id="kw-pat-client"`, `Rate-limited (429)`, // the legend
		`aria-label="Last 24 hours: 8 requests (2 successes, 1 client error, 1 rate-limited, 4 server errors)."`,
		`>8</text>`, `>0</text>`, // the y axis's top and bottom
	} {
		if !strings.Contains(r.Body, want) {
			t.Errorf("the charts lack %s", want)
		}
	}
	if n := strings.Count(r.Body, `<g class="bar">`); n != 24+7+30 {
		t.Errorf("%d bars, want 61", n)
	}
}
