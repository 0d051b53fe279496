package jobs_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"keyward/db"
	"keyward/db/dbtest"
	"keyward/web/jobs"
	"keyward/web/session"
	"keyward/web/usage"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within 20 s", what)
}

// TestJobsRunOnceAcrossInstances: two runners on one database, as two
// instances would run, whose clock says 30 days from now. The partitions
// and retention jobs run at start, once between them: the partitions of
// that day and the next are made, and today's, past a retention of a day,
// dropped. A cleanup job inserted by hand deletes an expired idempotency
// key.
func TestJobsRunOnceAcrossInstances(t *testing.T) {
	store := db.NewStore(dbtest.New(t))
	ctx := context.Background()
	later := time.Now().AddDate(0, 0, 30)
	now := func() time.Time { return later }
	cfg := jobs.Config{Store: store, Sessions: session.New(store.Queries, make([]byte, 32), false, now), Retention: 24 * time.Hour,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: now}
	var runners []*jobs.Runner
	for range 2 {
		r, err := jobs.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer r.Stop(ctx)
		runners = append(runners, r)
	}
	if _, err := store.Pool.Exec(ctx, `INSERT INTO idempotency_keys (key_id, key, tenant_id, request_hash, status, body, created_at)
		VALUES (gen_random_uuid(), 'k', 1, decode(repeat('00', 32), 'hex'), 201, '', now())`); err != nil {
		t.Fatal(err)
	}
	if _, err := runners[1].Client().Insert(ctx, jobs.CleanupArgs{}, nil); err != nil {
		t.Fatal(err)
	}

	exists := func(day time.Time) bool {
		var ok bool
		store.Pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", "api_request_logs_p"+day.UTC().Format("20060102")).Scan(&ok)
		return ok
	}
	waitFor(t, "partitions ahead of the clock", func() bool { return exists(later.AddDate(0, 0, usage.PartitionsAhead)) })
	waitFor(t, "today's partition dropped", func() bool { return !exists(time.Now()) })
	waitFor(t, "expired idempotency key deleted", func() bool {
		var n int
		store.Pool.QueryRow(ctx, "SELECT count(*) FROM idempotency_keys").Scan(&n)
		return n == 0
	})
	for _, kind := range []string{jobs.PartitionsArgs{}.Kind(), jobs.RetentionArgs{}.Kind()} {
		var n int
		if err := store.Pool.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE kind = $1", kind).Scan(&n); err != nil || n != 1 {
			t.Errorf("%s: %d jobs (%v); want one for both instances", kind, n, err)
		}
	}
}
