package apikey

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"keyward/db"
	"keyward/web/audit"
	"keyward/web/errs"
)

// ErrRevoked refuses any change to a revoked key: revocation is final.
var ErrRevoked = errs.New(errs.Conflict, "", "This key is revoked: it can never be enabled or changed again. Its history is kept.")

// ErrNotFound: no such key in the caller's organisation.
var ErrNotFound = errs.New(errs.NotFound, "", "No such API key in your organisation.")

// errGrace refuses a grace window that is not offered.
var errGrace = errs.InvalidField("grace", "Choose a grace window of now, 1 hour, 24 hours or 7 days.")

// alreadyIn refuses disabling a disabled key, or enabling an enabled one.
func alreadyIn(disabled bool) error {
	return errs.New(errs.Invalid, "", "The key is already "+map[bool]string{true: "disabled", false: "enabled"}[disabled]+".")
}

func nameTaken(name string) error {
	return errs.InvalidField("name", fmt.Sprintf("A live key named %q already exists: choose another name.", name))
}

// Statuses a key shows.
const (
	StatusActive   = "active"
	StatusDisabled = "disabled"
	StatusExpired  = "expired"
	StatusRevoked  = "revoked"
)

// Graces are the rotation grace windows offered.
var Graces = []time.Duration{0, time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}

// Every operation below takes q, the transaction that also verified the
// admin's TOTP code, and writes its audit event through it, keyed with
// keys.

// Create makes a key with one secret and returns the row and the full key,
// which the caller shows once and forgets.
func Create(ctx context.Context, q *db.Queries, keys *audit.Keys, tenantID int64, cfg Config, by audit.Actor, userID int64, now time.Time) (db.APIKey, string, error) {
	if err := validate(ctx, q, tenantID, &cfg, now, nil); err != nil {
		return db.APIKey{}, "", err
	}
	p := createParams(tenantID, cfg)
	p.CreatedBy = &userID
	p.ExpiryStage = setStage(cfg.ExpiresAt, now)
	k, err := q.CreateAPIKey(ctx, p)
	if errors.Is(err, db.ErrConflict) {
		return db.APIKey{}, "", nameTaken(cfg.Name)
	}
	if err != nil {
		return db.APIKey{}, "", err
	}
	full, prefix, err := addSecret(ctx, q, k)
	if err != nil {
		return db.APIKey{}, "", err
	}
	diff := configDiff(db.APIKey{}, k)
	diff["prefix"] = change{To: prefix}
	return k, full, record(ctx, q, keys, now, by, "api_key.created", k, diff)
}

// Rotate adds a new secret with the same configuration and retires the
// current ones at now+grace (grace 0: at once).
func Rotate(ctx context.Context, q *db.Queries, keys *audit.Keys, tenantID int64, id string, grace time.Duration, by audit.Actor, now time.Time) (string, error) {
	if !slices.Contains(Graces, grace) {
		return "", errGrace
	}
	k, err := lockKey(ctx, q, tenantID, id)
	if err != nil {
		return "", err
	}
	until := now.Add(grace)
	if err := q.ExpireAPIKeySecrets(ctx, db.ExpireAPIKeySecretsParams{TenantID: tenantID, KeyID: k.ID, At: &until}); err != nil {
		return "", err
	}
	full, prefix, err := addSecret(ctx, q, k)
	if err != nil {
		return "", err
	}
	return full, record(ctx, q, keys, now, by, "api_key.rotated", k, map[string]any{
		"prefix": change{To: prefix}, "grace": DurationText(grace), "old_secrets_expire_at": until.UTC().Format(time.RFC3339),
	})
}

// EndGrace ends now the rotation grace of the key's secret with prefix:
// that secret stops working at once, the key's current one goes on.
func EndGrace(ctx context.Context, q *db.Queries, keys *audit.Keys, tenantID int64, id, prefix string, by audit.Actor, now time.Time) error {
	k, err := lockKey(ctx, q, tenantID, id)
	if err != nil {
		return err
	}
	secrets, err := q.ListAPIKeySecrets(ctx, db.ListAPIKeySecretsParams{TenantID: tenantID, KeyID: k.ID})
	if err != nil {
		return err
	}
	var until *time.Time
	for _, sec := range secrets {
		if sec.Prefix == prefix && sec.ExpiresAt != nil && sec.ExpiresAt.After(now) {
			until = sec.ExpiresAt
		}
	}
	if until == nil {
		return errNoGrace(prefix)
	}
	if _, err := q.EndAPIKeySecretGrace(ctx, db.EndAPIKeySecretGraceParams{TenantID: tenantID, KeyID: k.ID, Prefix: prefix, Now: &now}); err != nil {
		return err
	}
	return record(ctx, q, keys, now, by, "api_key.grace_ended", k, map[string]any{
		"prefix": prefix, "expires_at": change{From: until.UTC().Format(time.RFC3339), To: now.UTC().Format(time.RFC3339)},
	})
}

