package ratelimit_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"keyward/web/metrics"
	"keyward/web/ratelimit"
	"keyward/web/ratelimit/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Run(m)) }

// Every limit here is per hour, so no request is refilled while a test runs,
// however slow the machine: the assertions are on decisions and counts.
var fivePerHour = ratelimit.Limit{Requests: 5, Window: time.Hour}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newClient returns a go-redis client of its own on the database at u.
func newClient(t *testing.T, u string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

func newRedis(t *testing.T) ratelimit.Limiter {
	t.Helper()
	return ratelimit.NewRedis(newClient(t, redistest.URL(t)), quietLog(), metrics.New())
}

// limiters runs f against each limiter, each on fresh state.
func limiters(t *testing.T, f func(t *testing.T, lim ratelimit.Limiter)) {
	t.Run("Memory", func(t *testing.T) {
		t.Parallel()
		f(t, ratelimit.NewMemory())
	})
	t.Run("Redis", func(t *testing.T) {
		t.Parallel()
		f(t, newRedis(t))
	})
}

// spend makes n requests for id and returns the results.
func spend(lim ratelimit.Limiter, id string, l ratelimit.Limit, n int) []ratelimit.Result {
	out := make([]ratelimit.Result, n)
	for i := range out {
		out[i] = lim.Allow(context.Background(), id, l)
	}
	return out
}

func allowed(rs []ratelimit.Result) int {
	n := 0
	for _, r := range rs {
		if r.Allowed {
			n++
		}
	}
	return n
}

func TestAllowsTheBudgetThenDenies(t *testing.T) {
	limiters(t, func(t *testing.T, lim ratelimit.Limiter) {
		rs := spend(lim, "key-1", fivePerHour, 8)
		if got := allowed(rs); got != 5 {
			t.Fatalf("allowed %d of 8 requests, want 5", got)
		}
		for i, r := range rs {
			if r.Limit != fivePerHour {
				t.Errorf("request %d: Limit = %+v, want %+v", i+1, r.Limit, fivePerHour)
			}
			if i < 5 {
				if !r.Allowed {
					t.Errorf("request %d denied, want allowed", i+1)
				}
				if want := 4 - i; r.Remaining != want {
					t.Errorf("request %d: Remaining = %d, want %d", i+1, r.Remaining, want)
				}
				if r.RetryAfter != 0 {
					t.Errorf("request %d (allowed): RetryAfter = %v, want 0", i+1, r.RetryAfter)
				}
				if r.ResetAfter <= 0 {
					t.Errorf("request %d (allowed): ResetAfter = %v, want > 0", i+1, r.ResetAfter)
				}
				continue
			}
			if r.Allowed {
				t.Errorf("request %d allowed, want denied", i+1)
			}
			if r.Remaining != 0 {
				t.Errorf("request %d (denied): Remaining = %d, want 0", i+1, r.Remaining)
			}
			if r.RetryAfter <= 0 {
				t.Errorf("request %d (denied): RetryAfter = %v, want > 0", i+1, r.RetryAfter)
			}
			if r.ResetAfter <= 0 {
				t.Errorf("request %d (denied): ResetAfter = %v, want > 0", i+1, r.ResetAfter)
			}
		}
	})
}

func TestSeparateIDsHaveSeparateBudgets(t *testing.T) {
	limiters(t, func(t *testing.T, lim ratelimit.Limiter) {
		if got := allowed(spend(lim, "key-a", fivePerHour, 8)); got != 5 {
			t.Fatalf("key-a: allowed %d of 8, want 5", got)
		}
		rs := spend(lim, "key-b", fivePerHour, 8)
		if got := allowed(rs); got != 5 {
			t.Fatalf("key-b after key-a spent its budget: allowed %d of 8, want 5", got)
		}
		if rs[0].Remaining != 4 {
			t.Errorf("key-b's first request: Remaining = %d, want 4", rs[0].Remaining)
		}
	})
}

func TestChangedLimitStartsAFreshBucket(t *testing.T) {
	limiters(t, func(t *testing.T, lim ratelimit.Limiter) {
		if got := allowed(spend(lim, "key-1", fivePerHour, 6)); got != 5 {
			t.Fatalf("allowed %d of 6 under the old limit, want 5", got)
		}
		raised := ratelimit.Limit{Requests: 10, Window: time.Hour}
		rs := spend(lim, "key-1", raised, 12)
		if got := allowed(rs); got != 10 {
			t.Fatalf("allowed %d of 12 after the limit changed to 10/hour, want 10 (a fresh bucket)", got)
		}
		if rs[0].Remaining != 9 || rs[0].Limit != raised {
			t.Errorf("first request under the new limit: Remaining %d, Limit %+v; want 9, %+v", rs[0].Remaining, rs[0].Limit, raised)
		}
	})
}

// Two API instances keep one budget per key only through Redis: each
// in-process limiter has a whole budget of its own.
func TestInstancesShareOneBudgetOnlyThroughRedis(t *testing.T) {
	tenPerHour := ratelimit.Limit{Requests: 10, Window: time.Hour}
	alternate := func(a, b ratelimit.Limiter) int {
		n := 0
		for i := 0; i < 15; i++ {
			for _, lim := range []ratelimit.Limiter{a, b} {
				if lim.Allow(context.Background(), "key-1", tenPerHour).Allowed {
					n++
				}
			}
		}
		return n
	}
	t.Run("Redis", func(t *testing.T) {
		t.Parallel()
		u := redistest.URL(t)
		a := ratelimit.NewRedis(newClient(t, u), quietLog(), metrics.New())
		b := ratelimit.NewRedis(newClient(t, u), quietLog(), metrics.New())
		if got := alternate(a, b); got != 10 {
			t.Errorf("two Redis limiters on one server allowed %d of 30 requests in total, want 10", got)
		}
	})
	t.Run("Memory", func(t *testing.T) {
		t.Parallel()
		if got := alternate(ratelimit.NewMemory(), ratelimit.NewMemory()); got != 20 {
			t.Errorf("two Memory limiters allowed %d of 30 requests in total, want 20 (10 each)", got)
		}
	})
}

// storeErrors reads keyward_ratelimit_store_errors_total. (It is what
// client_golang's testutil.ToFloat64 does, without that package's
// dependencies, which go.sum does not list.)
func storeErrors(t *testing.T, set *metrics.Set) float64 {
	t.Helper()
	var m dto.Metric
	if err := set.RateLimitErrors.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestRedisDownFallsBackToMemory(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens here now: every dial is refused
	rdb := redis.NewClient(&redis.Options{
		Addr:               addr,
		DialTimeout:        200 * time.Millisecond,
		DialerRetries:      1, // go-redis's default retries a refused dial 5 times, 100 ms apart
		DialerRetryTimeout: time.Millisecond,
		MaxRetries:         -1,
	})
	t.Cleanup(func() { rdb.Close() })
	set := metrics.New()
	lim := ratelimit.NewRedis(rdb, quietLog(), set)

	before := storeErrors(t, set)
	rs := spend(lim, "key-1", fivePerHour, 8)
	if got := allowed(rs); got != 5 {
		t.Errorf("with Redis down, allowed %d of 8, want 5 (the in-process limit still holds)", got)
	}
	for i, want := range []int{4, 3, 2, 1, 0} {
		if rs[i].Remaining != want {
			t.Errorf("request %d: Remaining = %d, want %d", i+1, rs[i].Remaining, want)
		}
	}
	if rs[7].RetryAfter <= 0 {
		t.Errorf("denied request: RetryAfter = %v, want > 0", rs[7].RetryAfter)
	}
	// The first failure counts and parks Redis for a second; the other
	// seven requests do not wait for it.
	after := storeErrors(t, set)
	if got := after - before; got != 1 {
		t.Errorf("keyward_ratelimit_store_errors_total rose by %v, want 1 (then Redis is left alone for a second)", got)
	}
}

// The helper hands parallel tests databases of their own.
func TestRedistestIsolatesTests(t *testing.T) {
	for i := 0; i < 20; i++ {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			c := newClient(t, redistest.URL(t))
			ctx := context.Background()
			n, err := c.DBSize(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Fatalf("fresh database holds %d keys, want 0", n)
			}
			if err := c.Set(ctx, "mine", i, 0).Err(); err != nil {
				t.Fatal(err)
			}
			if got, err := c.Get(ctx, "mine").Int(); err != nil || got != i {
				t.Fatalf("read back %d, %v; want %d", got, err, i)
			}
		})
	}
}
