package apikey

import (
	"context"
	"errors"
	"time"

	"keyward/db"
	"keyward/web/audit"
)

// This file records a key's expiry in the audit trail: api_key.expiring
// 14 days and 1 day before it, and api_key.expired once it has passed.
// The verifier refuses an expired key by itself, at request time, from
// the expiry it holds; nothing here changes what it does.
//
// Each key's progress is its expiry_stage column (stage* below). The job
// claims a stage with a conditional UPDATE in the transaction that writes
// the stage's event, so each event is written once however many instances
// run the job, or runs overlap. Setting or changing a key's expiry sets
// the stage to those whose time has already come (ExpiryStageAt): a
// notice whose window began before the key was made, or its expiry last
// changed, is never sent, as the person who chose the date knows it.

// ExpiryActor is who the expiry job's events name: the system itself.
var ExpiryActor = audit.Actor{Type: audit.ActorSystem, ID: "key-expiry"}

// The expiry stages of a key, as api_keys.expiry_stage holds them.
const (
	stageNone     int16 = 0
	stageNotice14 int16 = 1 // api_key.expiring, 14 days ahead, handled
	stageNotice1  int16 = 2 // api_key.expiring, 1 day ahead, handled
	stageExpired  int16 = 3 // api_key.expired recorded
)

// expiryPageSize is how many keys RecordExpiries reads at a time.
const expiryPageSize = 500

// The notices' lead times.
const (
	NoticeEarly = 14 * 24 * time.Hour
	NoticeLate  = 24 * time.Hour
)

// ExpiryStageAt is the stage a key expiring at expires has reached at now:
// the notices whose window has begun, or, past it, the expiry. A key that
// never expires is at stageNone.
func ExpiryStageAt(expires *time.Time, now time.Time) int16 {
	switch {
	case expires == nil || expires.Sub(now) > NoticeEarly:
		return stageNone
	case !expires.After(now):
		return stageExpired
	case expires.Sub(now) > NoticeLate:
		return stageNotice14
	}
	return stageNotice1
}

// setStage is the stage a key gets when its expiry is set to expires at
// now, by its creation or an edit: the notices already due are skipped,
// but the expiry itself is always recorded when it comes (an edit may
// keep a past expiry only by not changing it, which keeps the stage).
func setStage(expires *time.Time, now time.Time) int16 {
	return min(ExpiryStageAt(expires, now), stageNotice1)
}

// DaysLeft is how many days are left until expires, counting a part of a
// day as a day: 14 from just under 14 days ahead, 1 in the last day.
func DaysLeft(expires, now time.Time) int {
	d := expires.Sub(now)
	if d <= 0 {
		return 0
	}
	return int((d + 24*time.Hour - 1) / (24 * time.Hour))
}

// Expiries counts what RecordExpiries wrote.
type Expiries struct {
	Notices, Expired int
}

// RecordExpiries writes, for the live keys of every organisation whose
// expiry stage is due at now, the event of the stage: api_key.expired once
// the expiry has passed, api_key.expiring within a day or within 14 days
// of it. A key that reached a later stage before the job saw an earlier one
// (the job did not run for a while) gets only the later event: a 14-day
// notice with a day left would mislead. Disabled keys get no notices (they
// serve nobody; one enabled again gets the notice then due), but their
// expiry is recorded. Revoked keys get nothing. Each key is claimed and
// recorded in a transaction of its own; a failure of one does not stop
// the others.
func RecordExpiries(ctx context.Context, store *db.Store, keys *audit.Keys, now time.Time) (Expiries, error) {
	var out Expiries
	var failed []error
	after, afterID := time.Time{}, "00000000-0000-0000-0000-000000000000"
	for {
		rows, err := store.ListAPIKeysExpiryDue(ctx, db.ListAPIKeysExpiryDueParams{
			Now: now, DayAhead: now.Add(NoticeLate), FortnightAhead: now.Add(NoticeEarly),
			AfterExpires: after, AfterID: afterID, Lim: expiryPageSize,
		})
		if err != nil {
			return out, errors.Join(append(failed, err)...)
		}
		for _, r := range rows {
			done, err := RecordExpiryStage(ctx, store, keys, r.TenantID, r.ID, r.ExpiresAt, r.Due, now)
			switch {
			case err != nil:
				failed = append(failed, err)
			case done && r.Due == stageExpired:
				out.Expired++
			case done:
				out.Notices++
			}
		}
		if len(rows) < expiryPageSize {
			return out, errors.Join(failed...)
		}
		after, afterID = rows[len(rows)-1].ExpiresAt, rows[len(rows)-1].ID
	}
}

// RecordExpiryStage claims stage for the key of the tenant that expires at
// expires and writes its event, in one transaction. It reports false,
// writing nothing, when the stage was recorded already (by another run or
// instance), or the key was revoked, disabled (for a notice) or given
// another expiry since it was listed.
func RecordExpiryStage(ctx context.Context, store *db.Store, keys *audit.Keys, tenantID int64, id string, expires time.Time, stage int16, now time.Time) (bool, error) {
	done := false
	err := store.InTx(ctx, func(q *db.Queries) error {
		n, err := q.ClaimAPIKeyExpiryStage(ctx, db.ClaimAPIKeyExpiryStageParams{Stage: stage, TenantID: tenantID, ID: id, ExpiresAt: expires})
		if err != nil || n == 0 {
			return err
		}
		done = true
		at := expires.UTC().Format(time.RFC3339)
		action, diff := "api_key.expired", map[string]any{"expires_at": at}
		if stage != stageExpired {
			notice := "14_days"
			if stage == stageNotice1 {
				notice = "1_day"
			}
			action, diff = "api_key.expiring", map[string]any{"expires_at": at, "notice": notice, "days_left": DaysLeft(expires, now)}
		}
		// The key itself is unchanged for the verifier, which refuses it
		// past its expiry by itself: no cache notification.
		ev := ExpiryActor.Event(action, "api_key", id, diff)
		ev.TenantID = &tenantID
		return audit.Record(ctx, q, keys, now, ev)
	})
	if err != nil {
		return false, err
	}
	return done, nil
}
