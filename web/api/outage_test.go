package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	neturl "net/url"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"keyward/db"
	"keyward/db/dbtest"
	"keyward/web/apikey"
	"keyward/web/audit"
	"keyward/web/webtest"
)

// TestDatabaseOutage: on a cluster of the test's own, a fast restart and a
// 3 s stop. A key already cached keeps answering 200 throughout; a key the
// instance never saw gets 503 SERVICE_UNAVAILABLE with Retry-After while
// the database is down, never a 500 or a 429; and once the database is
// back both keys work and the listener has caught up.
func TestDatabaseOutage(t *testing.T) {
	cluster, url := dbtest.OwnCluster(t)
	f := newFixture(t, webtest.Options{DatabaseURL: url})
	_, cached := f.key(apikey.Config{})
	_, unseen := f.key(apikey.Config{})
	if r := f.API(http.MethodGet, "/api/v1/key", cached, ""); r.Status != http.StatusOK {
		t.Fatalf("before the outage: %d %s", r.Status, r.Body)
	}

	// hammer sends requests with the cached key until stop is closed and
	// reports every status that was not 200.
	hammer := func(stop <-chan struct{}) <-chan map[int]int {
		out := make(chan map[int]int, 1)
		go func() {
			bad, sent := map[int]int{}, 0
			for {
				select {
				case <-stop:
					bad[0] = sent // how many were sent, under status 0
					out <- bad
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, f.Server.URL+"/api/v1/key", nil)
				req.Header.Set("Authorization", "Bearer "+cached)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					bad[-1]++
					continue
				}
				res.Body.Close()
				sent++
				if res.StatusCode != http.StatusOK {
					bad[res.StatusCode]++
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
		return out
	}
	ctx := context.Background()

	logged := 1 // requests with a known key, each a request-log row

	stop := make(chan struct{})
	done := hammer(stop)
	if err := cluster.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	bad := <-done
	logged += bad[0]
	if len(bad) != 1 || bad[0] < 10 {
		t.Errorf("during a fast restart the cached key got %v (status: count; 0 = requests sent), want only 200s", bad)
	}

	stop = make(chan struct{})
	done = hammer(stop)
	if err := cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	var downStatuses []int
	var mu sync.Mutex
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		r := f.API(http.MethodGet, "/api/v1/key", unseen, "")
		mu.Lock()
		downStatuses = append(downStatuses, r.Status)
		mu.Unlock()
		if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
			t.Errorf("an uncached key while the database is down: %d (Retry-After %q) %s", r.Status, r.Header.Get("Retry-After"), r.Body)
			break
		}
		var env struct{ Error struct{ Code string } }
		json.Unmarshal([]byte(r.Body), &env)
		if env.Error.Code != "SERVICE_UNAVAILABLE" {
			t.Errorf("an uncached key while the database is down: code %q", env.Error.Code)
			break
		}
	}
	if err := cluster.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	bad = <-done
	logged += bad[0]
	if len(bad) != 1 || bad[0] < 10 {
		t.Errorf("during a 3 s stop the cached key got %v (status: count; 0 = requests sent), want only 200s", bad)
	}
	if len(downStatuses) < 10 {
		t.Errorf("only %d requests with the uncached key were sent during the stop", len(downStatuses))
	}

	waitFor(t, f.App.Verifier.Current)
	if r := f.API(http.MethodGet, "/api/v1/key", unseen, ""); r.Status != http.StatusOK {
		t.Errorf("the uncached key after the outage: %d %s", r.Status, r.Body)
	}
	if r := f.API(http.MethodGet, "/api/v1/key", cached, ""); r.Status != http.StatusOK {
		t.Errorf("the cached key after the outage: %d %s", r.Status, r.Body)
	}
	logged += 2

	// Every request-log row of the outage is written once the database is
	// back: failed writes are retried, not dropped.
	var rows int
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		f.App.Usage.Flush(ctx)
		if err := f.Store.Pool.QueryRow(ctx, `SELECT coalesce(sum(count), 0) FROM api_request_logs`).Scan(&rows); err == nil && rows >= logged {
			break
		}
	}
	if rows != logged {
		t.Errorf("the request log holds %d requests, want the %d sent with a known key", rows, logged)
	}
}

