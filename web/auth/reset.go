package auth

import (
	"context"
	"errors"
	"strconv"
	"time"

	"keyward/db"
	"keyward/web/audit"
)

// ResetPassword gives the user with email in the tenant tenantSlug a new
// one-time password and returns it; the user must choose their own after
// signing in. In q's transaction it also ends every session of the user,
// clears the account's sign-in throttle so the new password works at once,
// and records user.password_reset by by, keyed with keys. The second
// factor is unchanged.
//
// An unknown tenant, or an email with no user in that tenant, is an
// ErrInvalidInput that says which.
func ResetPassword(ctx context.Context, q *db.Queries, keys *audit.Keys, tenantSlug, email string, by audit.Actor, now time.Time) (string, error) {
	email = NormalizeEmail(email)
	t, err := q.GetTenantBySlug(ctx, tenantSlug)
	if errors.Is(err, db.ErrNotFound) {
		return "", invalid("tenant", "no tenant with slug %q", tenantSlug)
	} else if err != nil {
		return "", err
	}
	// Hold the account's throttle key as a sign-in does: one in its first
	// step finishes counting before the counter is cleared. One hashing
	// now finds the password changed when it settles, and fails.
	key := loginEmailKey(email)
	if err := q.LockThrottleKey(ctx, key); err != nil {
		return "", err
	}
	u, err := q.GetUserByEmail(ctx, email)
	if errors.Is(err, db.ErrNotFound) || (err == nil && u.TenantID != t.ID) {
		return "", invalid("email", "no user with email %q in tenant %s", email, t.Slug)
	} else if err != nil {
		return "", err
	}
	password := GeneratePassword()
	hash, err := HashPassword(password)
	if err != nil {
		return "", err
	}
	if err := q.SetUserPassword(ctx, db.SetUserPasswordParams{ID: u.ID, PasswordHash: hash, MustChangePassword: true}); err != nil {
		return "", err
	}
	ended, err := q.DeleteUserSessions(ctx, &u.ID)
	if err != nil {
		return "", err
	}
	if err := q.ClearThrottle(ctx, key); err != nil {
		return "", err
	}
	by.TenantID = &t.ID
	if err := audit.Record(ctx, q, keys, now, by.Event("user.password_reset", "user", strconv.FormatInt(u.ID, 10),
		map[string]any{"email": u.Email, "sessions_ended": ended})); err != nil {
		return "", err
	}
	return password, nil
}
