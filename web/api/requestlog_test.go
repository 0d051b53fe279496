package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"keyward/web"
	"keyward/web/apikey"
	"keyward/web/usage"
	"keyward/web/webtest"
)

func metricValue(c interface{ Write(*dto.Metric) error }) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}

// TestRequestLogBatchWrittenWhenFull: with a flush interval of an hour, a
// full batch of request-log rows is written at once; the rows after it
// wait for the tick (or a flush).
func TestRequestLogBatchWrittenWhenFull(t *testing.T) {
	f := newFixture(t, webtest.Options{Config: func(c *web.Config) { c.Usage.Interval = time.Hour }})
	k, full := f.key(apikey.Config{RateLimit: &apikey.RateLimit{Requests: 1_000_000, Window: time.Hour}})
	const extra = 7
	for i := range usage.LogBatch + extra {
		req := httptest.NewRequest("GET", "/api/v1/key", nil)
		req.Header.Set("Authorization", "Bearer "+full)
		// The first few are held against openapi.json (Serve); the rest,
		// the same answer again, go straight to the router: checking
		// thousands of identical exchanges takes seconds.
		if i < 10 {
			if r := f.Serve(req); r.Status != http.StatusOK {
				t.Fatalf("request %d: %d %s", i, r.Status, r.Body)
			}
			continue
		}
		rec := httptest.NewRecorder()
		if f.App.Echo.ServeHTTP(rec, req); rec.Code != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	logged := func() int {
		var n int
		f.Store.Pool.QueryRow(context.Background(), "SELECT count(*) FROM api_request_logs WHERE key_id = $1", k.ID).Scan(&n)
		return n
	}
	waitFor(t, func() bool { return logged() >= usage.LogBatch })
	if n := logged(); n != usage.LogBatch {
		t.Fatalf("%d rows written before the tick, want one batch of %d", n, usage.LogBatch)
	}
	f.App.Usage.Flush(context.Background())
	if n := logged(); n != usage.LogBatch+extra {
		t.Fatalf("%d rows after a flush, want %d", n, usage.LogBatch+extra)
	}
}

// TestRequestLogSurvivesFailedWrites: while the request log cannot be
// written (its table is renamed away, in this test's own database), the
// writes fail and are retried; once it is back every row arrives, and
// none was dropped.
func TestRequestLogSurvivesFailedWrites(t *testing.T) {
	f := newFixture(t, webtest.Options{Config: func(c *web.Config) { c.Usage.Interval = 20 * time.Millisecond }})
	k, full := f.key(apikey.Config{RateLimit: &apikey.RateLimit{Requests: 1_000_000, Window: time.Hour}})
	ctx := context.Background()
	failures := func() float64 { return metricValue(f.App.Metrics.FlushErrors.WithLabelValues("request_log")) }
	dropped := metricValue(f.App.Metrics.Dropped.WithLabelValues("request_log"))
	if _, err := f.Store.Pool.Exec(ctx, "ALTER TABLE api_request_logs RENAME TO api_request_logs_away"); err != nil {
		t.Fatal(err)
	}
	// Should the test stop early: put it back before the recorder's Close,
	// which would otherwise retry for ever.
	t.Cleanup(func() {
		f.Store.Pool.Exec(ctx, "ALTER TABLE IF EXISTS api_request_logs_away RENAME TO api_request_logs")
	})
	sent := map[string]bool{}
	for i := range 300 {
		req := httptest.NewRequest("GET", "/api/v1/key", nil)
		req.Header.Set("Authorization", "Bearer "+full)
		r := f.Serve(req)
		if r.Status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, r.Status, r.Body)
		}
		sent[r.Header.Get("X-Request-Id")] = true
	}
	waitFor(t, func() bool { return failures() >= 3 }) // a first write and two retries failed
	if _, err := f.Store.Pool.Exec(ctx, "ALTER TABLE api_request_logs_away RENAME TO api_request_logs"); err != nil {
		t.Fatal(err)
	}
	var logged []string
	waitFor(t, func() bool {
		logged = nil
		rows, err := f.Store.Pool.Query(ctx, "SELECT request_id FROM api_request_logs WHERE key_id = $1", k.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			rows.Scan(&id)
			logged = append(logged, id)
		}
		return len(logged) >= len(sent)
	})
	for _, id := range logged {
		if !sent[id] {
			t.Fatalf("a row that was not sent, or twice: %s", id)
		}
		delete(sent, id)
	}
	if len(sent) != 0 || metricValue(f.App.Metrics.Dropped.WithLabelValues("request_log")) != dropped {
		t.Fatalf("%d rows missing, %v dropped", len(sent), metricValue(f.App.Metrics.Dropped.WithLabelValues("request_log"))-dropped)
	}
	t.Logf("300 rows written after %v failed writes", failures())
}
