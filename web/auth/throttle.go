package auth

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"time"

	"keyward/db"
	"keyward/web/errs"
)

// lockPolicy: the first free failures in an hour cost nothing; each one after
// that locks the key for twice as long as the last, from 1 s up to maxLock.
// With 5 free failures and a 15-minute cap, an attacker gets fewer than 20
// guesses an hour per account, well under the ceiling of 100.
type lockPolicy struct {
	free    int32
	maxLock time.Duration
}

var (
	accountPolicy = lockPolicy{free: 5, maxLock: 15 * time.Minute}
	// Many people can share an IP behind a NAT, so it gets more room.
	ipPolicy  = lockPolicy{free: 20, maxLock: 15 * time.Minute}
	mfaPolicy = lockPolicy{free: 5, maxLock: 15 * time.Minute}
)

func (p lockPolicy) lockFor(failures int32) time.Duration {
	over := failures - p.free
	if over <= 0 {
		return 0
	}
	d := time.Duration(math.Pow(2, float64(min(over-1, 20)))) * time.Second
	return min(d, p.maxLock)
}

func loginEmailKey(email string) string { return "login:email:" + email }

// loginIPKey counts IPv6 clients by their /64, which one host can rotate
// through freely, and IPv4 clients by their address.
func loginIPKey(ip string) string {
	if addr, err := netip.ParseAddr(ip); err == nil && addr.Is6() && !addr.Is4In6() {
		p, _ := addr.Prefix(64)
		return "login:ip:" + p.String()
	}
	return "login:ip:" + ip
}
func mfaKey(userID int64) string { return fmt.Sprintf("mfa:user:%d", userID) }

// attempt runs fn in one transaction that first takes an advisory lock on
// each throttle key (in a fixed order, so two attempts cannot deadlock) and
// then refuses with an errs.Throttled error that starts with what if any
// key is locked. Parallel attempts on one account, IP or user therefore run
// one after another, and each sees the failures counted before it.
func (s *Service) attempt(ctx context.Context, what string, keys []string, fn func(q *db.Queries, now time.Time) error) error {
	keys = slices.Clone(keys)
	slices.Sort(keys)
	return s.Store.InTx(ctx, func(q *db.Queries) error {
		for _, k := range keys {
			if err := q.LockThrottleKey(ctx, k); err != nil {
				return err
			}
		}
		now := s.Now()
		if wait, err := lockedFor(ctx, q, now, keys...); err != nil || wait > 0 {
			if err != nil {
				return err
			}
			return errs.Throttle(what, wait)
		}
		return fn(q, now)
	})
}

// lockedFor says how long the longest lock of keys lasts from now.
func lockedFor(ctx context.Context, q *db.Queries, now time.Time, keys ...string) (time.Duration, error) {
	var wait time.Duration
	for _, k := range keys {
		t, err := q.GetThrottle(ctx, k)
		if errors.Is(err, db.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if t.LockedUntil != nil && t.LockedUntil.After(now) {
			wait = max(wait, t.LockedUntil.Sub(now))
		}
	}
	return wait, nil
}

// recordFailure counts a failure against key and locks it per p.
func recordFailure(ctx context.Context, q *db.Queries, now time.Time, key string, p lockPolicy) error {
	t, err := q.RecordThrottleFailure(ctx, key)
	if err != nil {
		return err
	}
	if d := p.lockFor(t.Failures); d > 0 {
		until := now.Add(d)
		return q.LockThrottle(ctx, db.LockThrottleParams{Key: key, LockedUntil: &until})
	}
	return nil
}
