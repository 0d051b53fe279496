// Package ratelimit decides whether a key may make one more request. The
// in-process limiter (golang.org/x/time/rate token buckets) serves one
// instance; with Redis, github.com/go-redis/redis_rate (GCRA) keeps one
// budget for every instance. It must not import echo.
package ratelimit

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"keyward/web/metrics"
)

// Limit is Requests per Window, with a burst of the whole budget: a fresh
// key may spend its window's requests at once, then refills evenly.
type Limit struct {
	Requests int
	Window   time.Duration
}

// sane keeps a limit usable: at least one request per second-long window.
// Configuration validation already refuses less; this guards the division.
func (l Limit) sane() Limit {
	return Limit{Requests: max(l.Requests, 1), Window: max(l.Window, time.Second)}
}

// Result is one decision.
type Result struct {
	Allowed   bool
	Limit     Limit
	Remaining int
	// RetryAfter is how long until one more request would be allowed (0 if
	// allowed).
	RetryAfter time.Duration
	// ResetAfter is how long until the budget is full again.
	ResetAfter time.Duration
}

// Limiter takes one request from the budget of id.
type Limiter interface {
	Allow(ctx context.Context, id string, l Limit) Result
}

// Memory keeps token buckets in this process. Buckets idle for longer
// than their window are full again, so they are swept. The zero value is
// ready to use.
type Memory struct {
	// MaxBuckets, if set, bounds the ids tracked: past it, an arbitrary
	// bucket is forgotten (its id starts afresh). For limiters keyed by
	// something a client chooses, such as an address.
	MaxBuckets int

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
	now     func() time.Time
}

type bucket struct {
	lim  *rate.Limiter
	l    Limit
	used time.Time
}

// NewMemory returns an empty in-process limiter.
func NewMemory() *Memory { return &Memory{buckets: map[string]*bucket{}, now: time.Now} }

func (m *Memory) clock() time.Time {
	if m.now == nil {
		return time.Now()
	}
	return m.now()
}

// Allow implements Limiter.
func (m *Memory) Allow(_ context.Context, id string, l Limit) Result {
	l = l.sane()
	now := m.clock()
	perSec := float64(l.Requests) / l.Window.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.buckets == nil {
		m.buckets = map[string]*bucket{}
	}
	b := m.buckets[id]
	if b == nil || b.l != l { // a changed limit starts a fresh bucket
		if b == nil && m.MaxBuckets > 0 && len(m.buckets) >= m.MaxBuckets {
			m.sweep(now)
			for k := range m.buckets {
				if len(m.buckets) < m.MaxBuckets {
					break
				}
				delete(m.buckets, k)
			}
		}
		b = &bucket{lim: rate.NewLimiter(rate.Limit(perSec), l.Requests), l: l}
		m.buckets[id] = b
	}
	b.used = now
	allowed := b.lim.AllowN(now, 1)
	tokens := b.lim.TokensAt(now)
	res := Result{Allowed: allowed, Limit: l, Remaining: max(int(tokens), 0)}
	res.ResetAfter = secs((float64(l.Requests) - tokens) / perSec)
	if !allowed {
		res.RetryAfter = secs((1 - tokens) / perSec)
	}
	if now.Sub(m.swept) > time.Minute {
		m.sweep(now)
	}
	return res
}

// Exhausted reports, without spending anything, whether id has no request
// left under l, and if so how long until it has one. A limiter that charges
// only some outcomes asks first and spends with Allow afterwards.
func (m *Memory) Exhausted(id string, l Limit) (time.Duration, bool) {
	l = l.sane()
	now := m.clock()
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.buckets[id]
	if b == nil || b.l != l {
		return 0, false
	}
	tokens := b.lim.TokensAt(now)
	if tokens >= 1 {
		return 0, false
	}
	return secs((1 - tokens) / (float64(l.Requests) / l.Window.Seconds())), true
}

func (m *Memory) sweep(now time.Time) {
	m.swept = now
	for id, b := range m.buckets {
		if now.Sub(b.used) > b.l.Window {
			delete(m.buckets, id)
		}
	}
}

func secs(s float64) time.Duration {
	if s <= 0 {
		return 0
	}
	return time.Duration(s * float64(time.Second))
}

// Redis shares budgets through Redis. If Redis fails, the request is
// decided by an in-process limiter instead and the failure is counted: a
// Redis outage neither stops the API nor lifts every limit. After a
// failure Redis is left alone for a second, so an outage does not add a
// timeout to every request, and the failure is logged at most every ten
// seconds.
type Redis struct {
	lim      *redis_rate.Limiter
	fallback *Memory
	log      *slog.Logger
	// Timeout bounds one Redis decision (default 250 ms).
	Timeout time.Duration

	downUntil atomic.Int64 // unix nanoseconds
	loggedAt  atomic.Int64
	m         *metrics.Set
}

// NewRedis returns a limiter on the Redis client rdb.
func NewRedis(rdb *redis.Client, log *slog.Logger, m *metrics.Set) *Redis {
	return &Redis{lim: redis_rate.NewLimiter(rdb), fallback: NewMemory(), log: log, Timeout: 250 * time.Millisecond, m: m}
}

// Allow implements Limiter.
func (r *Redis) Allow(ctx context.Context, id string, l Limit) Result {
	l = l.sane()
	now := time.Now()
	if now.UnixNano() < r.downUntil.Load() {
		return r.fallback.Allow(ctx, id, l)
	}
	// The limit is part of the Redis key: a changed limit starts a fresh
	// budget, as it does in memory.
	key := "keyward:rl:" + id + ":" + strconv.Itoa(l.Requests) + "/" + strconv.FormatInt(int64(l.Window/time.Second), 10)
	rctx, cancel := context.WithTimeout(ctx, r.Timeout)
	res, err := r.lim.Allow(rctx, key, redis_rate.Limit{Rate: l.Requests, Burst: l.Requests, Period: l.Window})
	cancel()
	if err != nil {
		if ctx.Err() == nil { // not the client going away
			r.m.RateLimitErrors.Inc()
			r.downUntil.Store(now.Add(time.Second).UnixNano())
			if last := r.loggedAt.Load(); now.UnixNano()-last > int64(10*time.Second) && r.loggedAt.CompareAndSwap(last, now.UnixNano()) {
				r.log.Warn("redis rate limit failed; deciding in process for now", "err", err)
			}
		}
		return r.fallback.Allow(ctx, id, l)
	}
	out := Result{Allowed: res.Allowed > 0, Limit: l, Remaining: res.Remaining, ResetAfter: max(res.ResetAfter, 0)}
	if !out.Allowed {
		out.RetryAfter = max(res.RetryAfter, 0)
	}
	return out
}
