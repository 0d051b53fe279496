package apikey

import (
	"context"
	"errors"
	"fmt"
	"time"

	"keyward/db"
	"keyward/web/errs"
)

// Policy is an organisation's key policy. Zero days mean that part is
// off; the zero Policy enforces nothing.
type Policy struct {
	// MaxLifetimeDays: every new or edited key must expire within this
	// many days.
	MaxLifetimeDays int
	// RequireProdAllowlist: production keys must have an IP allowlist.
	RequireProdAllowlist bool
	// IdleDisableDays: keys unused for this many days are disabled by the
	// idle-key job.
	IdleDisableDays int
	// DefaultExpiryDays: the expiry the create form offers, in days.
	DefaultExpiryDays int
	// LeakAction is what happens to a key reported leaked (leak.go):
	// LeakRevoke (also what "" means) or LeakDisable.
	LeakAction string
}

// What a key reported leaked gets, as the organisation's policy says.
const (
	// LeakRevoke revokes the key at once: the default.
	LeakRevoke = "revoke"
	// LeakDisable disables it, so an admin can look before revoking.
	LeakDisable = "disable"
)

// Leak is the policy's LeakAction, "" read as LeakRevoke.
func (p Policy) Leak() string {
	if p.LeakAction == "" {
		return LeakRevoke
	}
	return p.LeakAction
}

// The policies by the names pages and errors give them.
const (
	PolicyMaxLifetime   = "Maximum key lifetime"
	PolicyProdAllowlist = "IP allowlist required for production keys"
	PolicyIdle          = "Idle keys are disabled"
)

// MaxPolicyDays bounds every number of days a policy takes.
const MaxPolicyDays = 3650

// Check validates a policy as an owner types it, every problem at once,
// under the form's field names.
func (p Policy) Check() error {
	var fs errs.Fields
	for _, f := range []struct {
		name string
		days int
	}{{"max_lifetime_days", p.MaxLifetimeDays}, {"idle_disable_days", p.IdleDisableDays}, {"default_expiry_days", p.DefaultExpiryDays}} {
		if f.days < 0 || f.days > MaxPolicyDays {
			fs.Add(f.name, fmt.Sprintf("Enter a number of days from 1 to %d, or leave it empty for no limit.", MaxPolicyDays))
		}
	}
	if p.LeakAction != "" && p.LeakAction != LeakRevoke && p.LeakAction != LeakDisable {
		fs.Add("leak_action", "Choose what happens to a key reported leaked: revoke it at once, or disable it.")
	}
	if p.MaxLifetimeDays > 0 && p.DefaultExpiryDays > p.MaxLifetimeDays {
		fs.Add("default_expiry_days", fmt.Sprintf("The default expiry cannot be later than the maximum key lifetime (%d days).", p.MaxLifetimeDays))
	}
	return fs.Err()
}

// LoadPolicy reads the tenant's key policy through q; a tenant without
// one gets the zero Policy.
func LoadPolicy(ctx context.Context, q *db.Queries, tenantID int64) (Policy, error) {
	row, err := q.GetKeyPolicy(ctx, tenantID)
	if errors.Is(err, db.ErrNotFound) {
		return Policy{}, nil
	}
	if err != nil {
		return Policy{}, err
	}
	days := func(n *int32) int {
		if n == nil {
			return 0
		}
		return int(*n)
	}
	return Policy{MaxLifetimeDays: days(row.MaxLifetimeDays), RequireProdAllowlist: row.RequireProdAllowlist,
		IdleDisableDays: days(row.IdleDisableDays), DefaultExpiryDays: days(row.DefaultExpiryDays), LeakAction: row.LeakAction}, nil
}

// SavePolicy stores the tenant's key policy through q.
func SavePolicy(ctx context.Context, q *db.Queries, tenantID int64, p Policy, now time.Time) error {
	days := func(n int) *int32 {
		if n == 0 {
			return nil
		}
		v := int32(n)
		return &v
	}
	return q.UpsertKeyPolicy(ctx, db.UpsertKeyPolicyParams{TenantID: tenantID, MaxLifetimeDays: days(p.MaxLifetimeDays),
		RequireProdAllowlist: p.RequireProdAllowlist, IdleDisableDays: days(p.IdleDisableDays),
		DefaultExpiryDays: days(p.DefaultExpiryDays), LeakAction: p.Leak(), UpdatedAt: now})
}

// latestExpiry is the latest expiry the lifetime policy allows at now.
func (p Policy) latestExpiry(now time.Time) time.Time {
	return now.Add(time.Duration(p.MaxLifetimeDays) * 24 * time.Hour)
}

// check adds to fs a field error for each policy the normalised c breaks.
// An edit that keeps a key's current expiry is held to the policy too:
// every edited key must comply.
func (p Policy) check(c *Config, now time.Time, _ *time.Time, fs *errs.Fields) {
	if p.MaxLifetimeDays > 0 && !fs.Has("expires_at") {
		latest := p.latestExpiry(now)
		if c.ExpiresAt == nil || c.ExpiresAt.After(latest) {
			fs.Add("expires_at", fmt.Sprintf("Your organisation's policy “%s” requires every key to expire within %d days: choose an expiry on or before %s.",
				PolicyMaxLifetime, p.MaxLifetimeDays, latest.UTC().Format(time.DateOnly)))
		}
	}
	if p.RequireProdAllowlist && c.Environment == Production && len(c.IPAllowlist) == 0 && !fs.Has("ip_allowlist") {
		fs.Add("ip_allowlist", fmt.Sprintf("Your organisation's policy “%s” requires production keys to list the addresses they may be used from.", PolicyProdAllowlist))
	}
}

// Breaches names the policies k breaks at now: for the settings page,
// which lists existing keys that a policy would not allow, and changes
// none of them (except the idle-key job, which disables the idle ones).
func (p Policy) Breaches(k Key, now time.Time) []string {
	var out []string
	if p.MaxLifetimeDays > 0 && (k.ExpiresAt == nil || k.ExpiresAt.After(p.latestExpiry(now))) {
		out = append(out, PolicyMaxLifetime)
	}
	if p.RequireProdAllowlist && k.Environment == Production && len(k.IPAllowlist) == 0 {
		out = append(out, PolicyProdAllowlist)
	}
	if p.IdleDisableDays > 0 && k.Status(now) == StatusActive && IdleSince(k).Before(now.AddDate(0, 0, -p.IdleDisableDays)) {
		out = append(out, PolicyIdle)
	}
	return out
}

// IdleSince is when k was last used, or made if it never was.
func IdleSince(k Key) time.Time {
	if k.LastUsedAt != nil {
		return *k.LastUsedAt
	}
	return k.CreatedAt
}

// validate normalises c and checks it against the tenant's policy, read
// through q.
func validate(ctx context.Context, q *db.Queries, tenantID int64, c *Config, now time.Time, current *time.Time) error {
	p, err := LoadPolicy(ctx, q, tenantID)
	if err != nil {
		return err
	}
	return c.Validate(now, current, p)
}
