package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"keyward/db"
	"keyward/db/dbtest"
	"keyward/web/apikey"
	"keyward/web/events"
	"keyward/web/webtest"
)

func countEvents(t *testing.T, f fixture) int {
	t.Helper()
	var n int
	if err := f.Store.Pool.QueryRow(context.Background(), "SELECT count(*) FROM events").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestIdempotency covers the three outcomes: a replay of the same body gets
// the byte-identical response, another body gets 422, and a retry while the
// first request is still running gets 409.
func TestIdempotency(t *testing.T) {
	f := newFixture(t, webtest.Options{})
	k, full := f.key(apikey.Config{})
	keyID := k.ID

	wantError(t, f.API("POST", "/api/v1/events", full, event), 400, "VALIDATION_ERROR")
	first := f.API("POST", "/api/v1/events", full, event, "Idempotency-Key", "order-1")
	if first.Status != 201 || first.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first: %d %s", first.Status, first.Body)
	}
	again := f.API("POST", "/api/v1/events", full, event, "Idempotency-Key", "order-1")
	if again.Status != 201 || again.Body != first.Body || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %q vs %q", again.Status, again.Body, first.Body)
	}
	other := strings.Replace(event, "42", "43", 1)
	wantError(t, f.API("POST", "/api/v1/events", full, other, "Idempotency-Key", "order-1"), 422, "IDEMPOTENCY_KEY_REUSED")
	if n := countEvents(t, f); n != 1 {
		t.Fatalf("%d events stored, want 1", n)
	}

	// In flight: an open transaction claims the idempotency key first, so
	// the next request with it stops inside its statement, holding the
	// key's lock, until that transaction ends. A retry meanwhile gets 409.
	ctx := context.Background()
	tx, err := f.Store.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (key_id, key, tenant_id, request_hash, status, body, created_at)
		VALUES ($1, 'order-2', $2, sha256(''), 0, '', now())`, keyID, f.Tenant.ID); err != nil {
		t.Fatal(err)
	}
	done := make(chan webtest.Response)
	go func() { done <- f.API("POST", "/api/v1/events", full, other, "Idempotency-Key", "order-2") }()
	waitFor(t, func() bool {
		var n int
		f.Store.Pool.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted").Scan(&n)
		return n > 0
	})
	wantError(t, f.API("POST", "/api/v1/events", full, other, "Idempotency-Key", "order-2"), 409, "IDEMPOTENCY_KEY_IN_USE")
	tx.Rollback(ctx)
	slow := <-done
	if slow.Status != 201 {
		t.Fatalf("the held request: %d %s", slow.Status, slow.Body)
	}
	if r := f.API("POST", "/api/v1/events", full, other, "Idempotency-Key", "order-2"); r.Body != slow.Body || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay after the held request: %s", r.Body)
	}
	if n := countEvents(t, f); n != 2 {
		t.Fatalf("%d events stored, want 2", n)
	}

	// Retries of a finished request, all at once, are replays, never 409.
	var wg sync.WaitGroup
	statuses := make(chan int, 80)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				statuses <- f.API("POST", "/api/v1/events", full, other, "Idempotency-Key", "order-2").Status
			}
		}()
	}
	wg.Wait()
	close(statuses)
	for st := range statuses {
		if st != 201 {
			t.Fatalf("a concurrent replay got %d", st)
		}
	}

	// Idempotency keys belong to one API key: another key's "order-1" is
	// its own.
	_, second := f.key(apikey.Config{})
	if r := f.API("POST", "/api/v1/events", second, other, "Idempotency-Key", "order-1"); r.Status != 201 || r.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("another key, same idempotency key: %d %s", r.Status, r.Body)
	}

	// After 24 h a key is free again, even before the expiry job ran.
	if _, err := f.Store.Pool.Exec(ctx, "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'order-1' AND key_id = $1", keyID); err != nil {
		t.Fatal(err)
	}
	if r := f.API("POST", "/api/v1/events", full, other, "Idempotency-Key", "order-1"); r.Status != 201 || r.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("after 24 h the key is new: %d %s", r.Status, r.Body)
	}
	// The expiry job deletes exactly the keys older than 24 h.
	if _, err := f.Store.Pool.Exec(ctx, "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'order-2'"); err != nil {
		t.Fatal(err)
	}
	var total int
	f.Store.Pool.QueryRow(ctx, "SELECT count(*) FROM idempotency_keys").Scan(&total)
	n, err := events.ExpireIdempotencyKeys(ctx, f.Store.Queries, time.Now())
	var left int
	f.Store.Pool.QueryRow(ctx, "SELECT count(*) FROM idempotency_keys WHERE key = 'order-2'").Scan(&left)
	if err != nil || n != 1 || left != 0 || total != 3 {
		t.Fatalf("expiry job: deleted %d of %d (%v), order-2 left %d", n, total, err, left)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not reached in 10 s")
}

// TestIngestRefusals: media type, size, field errors and batch bounds, each
// with nothing stored.
func TestIngestRefusals(t *testing.T) {
	f := newFixture(t, webtest.Options{})
	_, full := f.key(apikey.Config{})
	idem := "Idempotency-Key"
	wantError(t, f.API("POST", "/api/v1/events", full, event, idem, "a", "Content-Type", "text/plain"), 415, "UNSUPPORTED_MEDIA_TYPE")
	big := `{"source":"s","type":"t","occurred_at":"2026-01-02T15:04:05Z","data":{"x":"` + strings.Repeat("a", 1<<20) + `"}}`
	wantError(t, f.API("POST", "/api/v1/events", full, big, idem, "b"), 413, "PAYLOAD_TOO_LARGE")
	cases := []struct{ body, field string }{
		{`{"source":"","type":"t","occurred_at":"2026-01-02T15:04:05Z"}`, "source"},
		{`{"source":"s","type":"bad type!","occurred_at":"2026-01-02T15:04:05Z"}`, "type"},
		{`{"source":"s","type":"t","occurred_at":"yesterday"}`, "occurred_at"},
		{`{"source":"s","type":"t","occurred_at":"2999-01-02T15:04:05Z"}`, "occurred_at"},
		{`{"source":"s","type":"t","occurred_at":"2026-01-02T15:04:05Z","data":[1]}`, "data"},
		{`{"source":"s","type":"t","occurred_at":"2026-01-02T15:04:05Z","extra":1}`, "extra"},
		{`{"source":"s","type":5,"occurred_at":"2026-01-02T15:04:05Z"}`, "type"},
		{`{"source":"s"`, "body"},
		{`{"source":"s","type":"t","occurred_at":"2026-01-02T15:04:05Z","data":{"x":"a\u0000"}}`, "data"},
		{`{"source":"s","type":"t","occurred_at":"2026-01-02T15:04:05Z","data":{"x":"\ud800"}}`, "data"},
		{`{"source":"s","type":"t","occurred_at":"2026-01-02T15:04:05Z","data":{"x":"\udc00\ud800"}}`, "data"},
		{`{"source":"s","type":"t","occurred_at":"2026-01-02T15:04:05Z","data":{"x":1e999999}}`, "data"},
		{`{"source":"s","type":"t","occurred_at":"2026-01-02T15:04:05Z","data":{"x":1e-16384}}`, "data"},
		{`{"source":"s","type":"t","occurred_at":"0000-01-01T00:00:00+01:00"}`, "occurred_at"},
		{"{\"source\":\"s\",\"type\":\"t\",\"occurred_at\":\"2026-01-02T15:04:05Z\",\"data\":{\"x\":\"\xff\"}}", "data"},
		{`{"source":"s","type":"t","occurred_at":"2026-01-02T15:04:05Z"} {}`, "body"},
	}
	for i, c := range cases {
		e := wantError(t, f.API("POST", "/api/v1/events", full, c.body, idem, fmt.Sprint("v", i)), 400, "VALIDATION_ERROR")
		if e.Error.Field != c.field {
			t.Errorf("%s: field %q, want %q (%s)", c.body, e.Error.Field, c.field, e.Error.Message)
		}
	}
	var many []string
	for range 501 {
		many = append(many, event)
	}
	wantError(t, f.API("POST", "/api/v1/events/batch", full, `{"events":[`+strings.Join(many, ",")+`]}`, idem, "c"), 400, "VALIDATION_ERROR")
	// One bad event spoils the batch: all or nothing, every problem listed.
	bad := `{"events":[` + event + `,{"source":"s","type":"","occurred_at":"x"},` + event + `]}`
	e := wantError(t, f.API("POST", "/api/v1/events/batch", full, bad, idem, "d"), 400, "VALIDATION_ERROR")
	if len(e.Error.Details) != 2 || e.Error.Details[0].Field != "events[1].type" || e.Error.Details[1].Field != "events[1].occurred_at" {
		t.Fatalf("batch details: %+v", e.Error.Details)
	}
	// Decoding errors inside a batch name the event they are in.
	odd := `{"events":[{"source":5,"type":"t","occurred_at":"2026-01-02T15:04:05Z"},` + event + `,{"source":"s","foo":1}]}`
	e = wantError(t, f.API("POST", "/api/v1/events/batch", full, odd, idem, "e"), 400, "VALIDATION_ERROR")
	if len(e.Error.Details) != 2 || e.Error.Details[0].Field != "events[0].source" || e.Error.Details[1].Field != "events[2].foo" {
		t.Fatalf("batch decode details: %+v", e.Error.Details)
	}
	if n := countEvents(t, f); n != 0 {
		t.Fatalf("%d events stored by refused requests", n)
	}
	// An escaped backslash before u0000 is text, not a NUL, and a proper
	// surrogate pair is a character: both stored.
	ok := `{"source":"s","type":"t","occurred_at":"2026-01-02T15:04:05Z","data":{"x":"a\\u0000","y":"\ud83d\ude00"}}`
	if r := f.API("POST", "/api/v1/events", full, ok, idem, "f"); r.Status != 201 {
		t.Fatalf("escaped backslash: %d %s", r.Status, r.Body)
	}
	// Odd bytes in a logged path cannot spoil the request-log batch.
	f.API("GET", "/api/v1/events/%ff%00", full, "")
	f.App.Usage.Flush(context.Background())
	var logged int
	f.Store.Pool.QueryRow(context.Background(), "SELECT count(*) FROM api_request_logs WHERE method = 'GET' AND path LIKE '/api/v1/events/%'").Scan(&logged)
	if logged != 1 {
		t.Fatalf("request log rows for the odd path: %d", logged)
	}
}

// TestBatchAndPagination: 500 events in one request, then read back page by
// page through the cursor, with filters.
func TestBatchAndPagination(t *testing.T) {
	f := newFixture(t, webtest.Options{})
	_, full := f.key(apikey.Config{})
	var evs []string
	for i := range 500 {
		src := "billing"
		if i%5 == 0 {
			src = "crm"
		}
		evs = append(evs, fmt.Sprintf(`{"source":%q,"type":"n.%d","occurred_at":"2026-01-02T15:04:05Z","data":{"i":%d}}`, src, i%2, i))
	}
	r := f.API("POST", "/api/v1/events/batch", full, `{"events":[`+strings.Join(evs, ",")+`]}`, "Idempotency-Key", "batch-1")
	var res struct {
		Accepted int
		IDs      []string
	}
	if json.Unmarshal(decode(t, r).Data, &res); r.Status != 201 || res.Accepted != 500 || len(res.IDs) != 500 {
		t.Fatalf("batch: %d %.300s", r.Status, r.Body)
	}
	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		r := f.API("GET", "/api/v1/events?limit=100&cursor="+cursor, full, "")
		var p struct {
			Events []struct {
				ID, Source, Type string
				Data             map[string]int
			}
			NextCursor *string `json:"next_cursor"`
		}
		if err := json.Unmarshal(decode(t, r).Data, &p); err != nil || r.Status != 200 {
			t.Fatalf("page: %d %s", r.Status, r.Body)
		}
		pages++
		for _, e := range p.Events {
			if seen[e.ID] {
				t.Fatalf("event %s on two pages", e.ID)
			}
			seen[e.ID] = true
		}
		if p.NextCursor == nil {
			break
		}
		cursor = *p.NextCursor
	}
	if len(seen) != 500 || pages != 6 && pages != 5 {
		t.Fatalf("read %d events in %d pages", len(seen), pages)
	}
	r = f.API("GET", "/api/v1/events?source=crm&type=n.0&limit=100", full, "")
	if n := strings.Count(r.Body, `"source":"crm"`); n != 50 || strings.Contains(r.Body, `"billing"`) || strings.Contains(r.Body, `"n.1"`) {
		t.Fatalf("filtered: %d crm events", n)
	}
	id := res.IDs[7]
	if r := f.API("GET", "/api/v1/events/"+id, full, ""); r.Status != 200 || !strings.Contains(r.Body, `"i":7`) {
		t.Fatalf("get one: %d %s", r.Status, r.Body)
	}
	wantError(t, f.API("GET", "/api/v1/events/not-a-uuid", full, ""), 404, "NOT_FOUND")
	wantError(t, f.API("GET", "/api/v1/events?cursor=nope", full, ""), 400, "VALIDATION_ERROR")
	wantError(t, f.API("GET", "/api/v1/events?source=%00", full, ""), 400, "VALIDATION_ERROR")
	wantError(t, f.API("GET", "/api/v1/events?type=%ff", full, ""), 400, "VALIDATION_ERROR")
	// uuid.Parse takes forms Postgres does not; they must not reach it raw.
	if r := f.API("GET", "/api/v1/events/urn:uuid:"+id, full, ""); r.Status != 200 {
		t.Fatalf("urn form of an id: %d %s", r.Status, r.Body)
	}
	if r := f.API("GET", "/api/v1/events?limit=1&cursor=urn:uuid:"+res.IDs[0], full, ""); r.Status != 200 {
		t.Fatalf("urn form of a cursor: %d %s", r.Status, r.Body)
	}
	wantError(t, f.API("GET", "/api/v1/events?limit=1000", full, ""), 400, "VALIDATION_ERROR")
	wantError(t, f.API("GET", "/api/v1/events?limit=0", full, ""), 400, "VALIDATION_ERROR")
	wantError(t, f.API("GET", "/api/v1/events?limit=ten", full, ""), 400, "VALIDATION_ERROR")
}

// TestIsolation: a staging key never reads production events, another
// tenant's key sees nothing, and a source-bound key stays in its source.
func TestIsolation(t *testing.T) {
	f := newFixture(t, webtest.Options{})
	_, prod := f.key(apikey.Config{})
	_, stag := f.key(apikey.Config{Environment: apikey.Staging})
	globex := f.NewTenant("globex")
	gowner := f.User(globex, "owner@globex.test", "owner")
	_, other := f.Key(globex, gowner, apikey.Config{Name: "g", Environment: apikey.Production, Scopes: apikey.AllScopes})
	_, crmOnly := f.key(apikey.Config{Sources: []string{"crm"}})

	r := f.API("POST", "/api/v1/events", prod, event, "Idempotency-Key", "p1")
	var ev struct{ ID string }
	json.Unmarshal(decode(t, r).Data, &ev)
	if r.Status != 201 || ev.ID == "" {
		t.Fatalf("ingest: %d %s", r.Status, r.Body)
	}
	crmEvent := strings.Replace(event, "billing", "crm", 1)
	if r := f.API("POST", "/api/v1/events", crmOnly, crmEvent, "Idempotency-Key", "c1"); r.Status != 201 {
		t.Fatalf("crm key to crm: %d %s", r.Status, r.Body)
	}
	for name, key := range map[string]string{"staging": stag, "other tenant": other} {
		if r := f.API("GET", "/api/v1/events", key, ""); r.Status != 200 || strings.Contains(r.Body, "invoice.paid") {
			t.Errorf("%s key read production events: %s", name, r.Body)
		}
		wantError(t, f.API("GET", "/api/v1/events/"+ev.ID, key, ""), 404, "NOT_FOUND")
	}
	// The same idempotency key in another partition is another key.
	if r := f.API("POST", "/api/v1/events", stag, event, "Idempotency-Key", "p1"); r.Status != 201 || r.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("staging with production's idempotency key: %d %s", r.Status, r.Body)
	}
	// Source-bound: no writes elsewhere, reads only its own source.
	wantError(t, f.API("POST", "/api/v1/events", crmOnly, event, "Idempotency-Key", "c2"), 403, "FORBIDDEN")
	wantError(t, f.API("GET", "/api/v1/events?source=billing", crmOnly, ""), 403, "FORBIDDEN")
	wantError(t, f.API("GET", "/api/v1/events/"+ev.ID, crmOnly, ""), 404, "NOT_FOUND")
	if r := f.API("GET", "/api/v1/events", crmOnly, ""); strings.Contains(r.Body, `"billing"`) || !strings.Contains(r.Body, `"crm"`) {
		t.Fatalf("source-bound list: %s", r.Body)
	}
	batch := `{"events":[` + crmEvent + `,` + event + `]}`
	e := wantError(t, f.API("POST", "/api/v1/events/batch", crmOnly, batch, "Idempotency-Key", "c3"), 403, "FORBIDDEN")
	if e.Error.Field != "events[1].source" {
		t.Fatalf("batch source field: %q", e.Error.Field)
	}
}

// TestRotationGraceAndChanges: after a rotation with grace both secrets
// work until the window ends; a revoke reaches the cache through NOTIFY.
func TestRotationGraceAndChanges(t *testing.T) {
	f := newFixture(t, webtest.Options{})
	ctx := context.Background()
	k, old := f.key(apikey.Config{})
	if r := f.API("GET", "/api/v1/key", old, ""); r.Status != 200 { // now cached
		t.Fatal(r.Body)
	}
	var fresh string
	err := f.Store.InTx(ctx, func(q *db.Queries) error {
		var err error
		fresh, err = apikey.Rotate(ctx, q, f.App.Audit, f.Tenant.ID, k.ID, time.Hour, actor(f), f.Clock.Now())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{old, fresh} {
		if r := f.API("GET", "/api/v1/key", key, ""); r.Status != 200 {
			t.Fatalf("during grace: %d %s", r.Status, r.Body)
		}
	}
	f.Clock.Advance(61 * time.Minute) // past the grace window, on the application's clock
	wantError(t, f.API("GET", "/api/v1/key", old, ""), 401, "KEY_EXPIRED")
	if r := f.API("GET", "/api/v1/key", fresh, ""); r.Status != 200 {
		t.Fatalf("new secret after grace: %d %s", r.Status, r.Body)
	}

	err = f.Store.InTx(ctx, func(q *db.Queries) error {
		return apikey.Revoke(ctx, q, f.App.Audit, f.Tenant.ID, k.ID, actor(f), time.Now())
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitFor(t, func() bool { return f.API("GET", "/api/v1/key", fresh, "").Status == 401 })
	t.Logf("revocation reached the cache in %v", time.Since(start))
	wantError(t, f.API("GET", "/api/v1/key", fresh, ""), 401, "KEY_REVOKED")
}

// TestMalformedKeysTouchNoDatabase: 1,000 malformed or bad-checksum keys
// make zero database queries.
func TestMalformedKeysTouchNoDatabase(t *testing.T) {
	tracer := &dbtest.Counter{}
	f := newFixture(t, webtest.Options{Tracer: tracer})
	_, good := f.key(apikey.Config{})
	before := tracer.Len()
	for i := range 1000 {
		var key string
		switch i % 4 {
		case 0:
			key = "kw_prod_" + strings.Repeat("x", i%40)
		case 1:
			key = good[:len(good)-1] + flip(good[len(good)-1])
		case 2:
			key = fmt.Sprintf("sk_live_%040d", i)
		default:
			key = strings.Replace(good, "prod", "xxxx", 1)
		}
		req := httptest.NewRequest("GET", "/api/v1/events", nil)
		req.Header.Set("X-API-Key", key)
		if r := f.Serve(req); r.Status != 401 || !strings.Contains(r.Body, `"UNAUTHORIZED"`) {
			t.Fatalf("%q: %d %s", key, r.Status, r.Body)
		}
	}
	f.App.Usage.Flush(context.Background())
	if q := tracer.Since(before); len(q) != 0 {
		t.Fatalf("1,000 malformed keys made %d queries, first: %s", len(q), q[0])
	}
	t.Logf("1,000 malformed keys: 0 queries")
}

// TestWriteBounds: 10,000 requests with one key make a handful of
// last-used writes and a few COPYs, not one write each.
func TestWriteBounds(t *testing.T) {
	tracer := &dbtest.Counter{}
	f := newFixture(t, webtest.Options{Tracer: tracer})
	k, full := f.key(apikey.Config{RateLimit: &apikey.RateLimit{Requests: 1_000_000, Window: time.Hour}})
	before := tracer.Len()
	for i := range 10_000 {
		req := httptest.NewRequest("GET", "/api/v1/key", nil)
		req.Header.Set("Authorization", "Bearer "+full)
		if r := f.Serve(req); r.Status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, r.Status, r.Body)
		}
	}
	f.App.Usage.Flush(context.Background())
	lastUsed := tracer.Matching(before, "SET last_used_at")
	copies := tracer.Matching(before, "COPY")
	all := len(tracer.Since(before))
	t.Logf("10,000 requests: %d last-used writes, %d COPYs, %d statements in all", lastUsed, copies, all)
	if lastUsed < 1 || lastUsed > 3 || all > 40 {
		t.Fatalf("too many writes: %d last-used, %d statements: %v", lastUsed, all, tracer.Since(before))
	}
	var logs int
	var at *time.Time
	f.Store.Pool.QueryRow(context.Background(), "SELECT count(*) FROM api_request_logs WHERE key_id = $1", k.ID).Scan(&logs)
	f.Store.Pool.QueryRow(context.Background(), "SELECT last_used_at FROM api_keys WHERE id = $1", k.ID).Scan(&at)
	if logs != 10_000 || at == nil {
		t.Fatalf("request log rows %d (want 10,000), last used %v", logs, at)
	}
}

// TestTruncatedBody: a body that ends before its Content-Length is the
// client's problem (400), not a server failure.
func TestTruncatedBody(t *testing.T) {
	f := newFixture(t, webtest.Options{})
	_, full := f.key(apikey.Config{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.Server.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const sent = `{"source":`
	fmt.Fprintf(conn, "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nIdempotency-Key: t1\r\nContent-Length: 500\r\n\r\n%s", full, sent)
	conn.(*net.TCPConn).CloseWrite()
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 400 {
		t.Fatalf("truncated body: %d", res.StatusCode)
	}
	// The same request as an http.Request, for the contract check.
	req, _ := http.NewRequest("POST", f.Server.URL+"/api/v1/events", strings.NewReader(sent))
	req.Header.Set("Authorization", "Bearer "+full)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "t1")
	webtest.Check(t, webtest.Exchange{Request: req, RequestBody: []byte(sent), Status: res.StatusCode, Header: res.Header, Body: body})
	if strings.Contains(f.Logs.String(), `"level":"ERROR"`) {
		t.Fatal("a truncated body was logged as a server error")
	}
}
