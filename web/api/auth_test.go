package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"keyward/db"
	"keyward/web"
	"keyward/web/apikey"
	"keyward/web/audit"
	"keyward/web/auth"
	"keyward/web/metrics"
	"keyward/web/ratelimit"
	"keyward/web/ratelimit/redistest"
	"keyward/web/webtest"
)

// envelope is the error/success shape every answer must have.
type envelope struct {
	Success bool            `json:"success"`
	Data    json.RawMessage `json:"data"`
	Error   *struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		Field     string `json:"field"`
		RequestID string `json:"request_id"`
		Details   []struct{ Field, Message string }
	} `json:"error"`
}

func decode(t *testing.T, r webtest.Response) envelope {
	t.Helper()
	var e envelope
	if err := json.Unmarshal([]byte(r.Body), &e); err != nil {
		t.Fatalf("not the JSON envelope (%d): %q", r.Status, r.Body)
	}
	return e
}

// wantError checks status, code, and that the request id is the response's.
func wantError(t *testing.T, r webtest.Response, status int, code string) envelope {
	t.Helper()
	e := decode(t, r)
	if r.Status != status || e.Success || e.Error == nil || e.Error.Code != code {
		t.Fatalf("want %d %s, got %d %s", status, code, r.Status, r.Body)
	}
	if e.Error.RequestID == "" || e.Error.RequestID != r.Header.Get("X-Request-Id") {
		t.Fatalf("request id %q does not match header %q", e.Error.RequestID, r.Header.Get("X-Request-Id"))
	}
	if r.Header.Get("Set-Cookie") != "" {
		t.Fatalf("the public API set a cookie: %s", r.Header.Get("Set-Cookie"))
	}
	return e
}

// fixture is one application with an owner in tenant acme.
type fixture struct {
	*webtest.Env
	owner db.User
}

func newFixture(t *testing.T, o webtest.Options) fixture {
	e := webtest.NewWith(t, o)
	return fixture{e, e.User(e.Tenant, "owner@acme.test", auth.RoleOwner)}
}

func (f fixture) key(cfg apikey.Config) (db.APIKey, string) {
	f.T.Helper()
	if cfg.Name == "" {
		cfg.Name = "key " + strconv.Itoa(int(time.Now().UnixNano()%1e9))
	}
	if cfg.Environment == "" {
		cfg.Environment = apikey.Production
	}
	if cfg.Scopes == nil {
		cfg.Scopes = apikey.AllScopes
	}
	return f.Key(f.Tenant, f.owner, cfg)
}

func actor(f fixture) audit.Actor {
	return audit.Actor{TenantID: &f.Tenant.ID, Type: audit.ActorUser, ID: strconv.FormatInt(f.owner.ID, 10)}
}

const event = `{"source":"billing","type":"invoice.paid","occurred_at":"2026-01-02T15:04:05Z","data":{"amount":42}}`

