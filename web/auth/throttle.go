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

// Two ways to run an attempt under the throttle.
//
// attempt is for checks that cost nothing much (a TOTP code, a recovery
// code's HMAC): one transaction takes an advisory lock on each throttle key
// (in a fixed order, so two attempts cannot deadlock), refuses with an
// errs.Throttled error if any key is locked, and runs fn, which counts a
// failure with recordFailure. Parallel attempts on one user therefore run
// one after another, and each sees the failures counted before it.
//
// A password check runs argon2id, tens of milliseconds of CPU, and must
// hold no pooled connection meanwhile: a flood of sign-ins would otherwise
// hold the whole pool while it hashes and starve every other request. So
// it runs in three steps (PasswordStep and ChangePassword):
//
//  1. begin, one short transaction under the same advisory locks: refuse
//     if a key is locked (a locked account or IP costs no hashing), then
//     count a failure on every key now, before the outcome is known, and
//     read what the check needs. Commit.
//  2. Hash, with no connection, under the HashLimit.
//  3. settle, a second short transaction: audit a failure (it was counted
//     already), or, for a right password or one never checked (the client
//     left while in line), forgive the failure counted in step 1, under
//     the advisory locks again.
//
// Counting first is what keeps the guarantee of the single transaction:
// the check and the count happen together, under the key's lock, so
// parallel guesses are each judged against a count that includes every
// guess that passed before them, finished or not. Of 30 parallel wrong
// passwords for one account, the sixth to pass step 1 sets the lock and
// the rest are refused, as they were when the whole attempt held the
// lock. A process that dies between the steps leaves the failure counted:
// the throttle fails closed, and the count decays with its hourly window.

// attempt runs fn in one transaction under the advisory locks of keys,
// after refusing with an errs.Throttled error that starts with what if
// any key is locked.
func (s *Service) attempt(ctx context.Context, what string, keys []string, fn func(q *db.Queries, now time.Time) error) error {
	return s.keys.hold(ctx, keys, true, func() error {
		return s.Store.InTx(ctx, func(q *db.Queries) error {
			now, err := s.lockKeys(ctx, q, what, keys)
			if err != nil {
				return err
			}
			return fn(q, now)
		})
	})
}

// throttleKey is a throttle key and its policy.
type throttleKey struct {
	key    string
	policy lockPolicy
}

func keyNames(keys []throttleKey) []string {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.key
	}
	return names
}

// begin is step 1 of a password attempt (see above): under the advisory
// locks of keys it refuses a locked key, counts a failure on each key, and
// runs read. It commits before anything is hashed.
func (s *Service) begin(ctx context.Context, what string, keys []throttleKey, read func(q *db.Queries) error) error {
	return s.keys.hold(ctx, keyNames(keys), true, func() error {
		return s.Store.InTx(ctx, func(q *db.Queries) error {
			now, err := s.lockKeys(ctx, q, what, keyNames(keys))
			if err != nil {
				return err
			}
			for _, k := range keys {
				if err := recordFailure(ctx, q, now, k.key, k.policy); err != nil {
					return err
				}
			}
			return read(q)
		})
	})
}

// settle is step 3 of a password attempt: fn in a short transaction, under
// the advisory locks of lock (none for an outcome that only audits). It
// runs even if the client has gone, so that what was checked is recorded.
func (s *Service) settle(ctx context.Context, lock []throttleKey, fn func(q *db.Queries, now time.Time) error) error {
	ctx = context.WithoutCancel(ctx)
	names := keyNames(lock)
	slices.Sort(names)
	return s.keys.hold(ctx, names, false, func() error {
		return s.Store.InTx(ctx, func(q *db.Queries) error {
			for _, k := range names {
				if err := q.LockThrottleKey(ctx, k); err != nil {
					return err
				}
			}
			return fn(q, s.Now())
		})
	})
}

// forgive takes back the failure begin counted on k for an attempt that
// was right, or never checked. A lock that count no longer justifies is
// lifted: no failure counted before this attempt had locked the key (the
// attempt passed the check), so such a lock can only come from this
// attempt's count or from attempts counted after it, which without this
// one stay under the policy's free failures. Call it under k's advisory
// lock.
func forgive(ctx context.Context, q *db.Queries, k throttleKey) error {
	t, err := q.UndoThrottleFailure(ctx, k.key)
	if errors.Is(err, db.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if t.LockedUntil != nil && k.policy.lockFor(t.Failures) == 0 {
		return q.LockThrottle(ctx, db.LockThrottleParams{Key: k.key})
	}
	return nil
}

// lockKeys takes the advisory lock of each key, in a fixed order, and
// refuses with an errs.Throttled error that starts with what if any key
// is locked. It returns the attempt's time.
func (s *Service) lockKeys(ctx context.Context, q *db.Queries, what string, keys []string) (time.Time, error) {
	keys = slices.Clone(keys)
	slices.Sort(keys)
	for _, k := range keys {
		if err := q.LockThrottleKey(ctx, k); err != nil {
			return time.Time{}, err
		}
	}
	now := s.Now()
	wait, err := lockedFor(ctx, q, now, keys...)
	if err != nil {
		return time.Time{}, err
	}
	if wait > 0 {
		return time.Time{}, errs.Throttle(what, wait)
	}
	return now, nil
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
	t, err := q.RecordThrottleFailure(ctx, db.RecordThrottleFailureParams{Key: key, Now: now})
	if err != nil {
		return err
	}
	if d := p.lockFor(t.Failures); d > 0 {
		until := now.Add(d)
		return q.LockThrottle(ctx, db.LockThrottleParams{Key: key, LockedUntil: &until})
	}
	return nil
}
