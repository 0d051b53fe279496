package auth

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"keyward/web/errs"
)

// HashLimit bounds the argon2id work of a process. Each hash takes one
// core and 19 MiB for tens of milliseconds, so only so many run at once;
// only so many more attempts may wait for a turn, and any beyond that are
// refused at once (errs.Unavailable, ErrBusy: 503 with Retry-After)
// instead of piling up. Every password check and hash on a request path goes
// through the Service's limit. The zero value is not usable: call
// NewHashLimit.
type HashLimit struct {
	run     chan struct{} // one token per running hash
	line    chan struct{} // one token per admitted attempt: running, waiting, or in its transactions
	waiting atomic.Int64  // attempts blocked in turn.hash
	// RetryAfter is what a refused attempt is told: 1 s unless changed,
	// about what a full line of DefaultHashLimit takes to drain.
	RetryAfter time.Duration
}

// NewHashLimit allows concurrent hashes at once, with waiting more
// attempts in line (both at least 1 and 0).
func NewHashLimit(concurrent, waiting int) *HashLimit {
	concurrent, waiting = max(concurrent, 1), max(waiting, 0)
	return &HashLimit{run: make(chan struct{}, concurrent), line: make(chan struct{}, concurrent+waiting), RetryAfter: time.Second}
}

// DefaultHashLimit is the process-wide limit of Services that name none:
// one hash for every two CPUs Go may use (GOMAXPROCS), at least one, and
// 32 attempts in line per hash. Hashes never take every CPU: with all of
// them busy hashing, each database round trip of every other request
// (API-key lookups included) waits for a CPU to come free, and holds its
// pooled connection that much longer. With hashes of 20 to 40 ms, a full
// line drains in about a second.
var DefaultHashLimit = sync.OnceValue(func() *HashLimit {
	n := max(1, runtime.GOMAXPROCS(0)/2)
	return NewHashLimit(n, 32*n)
})

// ErrBusy is the cause of every refusal for a full line.
var ErrBusy = errors.New("too many password checks waiting")

// Do waits for a turn and runs fn, which hashes, in it. It returns an
// errs.Unavailable error (cause ErrBusy) when the line is full, or ctx's
// error when ctx ends first.
func (l *HashLimit) Do(ctx context.Context, fn func()) error {
	t, err := l.enter()
	if err != nil {
		return err
	}
	defer t.leave()
	return t.hash(ctx, fn)
}

// Running is how many hashes run now.
func (l *HashLimit) Running() int { return len(l.run) }

// Waiting is how many attempts wait for a turn to hash now.
func (l *HashLimit) Waiting() int { return int(l.waiting.Load()) }

// turn is an attempt's place in line, taken before its first transaction
// so that a full line costs no database work at all.
type turn struct{ l *HashLimit }

// enter takes a place in line, or refuses at once when the line is full.
func (l *HashLimit) enter() (turn, error) {
	select {
	case l.line <- struct{}{}:
		return turn{l}, nil
	default:
		return turn{}, &errs.Error{Kind: errs.Unavailable, RetryAfter: l.RetryAfter, Err: ErrBusy,
			Message: fmt.Sprintf("Keyward is busy checking other passwords: try again in %s.", errs.Wait(l.RetryAfter))}
	}
}

// hash waits until fewer than the limit's hashes run, then runs fn. The
// caller must hold no database connection: waiting and hashing take no
// part of the pool.
func (t turn) hash(ctx context.Context, fn func()) error {
	t.l.waiting.Add(1)
	select {
	case t.l.run <- struct{}{}:
		t.l.waiting.Add(-1)
	case <-ctx.Done():
		t.l.waiting.Add(-1)
		return ctx.Err()
	}
	defer func() { <-t.l.run }()
	fn()
	return nil
}

// leave gives the place in line back.
func (t turn) leave() { <-t.l.line }