// TestErrorTable sends, for every row of docs/api.md's check table, a request that
// triggers exactly that row and checks status and code.
func TestErrorTable(t *testing.T) {
	f := newFixture(t, webtest.Options{Config: func(c *web.Config) {
		// The test server listens on 127.0.0.1; bind that name to production.
		c.APIHosts = apikey.Hosts{"127.0.0.1": apikey.Production}
	}})
	ctx := context.Background()
	_, good := f.key(apikey.Config{})
	disabledKey, disabled := f.key(apikey.Config{})
	revokedKey, revoked := f.key(apikey.Config{})
	soon := f.Clock.Now().Add(time.Minute)
	_, expired := f.key(apikey.Config{ExpiresAt: &soon})
	_, staging := f.key(apikey.Config{Environment: apikey.Staging})
	_, farAway := f.key(apikey.Config{IPAllowlist: []string{"203.0.113.0/24"}})
	_, readOnly := f.key(apikey.Config{Scopes: []string{apikey.ScopeEventsRead}})
	_, sourceBound := f.key(apikey.Config{Sources: []string{"crm"}})
	// Per hour, so that no slow machine refills a request mid-test.
	_, limited := f.key(apikey.Config{RateLimit: &apikey.RateLimit{Requests: 2, Window: time.Hour}})
	err := f.Store.InTx(ctx, func(q *db.Queries) error {
		if err := apikey.SetDisabled(ctx, q, f.App.Audit, f.Tenant.ID, disabledKey.ID, true, actor(f), time.Now()); err != nil {
			return err
		}
		return apikey.Revoke(ctx, q, f.App.Audit, f.Tenant.ID, revokedKey.ID, actor(f), time.Now())
	})
	// The application's clock moves past that expiry; no row is edited.
	f.Clock.Advance(2 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	f.API("GET", "/api/v1/key", limited, "")
	f.API("GET", "/api/v1/key", limited, "")
	valid, _ := apikey.Generate(apikey.Production) // well formed, checksum right, never stored
	post := func(key string) webtest.Response {
		return f.API("POST", "/api/v1/events", key, event, "Idempotency-Key", "k-"+key[len(key)-8:])
	}

	rows := []struct {
		name   string
		r      webtest.Response
		status int
		code   string
		says   string
	}{
		{"missing key", f.API("GET", "/api/v1/key", "", ""), 401, "UNAUTHORIZED", "Missing API key"},
		{"key in query string only", f.API("GET", "/api/v1/key?api_key="+good, "", ""), 401, "UNAUTHORIZED", "Missing API key"},
		{"malformed key", f.API("GET", "/api/v1/key", "kw_prod_short", ""), 401, "UNAUTHORIZED", "Invalid API key"},
		{"bad checksum", f.API("GET", "/api/v1/key", good[:len(good)-1]+flip(good[len(good)-1]), ""), 401, "UNAUTHORIZED", "Invalid API key"},
		{"unknown key", f.API("GET", "/api/v1/key", valid, ""), 401, "UNAUTHORIZED", "Invalid API key"},
		{"disabled key", f.API("GET", "/api/v1/key", disabled, ""), 401, "KEY_DISABLED", "disabled"},
		{"expired key", f.API("GET", "/api/v1/key", expired, ""), 401, "KEY_EXPIRED", "expired"},
		{"revoked key", f.API("GET", "/api/v1/key", revoked, ""), 401, "KEY_REVOKED", "revoked"},
		{"wrong tenant", f.API("GET", "/api/v1/key", good, "", "X-TN", "globex"), 401, "TENANT_MISMATCH", "X-TN"},
		{"wrong environment", f.API("GET", "/api/v1/key", staging, ""), 401, "ENVIRONMENT_MISMATCH", "staging key, but this host serves the production"},
		{"IP not in allowlist", f.API("GET", "/api/v1/key", farAway, ""), 403, "IP_NOT_ALLOWED", "127.0.0.1"},
		{"missing scope", post(readOnly), 403, "FORBIDDEN", "events:write"},
		{"source not allowed", post(sourceBound), 403, "FORBIDDEN", `source "billing"`},
		{"rate limited", f.API("GET", "/api/v1/key", limited, ""), 429, "RATE_LIMITED", "2 requests per hour"},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			e := wantError(t, row.r, row.status, row.code)
			if !strings.Contains(e.Error.Message, row.says) {
				t.Errorf("message %q does not say %q", e.Error.Message, row.says)
			}
			if got := row.r.Header.Get("WWW-Authenticate"); (row.status == 401) != strings.HasPrefix(got, "Bearer") {
				t.Errorf("%d with WWW-Authenticate %q", row.status, got)
			}
		})
	}
	// Unknown routes and methods answer in the envelope too, with no CSRF
	// or portal page in the way.
	if r := f.API("DELETE", "/api/v1/events", good, ""); r.Header.Get("Allow") != "POST, GET, HEAD" {
		t.Errorf("405 Allow: %q", r.Header.Get("Allow"))
	}
	wantError(t, f.API("DELETE", "/api/v1/events", good, ""), 405, "METHOD_NOT_ALLOWED")
	wantError(t, f.API("POST", "/api/v1/nothing/here", good, "{}"), 404, "NOT_FOUND")
	rl := rows[len(rows)-1].r
	if ra, _ := strconv.Atoi(rl.Header.Get("Retry-After")); ra < 1 || ra > 1800 {
		t.Errorf("429 Retry-After = %q, want 1..1800 s (one request of 2 an hour)", rl.Header.Get("Retry-After"))
	}
	if rl.Header.Get("X-RateLimit-Remaining") != "0" || rl.Header.Get("X-RateLimit-Limit") != "2" {
		t.Errorf("429 rate headers: %v", rl.Header)
	}
	// The same key works through X-API-Key, and with the right X-TN.
	if r := f.API("GET", "/api/v1/key", "", "", "X-API-Key", good, "X-TN", "acme"); r.Status != 200 {
		t.Fatalf("X-API-Key with the right X-TN: %d %s", r.Status, r.Body)
	}
	// Two different keys in the two headers is refused, not resolved.
	wantError(t, f.API("GET", "/api/v1/key", good, "", "X-API-Key", staging), 401, "UNAUTHORIZED")
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

