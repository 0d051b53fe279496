package auth

import (
	"context"
	"slices"
	"sync"
	"time"

	"keyward/web/errs"
)

// keyLocks serialise, inside this process, the attempts on one throttle
// key before they borrow a database connection. The advisory lock in
// Postgres still orders attempts across instances; this one keeps the
// attempts of one instance from each holding a pooled connection while
// they wait their turn on the same account, which let a flood aimed at
// one account take the whole pool. The zero value is ready to use.
type keyLocks struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	turn    chan struct{} // holds a token while someone has the key
	waiters int           // holders and waiters
}

// maxKeyWaiters bounds the attempts one key may have in line in this
// process; past it an attempt is refused at once, with Retry-After, rather
// than queue without end.
const maxKeyWaiters = 32

// errKeyBusy: too many attempts on one account or address at once.
var errKeyBusy = &errs.Error{Kind: errs.Unavailable, Code: errs.CodeUnavailable, RetryAfter: time.Second,
	Message: "Too many sign-in attempts for this account are being checked right now: try again in a second."}

// hold runs fn holding every key in keys, taken in sorted order so two
// attempts cannot deadlock. A capped caller is refused at once when a key
// already has maxKeyWaiters in line; the step that records an attempt's
// outcome is not capped, so an attempt that was checked is always settled.
func (l *keyLocks) hold(ctx context.Context, keys []string, capped bool, fn func() error) error {
	keys = slices.Clone(keys)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	var held []*keyLock
	release := func() {
		for _, k := range held {
			<-k.turn
		}
		l.mu.Lock()
		for _, name := range keys {
			if k := l.locks[name]; k != nil {
				if k.waiters--; k.waiters == 0 {
					delete(l.locks, name)
				}
			}
		}
		l.mu.Unlock()
	}
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[string]*keyLock{}
	}
	if capped {
		for _, name := range keys {
			if k := l.locks[name]; k != nil && k.waiters >= maxKeyWaiters {
				l.mu.Unlock()
				return errKeyBusy
			}
		}
	}
	for _, name := range keys {
		k := l.locks[name]
		if k == nil {
			k = &keyLock{turn: make(chan struct{}, 1)}
			l.locks[name] = k
		}
		k.waiters++
	}
	waitFor := make([]*keyLock, len(keys))
	for i, name := range keys {
		waitFor[i] = l.locks[name]
	}
	l.mu.Unlock()
	for _, k := range waitFor {
		select {
		case k.turn <- struct{}{}:
			held = append(held, k)
		case <-ctx.Done():
			release()
			return ctx.Err()
		}
	}
	defer release()
	return fn()
}
