// Package auth owns portal identities: tenants and their users, password
// hashing, sign-in with throttling, and the second-factor check that sign-in
// and every key operation share. Each outcome is written to the audit trail.
// It never logs a password or a code, and it must not import echo.
package auth

import (
	"context"
	"errors"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"time"

	"keyward/db"
	"keyward/web/audit"
	"keyward/web/mfa"
)

// Errors a handler maps to a message.
var (
	ErrBadCredentials = errors.New("email or password is incorrect")
	ErrInvalidInput   = errors.New("invalid input")
)

// Roles, from most to least powerful.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleViewer = "viewer"
)

// Plans and their default hourly rate limits.
var Plans = map[string]int{"free": 100, "solo": 500, "team": 2000, "stack": 10000}

// Service signs users in.
type Service struct {
	Store *db.Store
	MFA   *mfa.Service
	Now   func() time.Time
}

// Login checks email and password. Each attempt holds the account's and the
// IP's throttle keys for its duration, checks their locks first (so a locked
// account or IP costs no hashing), and counts and audits a failure in the
// same transaction. The error never says whether the email exists.
func (s *Service) Login(ctx context.Context, email, password string, from audit.Actor) (db.User, error) {
	email = audit.CleanText(NormalizeEmail(email), 254)
	var user db.User
	var outcome error
	err := s.attempt(ctx, []string{loginEmailKey(email), loginIPKey(from.IP)}, func(q *db.Queries, now time.Time) error {
		u, err := q.GetUserByEmail(ctx, email)
		found := err == nil
		if err != nil && !errors.Is(db.Wrap(err), db.ErrNotFound) {
			return err
		}
		hash := dummyHash
		if found {
			hash = u.PasswordHash
		}
		ok := CheckPassword(hash, password) && found
		reason := ""
		switch {
		case !found:
			reason = "unknown_email"
		case !ok:
			reason = "wrong_password"
		case u.DisabledAt != nil:
			reason = "user_disabled"
		}
		if reason == "" {
			user = u
			return q.ClearThrottle(ctx, loginEmailKey(email))
		}
		outcome = ErrBadCredentials
		if err := recordFailure(ctx, q, now, loginEmailKey(email), accountPolicy); err != nil {
			return err
		}
		if err := recordFailure(ctx, q, now, loginIPKey(from.IP), ipPolicy); err != nil {
			return err
		}
		// The typed email is kept only when it names a real user: people
		// paste passwords into the email field, and the trail is forever.
		ev := from.Event("auth.login.failed", "user", "", map[string]string{"reason": reason})
		if found {
			ev.TenantID, ev.TargetID = &u.TenantID, strconv.FormatInt(u.ID, 10)
			ev.Diff = map[string]string{"reason": reason, "email": u.Email}
		}
		return audit.Record(ctx, q, ev)
	})
	if err != nil {
		return db.User{}, err
	}
	return user, outcome
}

// CheckCode verifies a fresh TOTP code or an unused recovery code for u and,
// in the same transaction, runs then (which may be nil). A wrong or replayed
// code changes nothing, is counted towards u's MFA throttle and is audited
// as auth.mfa.failed or auth.mfa.replayed.
func (s *Service) CheckCode(ctx context.Context, u db.User, code string, from audit.Actor, then func(q *db.Queries, usedRecovery bool) error) error {
	var outcome error
	err := s.attempt(ctx, []string{mfaKey(u.ID)}, func(q *db.Queries, now time.Time) error {
		usedRecovery, err := s.MFA.Verify(ctx, q, u, code)
		if errors.Is(err, mfa.ErrInvalidCode) || errors.Is(err, mfa.ErrReplayed) {
			// Verify changed nothing; commit only the count and the event.
			outcome = err
			action := "auth.mfa.failed"
			if errors.Is(err, mfa.ErrReplayed) {
				action = "auth.mfa.replayed"
			}
			if err := recordFailure(ctx, q, now, mfaKey(u.ID), mfaPolicy); err != nil {
				return err
			}
			return audit.Record(ctx, q, from.Event(action, "user", strconv.FormatInt(u.ID, 10), nil))
		}
		if err != nil {
			return err
		}
		if err := q.ClearThrottle(ctx, mfaKey(u.ID)); err != nil {
			return err
		}
		if then == nil {
			return nil
		}
		return then(q, usedRecovery)
	})
	if err != nil {
		return err
	}
	return outcome
}