// TestKeyIntrospection: GET /key describes the calling key, never its
// secret, and carries every rate-limit header.
func TestKeyIntrospection(t *testing.T) {
	f := newFixture(t, webtest.Options{})
	k, full := f.key(apikey.Config{Name: "ingest", Sources: []string{"billing"}, IPAllowlist: []string{"127.0.0.0/8"},
		RateLimit: &apikey.RateLimit{Requests: 50, Window: time.Minute}})
	r := f.API("GET", "/api/v1/key", full, "")
	if r.Status != 200 {
		t.Fatalf("GET /key: %d %s", r.Status, r.Body)
	}
	if strings.Contains(r.Body, full) || strings.Contains(r.Body, full[len(full)-20:]) {
		t.Fatal("introspection shows the secret")
	}
	var info struct {
		ID, Name, Prefix, Tenant, Environment string
		Scopes, Sources                       []string
		IPAllowlist                           []string `json:"ip_allowlist"`
		RateLimit                             struct {
			Requests      int
			WindowSeconds int `json:"window_seconds"`
			From          string
		} `json:"rate_limit"`
		ExpiresAt *string `json:"expires_at"`
	}
	if err := json.Unmarshal(decode(t, r).Data, &info); err != nil {
		t.Fatal(err)
	}
	if info.ID != k.ID || info.Name != "ingest" || info.Tenant != "acme" || info.Environment != "production" ||
		len(info.Scopes) != 2 || info.Sources[0] != "billing" || info.IPAllowlist[0] != "127.0.0.0/8" ||
		info.RateLimit.Requests != 50 || info.RateLimit.WindowSeconds != 60 || info.RateLimit.From != "key" ||
		info.ExpiresAt != nil || !strings.HasPrefix(full, strings.TrimSuffix(info.Prefix, "…")) {
		t.Fatalf("introspection: %+v", info)
	}
	h := r.Header
	if h.Get("X-RateLimit-Limit") != "50" || h.Get("X-RateLimit-Remaining") != "49" || h.Get("Cache-Control") != "no-store" ||
		h.Get("RateLimit-Policy") != `"key";q=50;w=60` || !strings.HasPrefix(h.Get("RateLimit"), `"key";r=49;t=`) {
		t.Fatalf("headers: %v", h)
	}
	reset, _ := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
	if now := time.Now().Unix(); reset < now || reset > now+61 {
		t.Fatalf("X-RateLimit-Reset %d is not an epoch second within the window", reset)
	}
	// A key without an override gets the tenant's plan default (team: 2,000/h).
	_, plain := f.key(apikey.Config{})
	if r := f.API("GET", "/api/v1/key", plain, ""); r.Header.Get("X-RateLimit-Limit") != "2000" || !strings.Contains(r.Body, `"from":"plan"`) {
		t.Fatalf("plan default: %s %v", r.Body, r.Header)
	}
}

// TestSessionsAndKeysDoNotCross: a signed-in portal session gets nothing
// from the public API, and an API key gets nothing from the portal.
func TestSessionsAndKeysDoNotCross(t *testing.T) {
	f := newFixture(t, webtest.Options{})
	_, secret, _ := f.EnrolledUser(f.Tenant, "admin@acme.test", auth.RoleAdmin)
	c := f.SignIn("admin@acme.test", secret)
	_, full := f.key(apikey.Config{})
	f.API("POST", "/api/v1/events", full, event, "Idempotency-Key", "one")

	r := c.Get("/api/v1/events")
	wantError(t, r, 401, "UNAUTHORIZED")
	if strings.Contains(r.Body, "invoice.paid") {
		t.Fatal("a session read events")
	}
	// An API key on a portal page is sent to sign in; on a console route
	// it is refused outright.
	r = f.API("GET", "/settings/developers/api-keys", full, "")
	if r.Status != http.StatusSeeOther && r.Status != http.StatusFound || !strings.HasPrefix(r.Header.Get("Location"), "/login") {
		t.Fatalf("portal with an API key: %d %s", r.Status, r.Header.Get("Location"))
	}
	wantError(t, f.API("GET", "/api/v1/orgs/api-key", full, ""), 403, "FORBIDDEN")
}

