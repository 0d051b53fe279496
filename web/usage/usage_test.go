package usage_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

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
