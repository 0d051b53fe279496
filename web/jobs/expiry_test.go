package jobs_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"keyward/db"
	"keyward/db/dbtest"
	"keyward/web/apikey"
	"keyward/web/audit"
	"keyward/web/audit/audittest"
	"keyward/web/auth"
	"keyward/web/jobs"
	"keyward/web/session"
)

// expiryFixture is a database with tenants, a user each, and keys made at
// start by name.
type expiryFixture struct {
	t       *testing.T
	ctx     context.Context
	store   *db.Store
	start   time.Time
	tenants map[string]db.Tenant
	users   map[int64]int64 // tenant id → a user's id
	keys    map[string]string
	// edited: keys' expiries were changed, so earlier events name
	// earlier expiries.
	edited bool
}

func newExpiryFixture(t *testing.T, slugs ...string) *expiryFixture {
	f := &expiryFixture{t: t, ctx: context.Background(), store: db.NewStore(dbtest.New(t)),
		start: time.Now().UTC().Truncate(time.Second), tenants: map[string]db.Tenant{}, users: map[int64]int64{}, keys: map[string]string{}}
	err := f.store.InTx(f.ctx, func(q *db.Queries) error {
		for _, slug := range slugs {
			tn, err := auth.CreateTenant(f.ctx, q, audittest.Keys(), slug, slug, "team", f.start)
			if err != nil {
				return err
			}
			u, err := auth.CreateUser(f.ctx, q, audittest.Keys(), tn.ID, "ann@"+slug+".test", auth.RoleAdmin, "correct horse battery staple", false, audit.Actor{}, f.start)
			if err != nil {
				return err
			}
			f.tenants[slug], f.users[tn.ID] = tn, u.ID
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// key makes a key of the tenant at now that expires in (0: never).
func (f *expiryFixture) key(slug, name string, now time.Time, in time.Duration) {
	f.t.Helper()
	tn := f.tenants[slug]
	cfg := apikey.Config{Name: name, Environment: apikey.Staging, Scopes: []string{apikey.ScopeEventsRead}}
	if in != 0 {
		at := now.Add(in)
		cfg.ExpiresAt = &at
	}
	err := f.store.InTx(f.ctx, func(q *db.Queries) error {
		k, _, err := apikey.Create(f.ctx, q, audittest.Keys(), tn.ID, cfg, audit.Actor{Type: audit.ActorSystem}, f.users[tn.ID], now)
		f.keys[name] = k.ID
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// events lists the expiry events written about each key, by name, as
// "expiring:14_days", "expiring:1_day" and "expired", in order; each is
// checked to be the system's, in the key's tenant, with the key's expiry
// (unless edited).
func (f *expiryFixture) events() map[string][]string {
	f.t.Helper()
	names := map[string]string{}
	for name, id := range f.keys {
		names[id] = name
	}
	rows, err := f.store.Pool.Query(f.ctx, `SELECT e.target_id, e.action, coalesce(e.diff->>'notice', ''), e.actor_type, e.actor_id,
			e.tenant_id = k.tenant_id, e.diff->>'expires_at' = to_char(k.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
		FROM audit_events e JOIN api_keys k ON k.id::text = e.target_id
		WHERE e.action IN ('api_key.expiring', 'api_key.expired') ORDER BY e.id`)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var target, action, notice, actorType, actorID string
		var sameTenant, sameExpiry bool
		if err := rows.Scan(&target, &action, &notice, &actorType, &actorID, &sameTenant, &sameExpiry); err != nil {
			f.t.Fatal(err)
		}
		ev := strings.TrimPrefix(action, "api_key.")
		if notice != "" {
			ev += ":" + notice
		}
		if actorType != audit.ActorSystem || actorID != apikey.ExpiryActor.ID || !sameTenant {
			f.t.Errorf("%s of %s: by %s %s, in the key's tenant %v", action, names[target], actorType, actorID, sameTenant)
		}
		if !sameExpiry && !f.edited {
			f.t.Errorf("%s of %s: the diff's expires_at is not the key's expiry", action, names[target])
		}
		out[names[target]] = append(out[names[target]], ev)
	}
	if err := rows.Err(); err != nil {
		f.t.Fatal(err)
	}
	return out
}

func (f *expiryFixture) wantEvents(want map[string][]string) {
	f.t.Helper()
	got := f.events()
	for name := range f.keys {
		if !slices.Equal(got[name], want[name]) {
			f.t.Errorf("%s: events %q, want %q", name, got[name], want[name])
		}
	}
	if rep, err := audit.Verify(f.ctx, f.store.Queries, audittest.Keys()); err != nil || rep.Broken != nil {
		f.t.Errorf("audit chain: %v %v", rep.Broken, err)
	}
}

const day = 24 * time.Hour

// TestKeyExpiryJobOnceAcrossInstances: two runners on one database, as two
// instances run, and the application clock moved past each key's 14-day
// and 1-day marks and its expiry. At each step both instances run the
// job; each notice and each expiry is written once per key. A key made 5
// days before its expiry gets no 14-day notice (its window had begun),
// only the 1-day one; a revoked key and a key that never expires get
// nothing; a disabled key gets no notice but its expiry is recorded; the
// other tenant's key gets its own events in its own chain.
func TestKeyExpiryJobOnceAcrossInstances(t *testing.T) {
	f := newExpiryFixture(t, "acme", "globex")
	s := f.start
	f.key("acme", "soon", s, 20*day)
	f.key("acme", "short", s, 5*day)
	f.key("acme", "revoked", s, 20*day)
	f.key("acme", "disabled", s, 20*day)
	f.key("acme", "never", s, 0)
	f.key("globex", "other", s, 20*day)
	if err := f.store.InTx(f.ctx, func(q *db.Queries) error {
		acme := f.tenants["acme"].ID
		if err := apikey.Revoke(f.ctx, q, audittest.Keys(), acme, f.keys["revoked"], audit.Actor{Type: audit.ActorSystem}, s); err != nil {
			return err
		}
		return apikey.SetDisabled(f.ctx, q, audittest.Keys(), acme, f.keys["disabled"], true, audit.Actor{Type: audit.ActorSystem}, s)
	}); err != nil {
		t.Fatal(err)
	}

	var clock atomic.Pointer[time.Time]
	clock.Store(&s)
	now := func() time.Time { return *clock.Load() }
	cfg := jobs.Config{Store: f.store, Sessions: session.New(f.store.Queries, make([]byte, 32), false, now), Retention: 24 * time.Hour,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: now, Audit: audittest.Keys()}
	runners := instances(t, f.ctx, cfg, 2)
	// runBoth moves the clock to at and has each instance run the job.
	runBoth := func(at time.Time) {
		t.Helper()
		clock.Store(&at)
		var ids []int64
		for _, r := range runners {
			res, err := r.Client().Insert(f.ctx, jobs.KeyExpiryArgs{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, res.Job.ID)
		}
		waitFor(t, fmt.Sprintf("both key_expiry jobs done at %s", at.Sub(s)), func() bool {
			var n int
			f.store.Pool.QueryRow(f.ctx, "SELECT count(*) FROM river_job WHERE id = ANY($1) AND state = 'completed'", ids).Scan(&n)
			return n == len(ids)
		})
	}

	runBoth(s.Add(4*day + time.Hour)) // short: 23 hours left
	f.wantEvents(map[string][]string{"short": {"expiring:1_day"}})
	runBoth(s.Add(6*day + time.Hour)) // short expired; 13 days 23 hours left for the 20-day keys
	f.wantEvents(map[string][]string{"short": {"expiring:1_day", "expired"},
		"soon": {"expiring:14_days"}, "other": {"expiring:14_days"}})
	runBoth(s.Add(19*day + time.Hour))
	runBoth(s.Add(20*day + time.Hour))
	runBoth(s.Add(21 * day)) // nothing left to record
	f.wantEvents(map[string][]string{
		"short":    {"expiring:1_day", "expired"},
		"soon":     {"expiring:14_days", "expiring:1_day", "expired"},
		"other":    {"expiring:14_days", "expiring:1_day", "expired"},
		"disabled": {"expired"},
	})
	var days []string
	rows, err := f.store.Pool.Query(f.ctx, `SELECT diff->>'notice', diff->>'days_left' FROM audit_events WHERE action = 'api_key.expiring' AND target_id = $1 ORDER BY id`, f.keys["soon"])
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var notice, left string
		rows.Scan(&notice, &left)
		days = append(days, notice+"="+left)
	}
	rows.Close()
	if strings.Join(days, " ") != "14_days=14 1_day=1" {
		t.Errorf("soon's notices: %v, want 14 and 1 day left", days)
	}
}

// TestRecordExpiriesConcurrently: the job's work, run by eight goroutines
// at once past the expiry of ten keys, writes one api_key.expired each
// (and no stale notice).
func TestRecordExpiriesConcurrently(t *testing.T) {
	f := newExpiryFixture(t, "acme")
	want := map[string][]string{}
	for i := range 10 {
		name := fmt.Sprintf("k%d", i)
		f.key("acme", name, f.start, 20*day+time.Duration(i)*time.Minute)
		want[name] = []string{"expired"}
	}
	at := f.start.Add(21 * day)
	var wg sync.WaitGroup
	var expired atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := apikey.RecordExpiries(f.ctx, f.store, audittest.Keys(), at)
			if err != nil {
				t.Error(err)
			}
			expired.Add(int64(n.Expired))
		}()
	}
	wg.Wait()
	if expired.Load() != 10 {
		t.Errorf("the runs say they recorded %d expiries, want 10", expired.Load())
	}
	f.wantEvents(want)
}

// TestExpiryEditResetsStages: a key whose 14-day notice and expiry were
// recorded is given a new expiry 30 days on: it is live again, and gets
// its notices and its expiry recorded anew. An edit that keeps the expiry
// (a rename) resets nothing, and an expiry moved inside the 1-day window
// sends no notice for it: whoever moved it knows.
func TestExpiryEditResetsStages(t *testing.T) {
	f := newExpiryFixture(t, "acme")
	f.edited = true
	s := f.start
	f.key("acme", "k", s, 20*day)
	f.key("acme", "moved", s, 20*day)
	tid := f.tenants["acme"].ID
	record := func(at time.Time) {
		t.Helper()
		if _, err := apikey.RecordExpiries(f.ctx, f.store, audittest.Keys(), at); err != nil {
			t.Fatal(err)
		}
	}
	edit := func(name string, at time.Time, newName string, expires time.Time) {
		t.Helper()
		cfg := apikey.Config{Name: newName, Scopes: []string{apikey.ScopeEventsRead}, ExpiresAt: &expires}
		if err := f.store.InTx(f.ctx, func(q *db.Queries) error {
			return apikey.Update(f.ctx, q, audittest.Keys(), tid, f.keys[name], cfg, audit.Actor{Type: audit.ActorSystem}, at)
		}); err != nil {
			t.Fatal(err)
		}
	}
	record(s.Add(7 * day))
	// "moved" is moved to 12 hours from now: inside the 1-day window.
	edit("moved", s.Add(7*day), "moved", s.Add(7*day+12*time.Hour))
	record(s.Add(7*day + time.Hour))
	f.wantEvents(map[string][]string{"k": {"expiring:14_days"}, "moved": {"expiring:14_days"}})
	record(s.Add(21 * day))
	f.wantEvents(map[string][]string{"k": {"expiring:14_days", "expired"}, "moved": {"expiring:14_days", "expired"}})

	// A rename keeps the (past) expiry: nothing is recorded again.
	edit("k", s.Add(21*day), "k renamed", s.Add(20*day))
	record(s.Add(21*day + time.Hour))
	f.wantEvents(map[string][]string{"k": {"expiring:14_days", "expired"}, "moved": {"expiring:14_days", "expired"}})

	// A new expiry 30 days on: live again, and recorded anew.
	renewed := s.Add(51 * day)
	edit("k", s.Add(21*day+time.Hour), "k renamed", renewed)
	record(renewed.Add(-14*day + time.Hour))
	record(renewed.Add(-day + time.Hour))
	record(renewed.Add(time.Hour))
	f.wantEvents(map[string][]string{
		"k":     {"expiring:14_days", "expired", "expiring:14_days", "expiring:1_day", "expired"},
		"moved": {"expiring:14_days", "expired"},
	})
}
