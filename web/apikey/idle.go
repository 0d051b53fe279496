package apikey

import (
	"context"
	"errors"
	"time"

	"keyward/db"
	"keyward/web/audit"
)

// IdleActor is who the idle-key job's events name: the system itself.
var IdleActor = audit.Actor{Type: audit.ActorSystem, ID: "idle-key-policy"}

// DisableIdleKeys disables, in every organisation whose policy says so,
// each active key unused (or, never used, made) more than the policy's
// days before now. Each key is disabled in a transaction of its own, which
// checks it again under lock, records api_key.disabled by the system with
// the reason and tells every instance's cache. It returns how many keys
// it disabled; a failure of one key does not stop the others.
func DisableIdleKeys(ctx context.Context, store *db.Store, keys *audit.Keys, now time.Time) (int, error) {
	policies, err := store.ListIdlePolicies(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	var failed []error
	for _, p := range policies {
		before := now.AddDate(0, 0, -int(p.IdleDisableDays))
		ids, err := store.ListIdleAPIKeys(ctx, db.ListIdleAPIKeysParams{TenantID: p.TenantID, Now: now, Before: before})
		if err != nil {
			failed = append(failed, err)
			continue
		}
		for _, id := range ids {
			done := false
			err := store.InTx(ctx, func(q *db.Queries) error {
				k, err := lockKey(ctx, q, p.TenantID, id)
				if errors.Is(err, ErrRevoked) {
					return nil
				} else if err != nil {
					return err
				}
				key := keyOf(k)
				if key.Status(now) != StatusActive || !IdleSince(key).Before(before) {
					return nil // used, or changed, since it was listed
				}
				if err := q.SetAPIKeyDisabled(ctx, db.SetAPIKeyDisabledParams{TenantID: p.TenantID, ID: k.ID, DisabledAt: &now}); err != nil {
					return err
				}
				last := "never"
				if k.LastUsedAt != nil {
					last = k.LastUsedAt.UTC().Format(time.RFC3339)
				}
				done = true
				return record(ctx, q, keys, now, IdleActor, "api_key.disabled", k, map[string]any{
					"disabled": change{From: false, To: true}, "reason": "idle", "idle_days": p.IdleDisableDays, "last_used_at": last,
				})
			})
			if err != nil {
				failed = append(failed, err)
			} else if done {
				n++
			}
		}
	}
	return n, errors.Join(failed...)
}