// TestTrustedProxyAndNewIP: the client address comes from X-Forwarded-For
// only through a trusted proxy; the first use from each new address is
// audited once.
func TestTrustedProxyAndNewIP(t *testing.T) {
	f := newFixture(t, webtest.Options{Config: func(c *web.Config) {
		_, lo, _ := net.ParseCIDR("127.0.0.0/8")
		c.TrustedProxies = []*net.IPNet{lo}
	}})
	k, full := f.key(apikey.Config{IPAllowlist: []string{"198.51.100.0/24"}})
	if r := f.API("GET", "/api/v1/key", full, "", "X-Forwarded-For", "198.51.100.7"); r.Status != 200 {
		t.Fatalf("allowed address through the proxy: %d %s", r.Status, r.Body)
	}
	wantError(t, f.API("GET", "/api/v1/key", full, "", "X-Forwarded-For", "192.0.2.1"), 403, "IP_NOT_ALLOWED")
	for range 3 {
		f.API("GET", "/api/v1/key", full, "", "X-Forwarded-For", "198.51.100.8")
	}
	f.App.Usage.Flush(context.Background())
	var n int
	var ips []string
	err := f.Store.Pool.QueryRow(context.Background(),
		`SELECT count(*), array_agg(ip ORDER BY ip) FROM audit_events WHERE action = 'api_key.used_from_new_ip' AND target_id = $1`, k.ID).Scan(&n, &ips)
	if err != nil || n != 2 || ips[0] != "198.51.100.7" || ips[1] != "198.51.100.8" {
		t.Fatalf("new-address audit events: %d %v %v", n, ips, err)
	}
	var lastIP string
	var lastAt *time.Time
	if err := f.Store.Pool.QueryRow(context.Background(), `SELECT last_used_ip, last_used_at FROM api_keys WHERE id = $1`, k.ID).Scan(&lastIP, &lastAt); err != nil || lastAt == nil || lastIP != "198.51.100.8" {
		t.Fatalf("last used: %q %v %v", lastIP, lastAt, err)
	}
}

// TestRedisRateLimits: with Redis configured, the key's budget lives in
// Redis (where every instance would find it) and runs out as in memory.
func TestRedisRateLimits(t *testing.T) {
	opt, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	f := newFixture(t, webtest.Options{Config: func(c *web.Config) {
		c.Metrics = metrics.New()
		c.Limiter = ratelimit.NewRedis(rdb, c.Logger, c.Metrics)
	}})
	k, full := f.key(apikey.Config{RateLimit: &apikey.RateLimit{Requests: 3, Window: time.Hour}})
	for i := range 3 {
		if r := f.API("GET", "/api/v1/key", full, ""); r.Status != 200 || r.Header.Get("X-RateLimit-Remaining") != strconv.Itoa(2-i) {
			t.Fatalf("request %d: %d remaining %q", i, r.Status, r.Header.Get("X-RateLimit-Remaining"))
		}
	}
	r := f.API("GET", "/api/v1/key", full, "")
	wantError(t, r, 429, "RATE_LIMITED")
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	keys, err := rdb.Keys(context.Background(), "*keyward:rl:"+k.ID+":*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("budget in Redis: %v %v", keys, err)
	}
}

