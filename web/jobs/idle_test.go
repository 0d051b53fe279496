package jobs_test

import (
	"context"
	"io"
	"log/slog"
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

// TestIdleKeysJob: with the clock 40 days on, the idle_keys job (run at
// start) disables exactly the active keys of organisations whose policy
// says 30 days that were not used in those 30 days, and audits each as
// done by the system. A key used recently, a key of an organisation with
// no such policy, and an already disabled key are left alone.
func TestIdleKeysJob(t *testing.T) {
	store := db.NewStore(dbtest.New(t))
	ctx := context.Background()
	now := time.Now()
	later := now.AddDate(0, 0, 40)
	var acme, globex db.Tenant
	keys := map[string]string{}
	err := store.InTx(ctx, func(q *db.Queries) error {
		var err error
		if acme, err = auth.CreateTenant(ctx, q, audittest.Keys(), "acme", "Acme", "team", now); err != nil {
			return err
		}
		if globex, err = auth.CreateTenant(ctx, q, audittest.Keys(), "globex", "Globex", "team", now); err != nil {
			return err
		}
		mk := func(t db.Tenant, name string) error {
			u, err := auth.CreateUser(ctx, q, audittest.Keys(), t.ID, name+"@"+t.Slug+".test", auth.RoleAdmin, "correct horse battery staple", false, audit.Actor{}, now)
			if err != nil {
				return err
			}
			k, _, err := apikey.Create(ctx, q, audittest.Keys(), t.ID, apikey.Config{Name: name, Environment: apikey.Staging, Scopes: []string{apikey.ScopeEventsRead}},
				audit.Actor{Type: audit.ActorSystem}, u.ID, now)
			keys[name] = k.ID
			return err
		}
		for _, k := range []struct {
			t    db.Tenant
			name string
		}{{acme, "idle"}, {acme, "used"}, {acme, "off"}, {globex, "nopolicy"}} {
			if err := mk(k.t, k.name); err != nil {
				return err
			}
		}
		return apikey.SavePolicy(ctx, q, acme.ID, apikey.Policy{IdleDisableDays: 30}, now)
	})
	if err != nil {
		t.Fatal(err)
	}
	// "used" was used five days before the job's clock; "off" is disabled already.
	if _, err := store.Pool.Exec(ctx, `UPDATE api_keys SET last_used_at = $2 WHERE id = $1`, keys["used"], later.AddDate(0, 0, -5)); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Pool.Exec(ctx, `UPDATE api_keys SET disabled_at = $2 WHERE id = $1`, keys["off"], now); err != nil {
		t.Fatal(err)
	}

	clock := func() time.Time { return later }
	r, err := jobs.New(jobs.Config{Store: store, Sessions: session.New(store.Queries, make([]byte, 32), false, clock), Retention: 24 * time.Hour,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: clock, Audit: audittest.Keys()})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Stop(ctx)
	disabled := func(name string) bool {
		var off bool
		store.Pool.QueryRow(ctx, `SELECT disabled_at IS NOT NULL FROM api_keys WHERE id = $1`, keys[name]).Scan(&off)
		return off
	}
	waitFor(t, "the idle key disabled", func() bool { return disabled("idle") })
	waitFor(t, "the job done", func() bool {
		var n int
		store.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'completed'`, jobs.IdleKeysArgs{}.Kind()).Scan(&n)
		return n == 1
	})
	if disabled("used") || disabled("nopolicy") {
		t.Error("the job disabled a key that is not idle under a policy")
	}
	rows, err := store.Pool.Query(ctx, `SELECT target_id, actor_type, actor_id, diff->>'reason' FROM audit_events WHERE action = 'api_key.disabled'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var events int
	for rows.Next() {
		var target, actorType, actorID, reason string
		if err := rows.Scan(&target, &actorType, &actorID, &reason); err != nil {
			t.Fatal(err)
		}
		events++
		if target != keys["idle"] || actorType != audit.ActorSystem || actorID != apikey.IdleActor.ID || reason != "idle" {
			t.Errorf("event: %s by %s %s, reason %q", target, actorType, actorID, reason)
		}
	}
	if events != 1 {
		t.Errorf("%d api_key.disabled events, want 1", events)
	}
	if rep, err := audit.Verify(ctx, store.Queries, audittest.Keys()); err != nil || rep.Broken != nil {
		t.Errorf("audit chain: %v %v", rep.Broken, err)
	}
}
