package apikey_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"keyward/db"
	"keyward/db/dbtest"
	"keyward/web/apikey"
	"keyward/web/audit"
	"keyward/web/audit/audittest"
	"keyward/web/auth"
	"keyward/web/metrics"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// fixture: a fresh database with a tenant, its owner, and a key.
type fixture struct {
	store  *db.Store
	tenant db.Tenant
	user   db.User
	tracer *dbtest.Counter
}

func newFixture(t testing.TB) *fixture {
	f := &fixture{tracer: &dbtest.Counter{}}
	f.store = db.NewStore(dbtest.New(t, f.tracer.Trace))
	err := f.store.InTx(context.Background(), func(q *db.Queries) error {
		var err error
		if f.tenant, err = auth.CreateTenant(context.Background(), q, audittest.Keys(), "acme", "Acme", "solo", time.Now()); err != nil {
			return err
		}
		f.user, err = auth.CreateUser(context.Background(), q, audittest.Keys(), f.tenant.ID, "o@acme.test", auth.RoleOwner, "correct horse battery staple", false, audit.Actor{Type: audit.ActorSystem}, time.Now())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) key(t testing.TB, cfg apikey.Config) (db.APIKey, string) {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "k" + time.Now().Format("150405.000000000")
	}
	cfg.Environment, cfg.Scopes = apikey.Production, apikey.AllScopes
	var k db.APIKey
	var full string
	err := f.store.InTx(context.Background(), func(q *db.Queries) error {
		var err error
		k, full, err = apikey.Create(context.Background(), q, audittest.Keys(), f.tenant.ID, cfg, audit.Actor{Type: audit.ActorSystem}, f.user.ID, time.Now())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return k, full
}

// TestVerifierCache: a hit asks nothing of the database; an unknown key is
// remembered for the negative TTL; the TTL is the safety net for a change
// whose notification never came; the cache holds at most its bound.
func TestVerifierCache(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	k, full := f.key(t, apikey.Config{})
	now := time.Now()
	v := apikey.NewVerifier(f.store.Queries, apikey.VerifierOptions{MaxEntries: 3, TTL: time.Minute, NegativeTTL: 5 * time.Second}, metrics.New())
	v.Now = func() time.Time { return now }

	p, err := v.Verify(ctx, full)
	if err != nil || p.KeyID != k.ID || p.TenantSlug != "acme" || p.RateLimit.Requests != 500 || p.KeyOverride {
		t.Fatalf("first verify: %+v %v", p, err)
	}
	before := f.tracer.Len()
	for range 100 {
		if _, err := v.Verify(ctx, full); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.tracer.Len() - before; n != 0 {
		t.Fatalf("100 cache hits made %d queries", n)
	}

	unknown, _ := apikey.Generate(apikey.Production)
	before = f.tracer.Len()
	for range 10 {
		if _, err := v.Verify(ctx, unknown); !errors.Is(err, apikey.ErrInvalid) {
			t.Fatalf("unknown key: %v", err)
		}
	}
	if n := f.tracer.Len() - before; n != 1 {
		t.Fatalf("10 tries of one unknown key made %d queries, want 1 (negative cache)", n)
	}
	now = now.Add(6 * time.Second)
	v.Verify(ctx, unknown)
	if n := f.tracer.Len() - before; n != 2 {
		t.Fatalf("after the negative TTL the unknown key is looked up again: %d queries", n)
	}

	// Disable the key behind the verifier's back (no NOTIFY reaches v: it
	// is not listening). The cached answer holds until the TTL ends.
	if _, err := f.store.Pool.Exec(ctx, "UPDATE api_keys SET disabled_at = now() WHERE id = $1", k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, full); err != nil {
		t.Fatalf("within the TTL the cached key still verifies: %v", err)
	}
	now = now.Add(time.Minute)
	if _, err := v.Verify(ctx, full); !errors.Is(err, apikey.ErrDisabled) {
		t.Fatalf("after the TTL the change is seen: %v", err)
	}

	// Bounded: more keys than MaxEntries never grow the cache past it.
	for range 5 {
		_, other := f.key(t, apikey.Config{})
		if _, err := v.Verify(ctx, other); err != nil {
			t.Fatal(err)
		}
	}
	if n := v.Len(); n > 3 {
		t.Fatalf("cache holds %d entries, bound 3", n)
	}
}

// TestVerifierListens: a key change committed anywhere reaches a listening
// verifier's cache, and a rolled-back change sends nothing.
func TestVerifierListens(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	k, full := f.key(t, apikey.Config{})
	set := metrics.New()
	v := apikey.NewVerifier(f.store.Queries, apikey.VerifierOptions{TTL: time.Hour}, set)
	if err := v.Listen(ctx, f.store.Pool, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, full); err != nil {
		t.Fatal(err)
	}
	by := audit.Actor{Type: audit.ActorSystem}
	invalidations := func() float64 {
		var m dto.Metric
		set.Invalidations.Write(&m)
		return m.GetCounter().GetValue()
	}
	before := invalidations()
	rollback := errors.New("rolled back")
	err := f.store.InTx(ctx, func(q *db.Queries) error {
		if err := apikey.SetDisabled(ctx, q, audittest.Keys(), f.tenant.ID, k.ID, true, by, time.Now()); err != nil {
			return err
		}
		return rollback
	})
	if !errors.Is(err, rollback) {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // a notification would have arrived by now
	if n := invalidations() - before; n != 0 {
		t.Fatalf("a rolled-back disable sent %v notifications", n)
	}
	err = f.store.InTx(ctx, func(q *db.Queries) error {
		return apikey.SetDisabled(ctx, q, audittest.Keys(), f.tenant.ID, k.ID, true, by, time.Now())
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := v.Verify(ctx, full)
		if errors.Is(err, apikey.ErrDisabled) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the disable never reached the cache: %v", err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestVerifierReconnects: when the listener's connection is killed, the
// cache is kept, the listener comes back and catches up, and notifications
// work again.
func TestVerifierReconnects(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	k, full := f.key(t, apikey.Config{})
	v := apikey.NewVerifier(f.store.Queries, apikey.VerifierOptions{TTL: time.Hour}, metrics.New())
	if err := v.Listen(ctx, f.store.Pool, nil); err != nil {
		t.Fatal(err)
	}
	v.Verify(ctx, full)
	var listener int
	if err := f.store.Pool.QueryRow(ctx, `SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND query = 'LISTEN `+apikey.Channel+`' AND pid <> pg_backend_pid()`).Scan(&listener); err != nil {
		t.Fatalf("could not find the listener's backend: %v", err)
	}
	if _, err := f.store.Pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, listener); err != nil {
		t.Fatal(err)
	}
	// Back within a few seconds, on a new backend that listens and caught up.
	waitUntil(t, func() bool {
		var n int
		f.store.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> $1
			AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND query LIKE '%changed_at >%'`, listener).Scan(&n)
		return n == 1 && v.Current()
	})
	if _, err := v.Verify(ctx, full); err != nil {
		t.Fatal(err)
	}
	err := f.store.InTx(ctx, func(q *db.Queries) error {
		return apikey.Revoke(ctx, q, audittest.Keys(), f.tenant.ID, k.ID, audit.Actor{Type: audit.ActorSystem}, time.Now())
	})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { _, err := v.Verify(ctx, full); return errors.Is(err, apikey.ErrRevokedKey) })
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not reached in 15 s")
}

// BenchmarkVerifyCacheHit is the hot path of every keyed request: parse,
// checksum, hash, cache lookup and status checks. Target: < 2 µs/op.
func BenchmarkVerifyCacheHit(b *testing.B) {
	f := newFixture(b)
	_, full := f.key(b, apikey.Config{})
	v := apikey.NewVerifier(f.store.Queries, apikey.VerifierOptions{}, metrics.New())
	ctx := context.Background()
	if _, err := v.Verify(ctx, full); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Verify(ctx, full); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyMalformed: what a flood of garbage keys costs.
func BenchmarkVerifyMalformed(b *testing.B) {
	v := apikey.NewVerifier(nil, apikey.VerifierOptions{}, metrics.New())
	ctx := context.Background()
	bad := "kw_prod_" + strings.Repeat("A", 33)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, bad); err == nil {
			b.Fatal("accepted")
		}
	}
}

// TestCutOffReadsEachKeyOnceASecond: while the listener is cut off, a
// known key is read again from the database, but at most once a second:
// a hundred requests cost one read, a change made meanwhile is seen once
// the second has passed.
func TestCutOffReadsEachKeyOnceASecond(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	k, full := f.key(t, apikey.Config{})
	now := time.Now()
	v := apikey.NewVerifier(f.store.Queries, apikey.VerifierOptions{TTL: time.Hour}, metrics.New())
	v.Now = func() time.Time { return now }
	if _, err := v.Verify(ctx, full); err != nil {
		t.Fatal(err)
	}
	v.CutOff()
	now = now.Add(2 * time.Second) // the entry is older than a second: read again once
	before := f.tracer.Len()
	for range 100 {
		if _, err := v.Verify(ctx, full); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.tracer.Len() - before; n != 1 {
		t.Fatalf("100 requests while cut off made %d reads, want 1", n)
	}
	if _, err := f.store.Pool.Exec(ctx, "UPDATE api_keys SET revoked_at = now() WHERE id = $1", k.ID); err != nil {
		t.Fatal(err)
	}
	now = now.Add(500 * time.Millisecond)
	if _, err := v.Verify(ctx, full); err != nil {
		t.Fatalf("within the second, the read of half a second ago stands: %v", err)
	}
	now = now.Add(600 * time.Millisecond)
	if _, err := v.Verify(ctx, full); !errors.Is(err, apikey.ErrRevokedKey) {
		t.Fatalf("a second after the last read, the revocation is seen: %v", err)
	}
}