// TestRevokedWhileCutOff: an instance whose database connections are cut
// (its role may not log in, its backends are ended) keeps serving a
// cached key. Another instance revokes the key meanwhile. As soon as the
// first instance can reach the database again, the key is refused there:
// on the first request that reaches it (while cut off, a key read more
// than a second ago is read again) and for good once its listener has
// caught up from changed_at.
func TestRevokedWhileCutOff(t *testing.T) {
	_, url := dbtest.OwnCluster(t)
	ctx := context.Background()
	admin := newFixture(t, webtest.Options{DatabaseURL: url})
	// The first instance connects as a role of its own, so the test can
	// cut it alone.
	if _, err := admin.Store.Pool.Exec(ctx, `CREATE ROLE cut_off LOGIN PASSWORD 'cut-off-password';
		GRANT ALL ON ALL TABLES IN SCHEMA public TO cut_off; GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO cut_off`); err != nil {
		t.Fatal(err)
	}
	cutURL := withUser(t, url, "cut_off", "cut-off-password")
	first := webtest.NewWith(t, webtest.Options{DatabaseURL: cutURL})
	invalidations := func() float64 {
		var m dto.Metric
		first.App.Metrics.Invalidations.Write(&m)
		return m.GetCounter().GetValue()
	}
	before := invalidations()
	k, full := admin.key(apikey.Config{})
	// The new key's notification must reach the first instance before its
	// first request caches the key: arriving later, it would drop the key
	// from the cache, and the cut-off instance would have nothing to serve.
	waitFor(t, func() bool { return invalidations() > before })
	if r := first.API(http.MethodGet, "/api/v1/key", full, ""); r.Status != http.StatusOK {
		t.Fatalf("before the cut: %d %s", r.Status, r.Body)
	}

	if _, err := admin.Store.Pool.Exec(ctx, `ALTER ROLE cut_off NOLOGIN`); err != nil {
		t.Fatal(err)
	}
	// Should the test stop early, let the first instance in again before
	// its Close, whose last flush would otherwise wait for the database.
	t.Cleanup(func() { admin.Store.Pool.Exec(ctx, `ALTER ROLE cut_off LOGIN`) })
	if _, err := admin.Store.Pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'cut_off'`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return !first.App.Verifier.Current() })
	if r := first.API(http.MethodGet, "/api/v1/key", full, ""); r.Status != http.StatusOK {
		t.Fatalf("while cut off, the cached key: %d %s", r.Status, r.Body)
	}
	err := admin.Store.InTx(ctx, func(q *db.Queries) error {
		return apikey.Revoke(ctx, q, admin.App.Audit, admin.Tenant.ID, k.ID, audit.Actor{Type: audit.ActorSystem}, time.Now())
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Store.Pool.Exec(ctx, `ALTER ROLE cut_off LOGIN`); err != nil {
		t.Fatal(err)
	}
	// The first request that reaches the database already sees the
	// revocation: while cut off, a key is served from the cache only for a
	// second after it was last read from the database. Until a request
	// reaches it, the cached answer stands in.
	var r webtest.Response
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if r = first.API(http.MethodGet, "/api/v1/key", full, ""); r.Status != http.StatusOK {
			break
		}
	}
	// Refused (or, for an instant, unavailable): never served again.
	if r.Status != http.StatusUnauthorized && r.Status != http.StatusServiceUnavailable {
		t.Fatalf("after the cut, the revoked key: %d %s", r.Status, r.Body)
	}
	waitFor(t, first.App.Verifier.Current)
	for range 20 {
		if r := first.API(http.MethodGet, "/api/v1/key", full, ""); r.Status != http.StatusUnauthorized {
			t.Fatalf("after catching up, the revoked key: %d %s", r.Status, r.Body)
		}
	}
}

// withUser is url with another role's credentials.
func withUser(t *testing.T, raw, user, password string) string {
	t.Helper()
	u, err := neturl.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.User = neturl.UserPassword(user, password)
	return u.String()
}
