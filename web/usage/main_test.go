package usage_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"keyward/db"
	"keyward/db/dbtest"
	"keyward/web/metrics"
	"keyward/web/usage"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// recorder is a Recorder on a fresh database, not started: a test starts
// it or flushes it by hand.
func recorder(t *testing.T, o usage.Options) (*usage.Recorder, *db.Store, *metrics.Set) {
	t.Helper()
	store := db.NewStore(dbtest.New(t))
	m := metrics.New()
	r := usage.New(store, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now, m, o)
	t.Cleanup(func() { r.Close(context.Background()) })
	return r, store, m
}

// row is a request-log row of a 200 at at; every row gets its own id.
func row(keyID string, i int, at time.Time) usage.Request {
	return usage.Request{TenantID: 1, KeyID: keyID, KeyPrefix: "kw_prod_abcd", Method: "GET", Path: "/api/v1/key", Status: 200,
		IP: "192.0.2.1", Latency: time.Millisecond, RequestID: fmt.Sprintf("r%06d", i), At: at}
}

func counter(c interface{ Write(*dto.Metric) error }) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}

func count(t *testing.T, store *db.Store, where string, args ...any) int {
	t.Helper()
	var n int
	if err := store.Pool.QueryRow(context.Background(), "SELECT coalesce(sum(count), 0) FROM api_request_logs WHERE "+where, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
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