// errNoGrace refuses to end a grace that is not running: the secret is
// the current one, or its grace is over.
func errNoGrace(prefix string) error {
	return errs.New(errs.Conflict, "", "The secret "+prefix+"… is not in a rotation grace window: it is the current secret, or it stopped working already.")
}

// DurationText writes a grace window or a rate-limit window as forms and
// audit diffs spell it: "0", "1m", "1h", "24h", "168h".
func DurationText(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// Update changes a key's configuration. The environment is part of the
// key string, so it cannot change.
func Update(ctx context.Context, q *db.Queries, keys *audit.Keys, tenantID int64, id string, cfg Config, by audit.Actor, now time.Time) error {
	k, err := lockKey(ctx, q, tenantID, id)
	if err != nil {
		return err
	}
	cfg.Environment = Environment(k.Environment)
	if err := validate(ctx, q, tenantID, &cfg, now, k.ExpiresAt); err != nil {
		return err
	}
	p := createParams(tenantID, cfg)
	err = q.UpdateAPIKey(ctx, db.UpdateAPIKeyParams{
		TenantID: tenantID, ID: k.ID, Name: p.Name, Description: p.Description, Scopes: p.Scopes,
		Sources: p.Sources, IpAllowlist: p.IpAllowlist, RateLimitRequests: p.RateLimitRequests,
		RateLimitWindowS: p.RateLimitWindowS, ExpiresAt: p.ExpiresAt, ExpiryStage: setStage(p.ExpiresAt, now),
	})
	if errors.Is(err, db.ErrConflict) {
		return nameTaken(cfg.Name)
	}
	if err != nil {
		return err
	}
	after, err := q.GetAPIKey(ctx, db.GetAPIKeyParams{TenantID: tenantID, ID: k.ID})
	if err != nil {
		return err
	}
	return record(ctx, q, keys, now, by, "api_key.updated", k, configDiff(k, after))
}

// SetDisabled disables (temporarily) or enables a key.
func SetDisabled(ctx context.Context, q *db.Queries, keys *audit.Keys, tenantID int64, id string, disabled bool, by audit.Actor, now time.Time) error {
	k, err := lockKey(ctx, q, tenantID, id)
	if err != nil {
		return err
	}
	if (k.DisabledAt != nil) == disabled {
		return alreadyIn(disabled)
	}
	var at *time.Time
	action := "api_key.enabled"
	if disabled {
		at, action = &now, "api_key.disabled"
	}
	if err := q.SetAPIKeyDisabled(ctx, db.SetAPIKeyDisabledParams{TenantID: tenantID, ID: k.ID, DisabledAt: at}); err != nil {
		return err
	}
	return record(ctx, q, keys, now, by, action, k, map[string]any{"disabled": change{From: k.DisabledAt != nil, To: disabled}})
}

// Revoke ends a key for good; its secrets stop at once and its history
// stays.
func Revoke(ctx context.Context, q *db.Queries, keys *audit.Keys, tenantID int64, id string, by audit.Actor, now time.Time) error {
	k, err := lockKey(ctx, q, tenantID, id)
	if err != nil {
		return err
	}
	if err := q.RevokeAPIKey(ctx, db.RevokeAPIKeyParams{TenantID: tenantID, ID: k.ID, Now: &now}); err != nil {
		return err
	}
	if err := q.ExpireAPIKeySecrets(ctx, db.ExpireAPIKeySecretsParams{TenantID: tenantID, KeyID: k.ID, At: &now}); err != nil {
		return err
	}
	return record(ctx, q, keys, now, by, "api_key.revoked", k, map[string]any{"status": change{From: keyOf(k).Status(now), To: StatusRevoked}})
}

// lockKey loads a live key of the tenant FOR UPDATE.
func lockKey(ctx context.Context, q *db.Queries, tenantID int64, id string) (db.APIKey, error) {
	if !ValidID(id) {
		return db.APIKey{}, ErrNotFound
	}
	k, err := q.GetAPIKeyForUpdate(ctx, db.GetAPIKeyForUpdateParams{TenantID: tenantID, ID: id})
	if errors.Is(err, db.ErrNotFound) {
		return db.APIKey{}, ErrNotFound
	}
	if err != nil {
		return db.APIKey{}, err
	}
	if k.RevokedAt != nil {
		return db.APIKey{}, ErrRevoked
	}
	return k, nil
}

func addSecret(ctx context.Context, q *db.Queries, k db.APIKey) (full, prefix string, err error) {
	full, err = Generate(Environment(k.Environment))
	if err != nil {
		return "", "", err
	}
	p, err := Parse(full)
	if err != nil {
		return "", "", err
	}
	prefix = DisplayPrefix(p)
	return full, prefix, q.CreateAPIKeySecret(ctx, db.CreateAPIKeySecretParams{KeyID: k.ID, TenantID: k.TenantID, Hash: Hash(full), Prefix: prefix})
}

func createParams(tenantID int64, c Config) db.CreateAPIKeyParams {
	p := db.CreateAPIKeyParams{
		TenantID: tenantID, Name: c.Name, Description: c.Description, Environment: string(c.Environment),
		Scopes: c.Scopes, Sources: nonNil(c.Sources), IpAllowlist: nonNil(c.IPAllowlist), ExpiresAt: c.ExpiresAt,
	}
	if c.RateLimit != nil {
		r, w := int32(c.RateLimit.Requests), int32(c.RateLimit.Window/time.Second)
		p.RateLimitRequests, p.RateLimitWindowS = &r, &w
	}
	return p
}

// KeyRateLimit is the key's own limit, or nil for the plan's default.
func KeyRateLimit(k db.APIKey) *RateLimit {
	if k.RateLimitRequests == nil || k.RateLimitWindowS == nil {
		return nil
	}
	return &RateLimit{Requests: int(*k.RateLimitRequests), Window: time.Duration(*k.RateLimitWindowS) * time.Second}
}

type rateLimitDiff struct {
	Requests int    `json:"requests"`
	Window   string `json:"window"`
}

type change struct {
	From any `json:"from,omitempty"`
	To   any `json:"to"`
}

// configDiff lists the configuration fields that differ between a and b.
// It never includes a secret: keys rows hold none.
func configDiff(a, b db.APIKey) map[string]any {
	d := map[string]any{}
	add := func(name string, x, y any, same bool) {
		if !same {
			d[name] = change{From: x, To: y}
		}
	}
	// A rate limit reads {"requests":1000,"window":"1h"}, and the plan's
	// default null. (Events before this form wrote "1000/1h0m0s" and
	// "plan default"; audit.Describe reads both.)
	rl := func(k db.APIKey) any {
		if r := KeyRateLimit(k); r != nil {
			return rateLimitDiff{Requests: r.Requests, Window: DurationText(r.Window)}
		}
		return nil
	}
	exp := func(k db.APIKey) string {
		if k.ExpiresAt == nil {
			return "never"
		}
		return k.ExpiresAt.UTC().Format(time.RFC3339)
	}
	add("name", a.Name, b.Name, a.Name == b.Name)
	add("description", a.Description, b.Description, a.Description == b.Description)
	add("environment", a.Environment, b.Environment, a.Environment == b.Environment)
	add("scopes", a.Scopes, b.Scopes, slices.Equal(a.Scopes, b.Scopes))
	add("sources", a.Sources, b.Sources, slices.Equal(a.Sources, b.Sources))
	add("ip_allowlist", a.IpAllowlist, b.IpAllowlist, slices.Equal(a.IpAllowlist, b.IpAllowlist))
	add("rate_limit", rl(a), rl(b), rl(a) == rl(b))
	add("expires_at", exp(a), exp(b), exp(a) == exp(b))
	return d
}

// record writes the operation's audit event, tells every running instance
// to drop the key from its verification cache, and stamps changed_at. All
// go through q, so the notification is delivered exactly when the change
// commits.
func record(ctx context.Context, q *db.Queries, keys *audit.Keys, now time.Time, by audit.Actor, action string, k db.APIKey, diff map[string]any) error {
	if err := q.NotifyAPIKeyChanged(ctx, k.ID); err != nil {
		return err
	}
	// For an instance that misses the notification (its listener was cut
	// off): it catches up from changed_at when it reconnects.
	if err := q.MarkAPIKeyChanged(ctx, db.MarkAPIKeyChangedParams{TenantID: k.TenantID, ID: k.ID}); err != nil {
		return err
	}
	ev := by.Event(action, "api_key", k.ID, diff)
	ev.TenantID = &k.TenantID
	return audit.Record(ctx, q, keys, now, ev)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ValidID reports whether s has the shape of a key id (a UUID), so a
// malformed id is "not found" without asking the database.
func ValidID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