// TestMetrics: /metrics exposes what the README lists, and the counters move
// with the requests that feed them.
func TestMetrics(t *testing.T) {
	f := newFixture(t, webtest.Options{})
	scrape := func() string {
		r := f.API("GET", "/metrics", "", "")
		if r.Status != 200 {
			t.Fatalf("/metrics: %d", r.Status)
		}
		return r.Body
	}
	value := func(body, series string) float64 {
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, series+" ") {
				v, _ := strconv.ParseFloat(strings.TrimPrefix(line, series+" "), 64)
				return v
			}
		}
		return 0
	}
	// Wait for the new key's own notification before using it: arriving
	// during the first lookup, it would (rightly) keep that answer out of
	// the cache, and the second request would miss too.
	invalidations := `keyward_apikey_cache_invalidations_total`
	seen := value(scrape(), invalidations)
	_, full := f.key(apikey.Config{RateLimit: &apikey.RateLimit{Requests: 1, Window: time.Hour}})
	waitFor(t, func() bool { return value(scrape(), invalidations) > seen })
	before := scrape()
	f.API("GET", "/api/v1/key", full, "")
	f.API("GET", "/api/v1/key", full, "")        // 429
	f.API("GET", "/api/v1/key", "kw_prod_x", "") // malformed
	f.App.Usage.Flush(context.Background())
	after := scrape()
	for series, want := range map[string]float64{
		`keyward_http_requests_total{method="GET",route="/api/v1/key",status="200"}`: 1,
		`keyward_http_requests_total{method="GET",route="/api/v1/key",status="429"}`: 1,
		`keyward_apikey_verifications_total{outcome="malformed"}`:                    1,
		`keyward_apikey_verifications_total{outcome="ok"}`:                           2,
		`keyward_apikey_cache_lookups_total{result="hit"}`:                           1,
		`keyward_ratelimit_rejections_total`:                                         1,
	} {
		// Other tests in this binary may count too, but never backwards.
		if got := value(after, series) - value(before, series); got < want {
			t.Errorf("%s rose by %v, want at least %v", series, got, want)
		}
	}
	for _, name := range []string{"keyward_flush_batch_size", "keyward_buffer_dropped_total", "keyward_apikey_cache_invalidations_total"} {
		if !strings.Contains(after, "# TYPE "+name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// TestUnknownKeyGuessing: made-up keys pass the public checksum, so each
// new one costs a lookup; an address gets a budget of lookups. Keys already
// cached (known or unknown) cost nothing, so a client using real keys, or
// retrying one bad key, is never throttled; malformed keys cost nothing.
func TestUnknownKeyGuessing(t *testing.T) {
	f := newFixture(t, webtest.Options{Config: func(c *web.Config) {
		_, lo, _ := net.ParseCIDR("127.0.0.0/8")
		c.TrustedProxies = []*net.IPNet{lo}
		c.Verifier.LookupsPerClient = ratelimit.Limit{Requests: 20, Window: time.Hour} // no refill mid-test
	}})
	_, good := f.key(apikey.Config{})
	_, fresh := f.key(apikey.Config{})
	from := func(ip string) []string { return []string{"X-Forwarded-For", ip} }
	if r := f.API("GET", "/api/v1/key", good, "", from("198.51.100.9")...); r.Status != 200 { // now cached
		t.Fatal(r.Body)
	}
	for range 100 {
		wantError(t, f.API("GET", "/api/v1/key", "kw_prod_nonsense", "", from("198.51.100.1")...), 401, "UNAUTHORIZED")
	}
	same, _ := apikey.Generate(apikey.Production)
	for range 50 { // one lookup, then the negative cache answers
		wantError(t, f.API("GET", "/api/v1/key", same, "", from("198.51.100.1")...), 401, "UNAUTHORIZED")
	}
	for range 19 {
		made, _ := apikey.Generate(apikey.Production)
		wantError(t, f.API("GET", "/api/v1/key", made, "", from("198.51.100.1")...), 401, "UNAUTHORIZED")
	}
	made, _ := apikey.Generate(apikey.Production)
	r := wantError(t, f.API("GET", "/api/v1/key", made, "", from("198.51.100.1")...), 429, "RATE_LIMITED")
	if !strings.Contains(r.Error.Message, "198.51.100.1") {
		t.Errorf("message: %s", r.Error.Message)
	}
	// A cached key still works from the throttled address; one that needs
	// a lookup waits; other addresses are not affected.
	if r := f.API("GET", "/api/v1/key", good, "", from("198.51.100.1")...); r.Status != 200 {
		t.Fatalf("cached key from a throttled address: %d %s", r.Status, r.Body)
	}
	if r := f.API("GET", "/api/v1/key", fresh, "", from("198.51.100.1")...); r.Status != 429 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("uncached key from a throttled address: %d", r.Status)
	}
	if r := f.API("GET", "/api/v1/key", fresh, "", from("198.51.100.2")...); r.Status != 200 {
		t.Fatalf("another address: %d %s", r.Status, r.Body)
	}
	// IPv6 addresses of one /64 share a budget.
	for i := range 20 {
		made, _ := apikey.Generate(apikey.Production)
		f.API("GET", "/api/v1/key", made, "", from(fmt.Sprintf("2001:db8:1:2::%x", i+1))...)
	}
	made, _ = apikey.Generate(apikey.Production)
	wantError(t, f.API("GET", "/api/v1/key", made, "", from("2001:db8:1:2::ffff")...), 429, "RATE_LIMITED")
}
