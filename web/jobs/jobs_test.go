package jobs_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"keyward/db"
	"keyward/db/dbtest"
	"keyward/web/audit"
	"keyward/web/audit/audittest"
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

// instances starts n runners of cfg, as n instances of the server would
// run, each stopped when the test ends.
func instances(t *testing.T, ctx context.Context, cfg jobs.Config, n int) []*jobs.Runner {
	t.Helper()
	var runners []*jobs.Runner
	for range n {
		r, err := jobs.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Stop(ctx) })
		runners = append(runners, r)
	}
	return runners
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
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: now, Audit: audittest.Keys()}
	runners := instances(t, ctx, cfg, 2)
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

// syncBuffer is a log both runners write to.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestCheckpointJob: two runners on one database run the checkpoint job
// at start once between them, which checkpoints both chains; run again,
// it skips them, unchanged; after an event in one chain, it checkpoints
// that chain alone. Every checkpoint is logged, and the logged lines
// verify against the chains.
func TestCheckpointJob(t *testing.T) {
	store := db.NewStore(dbtest.New(t))
	ctx := context.Background()
	tn, err := store.CreateTenant(ctx, db.CreateTenantParams{Slug: "acme", Name: "Acme", Plan: "free"})
	if err != nil {
		t.Fatal(err)
	}
	keys := audittest.Keys()
	record := func(tenant *int64) {
		t.Helper()
		if err := store.InTx(ctx, func(q *db.Queries) error {
			return audit.Record(ctx, q, keys, time.Now(), audit.Event{TenantID: tenant, Action: "api_key.updated"})
		}); err != nil {
			t.Fatal(err)
		}
	}
	record(&tn.ID)
	record(&tn.ID)
	record(nil)

	var logs syncBuffer
	cfg := jobs.Config{Store: store, Sessions: session.New(store.Queries, make([]byte, 32), false, time.Now), Retention: 24 * time.Hour,
		Log: slog.New(slog.NewJSONHandler(&logs, nil)), Audit: keys, CheckpointAtStart: true}
	runners := instances(t, ctx, cfg, 2)
	kind := jobs.CheckpointArgs{}.Kind()
	jobsDone := func(want int) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d checkpoint jobs completed", want), func() bool {
			var n int
			store.Pool.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'completed'", kind).Scan(&n)
			return n >= want
		})
		var all int
		if err := store.Pool.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE kind = $1", kind).Scan(&all); err != nil || all != want {
			t.Fatalf("%d checkpoint jobs (%v), want %d", all, err, want)
		}
	}
	checkpointsIn := func(chain int64) int {
		var n int
		if err := store.Pool.QueryRow(ctx, "SELECT count(*) FROM audit_events WHERE chain_id = $1 AND action = $2", chain, audit.ActionCheckpoint).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	jobsDone(1) // at start, once for both runners
	if a, z := checkpointsIn(tn.ID), checkpointsIn(0); a != 1 || z != 1 {
		t.Fatalf("after the start job: %d and %d checkpoints, want one in each chain", a, z)
	}
	if _, err := runners[1].Client().Insert(ctx, jobs.CheckpointArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	jobsDone(2)
	if a, z := checkpointsIn(tn.ID), checkpointsIn(0); a != 1 || z != 1 {
		t.Fatalf("unchanged chains checkpointed again: %d and %d", a, z)
	}
	record(&tn.ID)
	if _, err := runners[0].Client().Insert(ctx, jobs.CheckpointArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	jobsDone(3)
	if a, z := checkpointsIn(tn.ID), checkpointsIn(0); a != 2 || z != 1 {
		t.Fatalf("after an event in one chain: %d and %d checkpoints, want 2 and 1", a, z)
	}

	cps, err := audit.ParseCheckpoints(strings.NewReader(logs.String()))
	if err != nil || len(cps) != 3 {
		t.Fatalf("logged checkpoints: %d (%v)\n%s", len(cps), err, logs.String())
	}
	problems, err := audit.VerifyCheckpoints(ctx, store.Queries, keys.PublicKey(), cps)
	if err != nil || len(problems) != 0 {
		t.Fatalf("logged checkpoints do not verify: %v %v", problems, err)
	}
}
