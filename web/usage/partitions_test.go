package usage_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"keyward/db"
	"keyward/db/dbtest"
	"keyward/web/metrics"
	"keyward/web/usage"
)

// partitions maps each partition of the request log to how many rows it
// holds.
func partitions(t *testing.T, store *db.Store) map[string]int {
	t.Helper()
	rows, err := store.Pool.Query(context.Background(), `SELECT c.relname,
		(SELECT count(*) FROM api_request_logs l WHERE l.tableoid = c.oid)
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'api_request_logs'::regclass`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]int{}
	for rows.Next() {
		var name string
		var n int
		if err := rows.Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		got[name] = n
	}
	return got
}

func dayName(t time.Time) string { return "api_request_logs_p" + t.UTC().Format("20060102") }

// TestRowsLandInTheirDaysPartition: rows of several days are written into
// their own day's partition, and a row of a day that has none yet is
// stored all the same (in the default partition) until the job gives its
// day a partition, which takes the row along.
func TestRowsLandInTheirDaysPartition(t *testing.T) {
	store := db.NewStore(dbtest.New(t))
	r := usage.New(store, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now, metrics.New(), usage.Options{})
	defer r.Close(context.Background())
	ctx := context.Background()
	now := time.Now().UTC()
	key := uuid.NewString()
	far := now.AddDate(0, 0, 40)
	days := []time.Time{now, now.AddDate(0, 0, 1), now.AddDate(0, 0, 2), now.AddDate(0, 0, 2), far}
	for i, at := range days {
		r.Log(row(key, i, at))
	}
	r.Flush(ctx)
	got := partitions(t, store)
	want := map[string]int{dayName(now): 1, dayName(days[1]): 1, dayName(days[2]): 2, "api_request_logs_default": 1}
	for name, n := range want {
		if got[name] != n {
			t.Errorf("%s holds %d rows, want %d (partitions: %v)", name, got[name], n, got)
		}
	}
	if _, ok := got[dayName(far)]; ok {
		t.Fatalf("a partition 40 days ahead exists before any job made it: %v", got)
	}

	// The job, run for today, gives the far day its partition too: its
	// row sits in the default one.
	n, err := usage.EnsurePartitions(ctx, store.Queries, now)
	if err != nil || n != 1 {
		t.Fatalf("EnsurePartitions: %d created, %v; want 1, the far day's", n, err)
	}
	got = partitions(t, store)
	if got[dayName(far)] != 1 || got["api_request_logs_default"] != 0 {
		t.Fatalf("the far day's row did not move to its partition: %v", got)
	}
	if n := count(t, store, "key_id = $1", key); n != len(days) {
		t.Fatalf("%d rows after the move, want %d", n, len(days))
	}
}

// TestPartitionsAheadAndRetention: the partitions job makes today's and
// the next days' partitions, and does nothing when they exist; retention
// drops whole days past it, and old rows of the default partition, and
// keeps the rest.
func TestPartitionsAheadAndRetention(t *testing.T) {
	store := db.NewStore(dbtest.New(t))
	ctx := context.Background()
	q := store.Queries
	now := time.Now().UTC()

	// Thirty days on, as if the job had not run since.
	later := now.AddDate(0, 0, 30)
	n, err := usage.EnsurePartitions(ctx, q, later)
	if err != nil || n != usage.PartitionsAhead+1 {
		t.Fatalf("EnsurePartitions 30 days on: %d created, %v; want %d", n, err, usage.PartitionsAhead+1)
	}
	got := partitions(t, store)
	for d := range usage.PartitionsAhead + 1 {
		if _, ok := got[dayName(later.AddDate(0, 0, d))]; !ok {
			t.Fatalf("no partition %d days after the job's day: %v", d, got)
		}
	}
	if n, err := usage.EnsurePartitions(ctx, q, later); err != nil || n != 0 {
		t.Fatalf("EnsurePartitions again: %d created, %v; want 0", n, err)
	}

	// Rows 40 and 20 days old, today's, and in the default partition rows
	// of days with no partition, 10 and 35 days old.
	key := uuid.NewString()
	old, recent, lost := now.AddDate(0, 0, -40), now.AddDate(0, 0, -20), now.AddDate(0, 0, -10)
	if _, err := usage.EnsurePartitions(ctx, q, old); err != nil {
		t.Fatal(err)
	}
	if _, err := usage.EnsurePartitions(ctx, q, recent); err != nil {
		t.Fatal(err)
	}
	for i, at := range []time.Time{old, old, recent, now, lost, lost.AddDate(0, 0, -25)} {
		if _, err := store.Pool.Exec(ctx, `INSERT INTO api_request_logs
			(tenant_id, key_id, key_prefix, method, path, status, ip, latency_us, request_id, at)
			VALUES (1, $1, 'kw_prod_x', 'GET', '/api/v1/key', 200, '192.0.2.1', 10, $2, $3)`, key, fmt.Sprint("r", i), at); err != nil {
			t.Fatal(err)
		}
	}
	dropped, err := usage.DropOldPartitions(ctx, q, now, 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	got = partitions(t, store)
	for d := range usage.PartitionsAhead + 1 {
		if _, ok := got[dayName(old.AddDate(0, 0, d))]; ok {
			t.Fatalf("the partition %d days after one 40 days old is still there: %v", d, got)
		}
	}
	if dropped != usage.PartitionsAhead+1 {
		t.Fatalf("%d partitions dropped, want %d", dropped, usage.PartitionsAhead+1)
	}
	if got[dayName(recent)] != 1 || got[dayName(now)] != 1 || got["api_request_logs_default"] != 1 {
		t.Fatalf("retention took rows it should keep: %v", got)
	}
	if n := count(t, store, "key_id = $1", key); n != 3 {
		t.Fatalf("%d rows left, want 3: 20 days old, today's and 10 days old", n)
	}
}
