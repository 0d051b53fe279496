package usage_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"keyward/db"
	"keyward/db/dbtest"
	"keyward/web/metrics"
	"keyward/web/usage"
)

// TestRowRefusedForItsValuesIsDroppedAlone: a row Postgres refuses for
// its values fails its whole COPY; the batch is halved until that row is
// found, and only it is dropped (and counted).
func TestRowRefusedForItsValuesIsDroppedAlone(t *testing.T) {
	r, store, m := recorder(t, usage.Options{})
	key, now := uuid.NewString(), time.Now()
	for i := range 100 {
		q := row(key, i, now)
		if i == 37 {
			q.KeyID = "not a uuid" // cannot happen: goes as NULL, which the table refuses
		}
		r.Log(q)
	}
	r.Flush(context.Background())
	dropped := counter(m.Dropped.WithLabelValues("request_log"))
	if n := count(t, store, "key_id = $1", key); n != 99 || dropped != 1 {
		t.Fatalf("%d rows written, %v dropped; want 99 and 1", n, dropped)
	}
	if n := count(t, store, "request_id = 'r000037'"); n != 0 {
		t.Fatal("the refused row was written")
	}
}

// TestBufferDropsOnlyWhenFull: while writes fail, rows wait in the buffer
// up to its size in bytes; past it they are dropped and counted, and the
// rows kept are written once writes work again.
func TestBufferDropsOnlyWhenFull(t *testing.T) {
	r, store, m := recorder(t, usage.Options{LogBuffer: 32 << 10})
	ctx := context.Background()
	if _, err := store.Pool.Exec(ctx, "ALTER TABLE api_request_logs RENAME TO api_request_logs_away"); err != nil {
		t.Fatal(err)
	}
	// Should the test stop early: put it back before the recorder's Close,
	// which would otherwise retry for ever.
	t.Cleanup(func() { store.Pool.Exec(ctx, "ALTER TABLE IF EXISTS api_request_logs_away RENAME TO api_request_logs") })
	key, now := uuid.NewString(), time.Now()
	const sent = 1000
	for i := range sent {
		r.Log(row(key, i, now))
	}
	flushCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	r.Flush(flushCtx) // fails, and gives up when its context ends
	cancel()
	dropped := int(counter(m.Dropped.WithLabelValues("request_log")))
	if dropped == 0 || dropped == sent {
		t.Fatalf("%d of %d rows dropped by a 32 KiB buffer", dropped, sent)
	}
	if counter(m.FlushErrors.WithLabelValues("request_log")) == 0 {
		t.Fatal("no failed write counted")
	}
	if _, err := store.Pool.Exec(ctx, "ALTER TABLE api_request_logs_away RENAME TO api_request_logs"); err != nil {
		t.Fatal(err)
	}
	r.Flush(ctx)
	if n := count(t, store, "key_id = $1", key); n != sent-dropped {
		t.Fatalf("%d rows written after the fault; %d were sent and %d dropped", n, sent, dropped)
	}
	// The oldest rows were kept, the newest dropped.
	if n := count(t, store, "request_id = 'r000000'"); n != 1 {
		t.Fatal("the first row was not kept")
	}
	if n := count(t, store, fmt.Sprintf("request_id = 'r%06d'", sent-1)); n != 0 {
		t.Fatal("the last row was kept in a full buffer")
	}
}

// TestRefusalsPastTheBudgetAreCounted: a key's first RefusalBudget
// refusals of a minute are rows of their own; the rest are one row per
// status and code, written when the minute ends, and successes are never
// counted. The next minute starts a new budget.
func TestRefusalsPastTheBudgetAreCounted(t *testing.T) {
	start := time.Now().Truncate(time.Minute).Add(time.Minute)
	var clock atomic.Pointer[time.Time]
	clock.Store(&start)
	store := db.NewStore(dbtest.New(t))
	m := metrics.New()
	r := usage.New(store, slog.New(slog.NewTextHandler(io.Discard, nil)), func() time.Time { return *clock.Load() }, m,
		usage.Options{Interval: 10 * time.Millisecond})
	r.Start()
	defer r.Close(context.Background())
	key, other := uuid.NewString(), uuid.NewString()
	refuse := func(k string, i, status int, code string, at time.Time) {
		q := row(k, i, at)
		q.Status, q.Code, q.Latency = status, code, time.Duration(i%2+1)*time.Millisecond
		r.Log(q)
	}
	i := 0
	for range 1000 {
		refuse(key, i, 401, "KEY_REVOKED", start.Add(time.Duration(i)*time.Millisecond))
		i++
	}
	for range 100 {
		refuse(key, i, 403, "IP_NOT_ALLOWED", start.Add(2*time.Second))
		i++
	}
	for range 100 {
		r.Log(row(key, i, start.Add(3*time.Second)))
		i++
	}
	for range 70 {
		refuse(other, i, 429, "RATE_LIMITED", start.Add(4*time.Second))
		i++
	}
	// The minute has not ended: the loops write the rows of their own
	// (at their next tick), not the counted ones.
	waitFor(t, func() bool { return count(t, store, "true") == 60+100+60 })
	next := start.Add(time.Minute)
	clock.Store(&next)
	waitFor(t, func() bool { return count(t, store, "true") == 1000+100+100+70 })

	type got struct {
		status, count int
		rid           string
		latencyUs     int64
	}
	rows, err := store.Pool.Query(context.Background(),
		"SELECT status, count, request_id, latency_us FROM api_request_logs WHERE count > 1 ORDER BY status")
	if err != nil {
		t.Fatal(err)
	}
	var counted []got
	for rows.Next() {
		var g got
		if err := rows.Scan(&g.status, &g.count, &g.rid, &g.latencyUs); err != nil {
			t.Fatal(err)
		}
		counted = append(counted, g)
	}
	want := []got{
		{401, 940, "r000060", 1500}, // the 61st refusal, and the mean of 1 ms and 2 ms
		{403, 100, "r001000", 1500},
		{429, 10, fmt.Sprintf("r%06d", 1260), 1500},
	}
	if fmt.Sprint(counted) != fmt.Sprint(want) {
		t.Fatalf("counted rows %v, want %v", counted, want)
	}

	// A new minute, a new budget.
	for range 70 {
		refuse(key, i, 401, "KEY_REVOKED", next)
		i++
	}
	r.Flush(context.Background()) // the open minute's counted rows too
	if n := count(t, store, "true"); n != 1270+70 {
		t.Fatalf("%d requests logged, want %d", n, 1270+70)
	}
	var rowsNow int
	store.Pool.QueryRow(context.Background(), "SELECT count(*) FROM api_request_logs WHERE at >= $1", next).Scan(&rowsNow)
	if rowsNow != 61 {
		t.Fatalf("the next minute's 70 refusals are %d rows, want 61", rowsNow)
	}
}

// TestRowsKeepCodeAndUserAgent: a row keeps its refusal's error code and
// its client's user agent; a success's code, and a missing user agent,
// are stored as NULL.
func TestRowsKeepCodeAndUserAgent(t *testing.T) {
	r, store, _ := recorder(t, usage.Options{})
	key, now := uuid.NewString(), time.Now()
	refused := row(key, 1, now)
	refused.Status, refused.Code, refused.UserAgent = 403, "IP_NOT_ALLOWED", "acme-sync/2.1"
	r.Log(refused)
	r.Log(row(key, 2, now))
	r.Flush(context.Background())
	var code, ua *string
	if err := store.Pool.QueryRow(context.Background(), "SELECT code, user_agent FROM api_request_logs WHERE request_id = 'r000001'").Scan(&code, &ua); err != nil {
		t.Fatal(err)
	}
	if code == nil || *code != "IP_NOT_ALLOWED" || ua == nil || *ua != "acme-sync/2.1" {
		t.Errorf("the refusal's row: code %v, user agent %v", code, ua)
	}
	if err := store.Pool.QueryRow(context.Background(), "SELECT code, user_agent FROM api_request_logs WHERE request_id = 'r000002'").Scan(&code, &ua); err != nil {
		t.Fatal(err)
	}
	if code != nil || ua != nil {
		t.Errorf("the success's row: code %v, user agent %v; want NULLs", code, ua)
	}
}