// ChangePassword sets a new password after checking the current one, and
// ends the user's other sessions (keepSession is the current one's hash).
func (s *Service) ChangePassword(ctx context.Context, u db.User, current, next string, keepSession []byte, from audit.Actor) error {
	if err := ValidatePassword(next, u.Email); err != nil {
		return err
	}
	if current == next {
		return policy("Choose a password different from the current one.")
	}
	hash, err := HashPassword(next)
	if err != nil {
		return err
	}
	// Guessing the current password from a stolen session counts against
	// the same per-account throttle as sign-in.
	var outcome error
	key := loginEmailKey(u.Email)
	err = s.attempt(ctx, []string{key}, func(q *db.Queries, now time.Time) error {
		if !CheckPassword(u.PasswordHash, current) {
			outcome = invalid("The current password is incorrect.")
			if err := recordFailure(ctx, q, now, key, accountPolicy); err != nil {
				return err
			}
			return audit.Record(ctx, q, from.Event("user.password_change.failed", "user", strconv.FormatInt(u.ID, 10), nil))
		}
		if err := q.SetUserPassword(ctx, db.SetUserPasswordParams{ID: u.ID, PasswordHash: hash, MustChangePassword: false}); err != nil {
			return err
		}
		if err := q.DeleteUserSessionsExcept(ctx, db.DeleteUserSessionsExceptParams{UserID: &u.ID, IDHash: keepSession}); err != nil {
			return err
		}
		return audit.Record(ctx, q, from.Event("user.password_changed", "user", strconv.FormatInt(u.ID, 10), nil))
	})
	if err != nil {
		return err
	}
	return outcome
}

var slugRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,62}$`)

// CreateTenant makes a tenant after validating its fields.
func CreateTenant(ctx context.Context, q *db.Queries, slug, name, plan string) (db.Tenant, error) {
	switch {
	case !slugRe.MatchString(slug):
		return db.Tenant{}, invalid("The slug must be 2-63 lower-case letters, digits or dashes, starting with a letter or digit")
	case strings.TrimSpace(name) == "" || len(name) > 200:
		return db.Tenant{}, invalid("The name must be 1-200 characters.")
	}
	if _, ok := Plans[plan]; !ok {
		return db.Tenant{}, invalid("The plan must be one of free, solo, team, stack")
	}
	t, err := q.CreateTenant(ctx, db.CreateTenantParams{Slug: slug, Name: strings.TrimSpace(name), Plan: plan})
	if errors.Is(db.Wrap(err), db.ErrConflict) {
		return db.Tenant{}, invalid("a tenant with slug %q already exists", slug)
	}
	if err != nil {
		return db.Tenant{}, err
	}
	return t, audit.Record(ctx, q, audit.Event{
		TenantID: &t.ID, ActorType: audit.ActorSystem, Action: "tenant.created",
		TargetType: "tenant", TargetID: strconv.FormatInt(t.ID, 10),
		Diff: map[string]string{"slug": t.Slug, "name": t.Name, "plan": t.Plan},
	})
}

// CreateUser adds a user to a tenant. With mustChange the password is a
// one-time password: the user must replace it after signing in.
func CreateUser(ctx context.Context, q *db.Queries, tenantID int64, email, role, password string, mustChange bool, by audit.Actor) (db.User, error) {
	email = NormalizeEmail(email)
	if _, err := mail.ParseAddress(email); err != nil || !strings.Contains(email, "@") || len(email) > 254 {
		return db.User{}, invalid("%q is not an email address", email)
	}
	if role != RoleOwner && role != RoleAdmin && role != RoleViewer {
		return db.User{}, invalid("The role must be owner, admin or viewer.")
	}
	if err := ValidatePassword(password, email); err != nil {
		return db.User{}, err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return db.User{}, err
	}
	u, err := q.CreateUser(ctx, db.CreateUserParams{TenantID: tenantID, Email: email, Role: role, PasswordHash: hash, MustChangePassword: mustChange})
	if errors.Is(db.Wrap(err), db.ErrConflict) {
		return db.User{}, invalid("a user with email %s already exists", email)
	}
	if err != nil {
		return db.User{}, err
	}
	by.TenantID = &tenantID
	return u, audit.Record(ctx, q, by.Event("user.created", "user", strconv.FormatInt(u.ID, 10),
		map[string]string{"email": email, "role": role}))
}

// NormalizeEmail trims and lower-cases an email address.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }
