// Package auth owns portal identities: tenants and their users, password
// hashing, sign-in with throttling, and the second-factor check that sign-in
// and every key operation share. Each outcome is written to the audit trail.
// It never logs a password or a code, and it must not import echo.
package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"time"

	"keyward/db"
	"keyward/web/audit"
	"keyward/web/errs"
	kwmail "keyward/web/mail"
	"keyward/web/mfa"
)

// Roles, from most to least powerful.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleViewer = "viewer"
)

// Plans and their default hourly rate limits.
var Plans = map[string]int{"free": 100, "solo": 500, "team": 2000, "stack": 10000}

// Service is the sign-in aggregate: the password step, the TOTP step,
// enrolment, logout, password changes, and the second-factor check every
// key operation shares. Each method owns its transactions and writes its
// audit events in them.
type Service struct {
	Store *db.Store
	MFA   *mfa.Service
	Now   func() time.Time
	// Hashes bounds the argon2id work of password checks and changes;
	// nil means DefaultHashLimit, the process-wide one.
	Hashes *HashLimit
	// Audit keys the audit events the service writes.
	Audit *audit.Keys
	// Mail, when set, also sends invitation links by mail.
	Mail kwmail.Sender

	keys keyLocks
}

func (s *Service) hashes() *HashLimit {
	if s.Hashes != nil {
		return s.Hashes
	}
	return DefaultHashLimit()
}

// PasswordStep checks email and password. It takes a place in the hash
// limit's line first (a full line is errs.Unavailable, before any database
// work), then runs the three steps described in throttle.go: a short
// transaction that refuses a locked account or IP and counts a failure on
// both, the hash with no connection held, and a short transaction that
// audits the failure or, for a right password, clears the account's count
// and takes back the IP's. The error never says whether the email exists.
func (s *Service) PasswordStep(ctx context.Context, email, password string, from Origin) (User, error) {
	var fs errs.Fields
	if strings.TrimSpace(email) == "" {
		fs.Add("email", "Enter your email address.")
	}
	if password == "" {
		fs.Add("password", "Enter your password.")
	}
	if err := fs.Err(); err != nil {
		return User{}, err
	}
	email = audit.CleanText(NormalizeEmail(email), 254)
	turn, err := s.hashes().enter()
	if err != nil {
		return User{}, err
	}
	defer turn.leave()
	account := throttleKey{loginEmailKey(email), accountPolicy}
	ip := throttleKey{loginIPKey(from.IP), ipPolicy}
	var u db.User
	found := false
	err = s.begin(ctx, "Too many failed sign-in attempts", []throttleKey{account, ip}, func(q *db.Queries) error {
		var err error
		u, err = q.GetUserByEmail(ctx, email)
		found = err == nil
		if errors.Is(err, db.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return User{}, err
	}
	hash := dummyHash
	if found {
		hash = u.PasswordHash
	}
	var ok bool
	if err := turn.hash(ctx, func() { ok = CheckPassword(hash, password) && found }); err != nil {
		// Never checked (the client left while in line): count nothing.
		return User{}, errors.Join(err, s.settle(ctx, []throttleKey{account, ip}, func(q *db.Queries, _ time.Time) error {
			return errors.Join(forgive(ctx, q, account), forgive(ctx, q, ip))
		}))
	}
	reason := ""
	switch {
	case !found:
		reason = "unknown_email"
	case !ok:
		reason = "wrong_password"
	case u.DisabledAt != nil:
		reason = "user_disabled"
	}
	var lock []throttleKey // a right password forgives, under the keys' locks
	if reason == "" {
		lock = []throttleKey{account, ip}
	}
	var user User
	err = s.settle(ctx, lock, func(q *db.Queries, now time.Time) error {
		if reason == "" {
			// The account may have changed while its password was hashed:
			// a password set meanwhile (a reset) makes this one wrong.
			cur, err := q.GetUser(ctx, u.ID)
			switch {
			case errors.Is(err, db.ErrNotFound) || err == nil && cur.PasswordHash != u.PasswordHash:
				reason = "wrong_password"
			case err != nil:
				return err
			case cur.DisabledAt != nil:
				reason = "user_disabled"
			default:
				// Right: the account's count starts again, and the IP's
				// failure is taken back.
				user = userOf(cur)
				if err := q.ClearThrottle(ctx, account.key); err != nil {
					return err
				}
				return forgive(ctx, q, ip)
			}
		}
		// The typed email is kept only when it names a real user: people
		// paste passwords into the email field, and the trail is forever.
		ev := from.actor().Event("auth.login.failed", "user", "", map[string]string{"reason": reason})
		if found {
			ev.TenantID, ev.TargetID = &u.TenantID, strconv.FormatInt(u.ID, 10)
			ev.Diff = map[string]string{"reason": reason, "email": u.Email}
		}
		return audit.Record(ctx, q, s.Audit, now, ev)
	})
	if err != nil {
		return User{}, err
	}
	if reason != "" {
		return User{}, ErrBadCredentials
	}
	return user, nil
}

// TOTPStep checks the second factor of a user who passed the password step
// and audits the sign-in.
func (s *Service) TOTPStep(ctx context.Context, by Caller, code string) error {
	return s.confirm(ctx, by, code, func(q *db.Queries, now time.Time, usedRecovery bool) error {
		method := "totp"
		if usedRecovery {
			method = "recovery_code"
		}
		if err := q.MarkUserSignedIn(ctx, db.MarkUserSignedInParams{ID: by.User.ID, Now: &now}); err != nil {
			return err
		}
		return audit.Record(ctx, q, s.Audit, now, by.Actor().Event("auth.login.succeeded", "user", by.Actor().ID, map[string]string{"method": method}))
	})
}

// Confirm checks a fresh TOTP code or an unused recovery code of the caller
// and, in the same transaction, runs change. A wrong or replayed code
// changes nothing, is counted towards the user's MFA throttle and is
// audited as auth.mfa.failed or auth.mfa.replayed; a right one does not
// reset that count. This is the one place an operation's code is checked.
// Codes cost no hashing worth the name, so the whole check runs in one
// transaction under the throttle key's advisory lock (attempt).
func (s *Service) Confirm(ctx context.Context, by Caller, code string, change func(q *db.Queries, now time.Time) error) error {
	return s.confirm(ctx, by, code, func(q *db.Queries, now time.Time, _ bool) error { return change(q, now) })
}

func (s *Service) confirm(ctx context.Context, by Caller, code string, then func(q *db.Queries, now time.Time, usedRecovery bool) error) error {
	if strings.TrimSpace(code) == "" {
		return errs.InvalidField("code", "Enter the 6-digit code from your authenticator app, or a recovery code.")
	}
	var outcome error
	err := s.attempt(ctx, "Too many wrong codes", []string{mfaKey(by.User.ID)}, func(q *db.Queries, now time.Time) error {
		// Read under a share lock: the role the callers checked when the
		// request began must still be the user's, and stay so until the
		// change commits (a demotion or disable waits for it).
		u, err := q.GetUserForShare(ctx, by.User.ID)
		if err != nil {
			return err
		}
		if u.Role != by.User.Role || u.DisabledAt != nil {
			return ErrCallerChanged
		}
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
			return audit.Record(ctx, q, s.Audit, now, by.Actor().Event(action, "user", strconv.FormatInt(u.ID, 10), nil))
		}
		if err != nil {
			return err
		}
		// A right code leaves the count as it is: it decays with the
		// throttle's hourly window. Reset here, it would give someone who
		// knows the password fresh guesses each time the real user signs
		// in or confirms an operation.
		return then(q, now, usedRecovery)
	})
	if err != nil {
		return err
	}
	return outcome
}

// StartEnrolment makes a new TOTP secret for the user.
// PendingEnrolment returns the enrolment to show the user and the secret
// to keep in their session until they confirm it, sealed (AES-GCM, bound to
// the user) and base64-encoded. Given the sealed secret kept before, it
// returns the same enrolment, so a reload shows the same QR code; given
// nothing, or something that does not open, it starts a new one.
func (s *Service) PendingEnrolment(by Caller, sealed string) (mfa.Enrolment, string, error) {
	if secret, ok := s.openPending(by, sealed); ok {
		en, err := s.MFA.EnrolmentFor(by.User.Email, secret)
		return en, sealed, err
	}
	en, err := s.MFA.NewEnrolment(by.User.Email)
	if err != nil {
		return mfa.Enrolment{}, "", err
	}
	b, err := s.MFA.Encrypt(by.User.ID, en.Secret)
	if err != nil {
		return mfa.Enrolment{}, "", err
	}
	return en, base64.StdEncoding.EncodeToString(b), nil
}

func (s *Service) openPending(by Caller, sealed string) (string, bool) {
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || sealed == "" {
		return "", false
	}
	secret, err := s.MFA.Decrypt(by.User.ID, b)
	return secret, err == nil
}

// Enrol confirms the pending TOTP secret (sealed, as PendingEnrolment
// returned it) with a code from the app, stores it, signs the user in and
// returns the recovery codes, to be shown once. ErrAlreadyEnrolled means
// another tab won: its codes stand.
func (s *Service) Enrol(ctx context.Context, by Caller, sealed, code string) ([]string, error) {
	secret, ok := s.openPending(by, sealed)
	if !ok {
		return nil, errs.New(errs.Invalid, "", "This enrolment has expired: the page shows a new QR code to scan.")
	}
	step, err := s.MFA.CheckEnrolmentCode(secret, code)
	if err != nil {
		const msg = "That code does not match. Check that your device's clock is right and enter the code your app shows now."
		return nil, &errs.Error{Kind: errs.Unauthorized, Code: errs.CodeInvalidCode, Message: msg, Fields: []errs.Field{{Name: "code", Message: msg}}}
	}
	var codes []string
	err = s.Store.InTx(ctx, func(q *db.Queries) error {
		now := s.Now()
		var err error
		if codes, err = s.MFA.Confirm(ctx, q, by.User.ID, secret, step); err != nil {
			return err
		}
		if err := q.MarkUserSignedIn(ctx, db.MarkUserSignedInParams{ID: by.User.ID, Now: &now}); err != nil {
			return err
		}
		from := by.Actor()
		if err := audit.Record(ctx, q, s.Audit, now, from.Event("auth.mfa.enrolled", "user", from.ID, map[string]int{"recovery_codes": len(codes)})); err != nil {
			return err
		}
		return audit.Record(ctx, q, s.Audit, now, from.Event("auth.login.succeeded", "user", from.ID, map[string]string{"method": "totp_enrolment"}))
	})
	return codes, err
}

// Logout audits the end of a session; the caller deletes the session.
func (s *Service) Logout(ctx context.Context, by Caller) error {
	return s.Store.InTx(ctx, func(q *db.Queries) error {
		return audit.Record(ctx, q, s.Audit, s.Now(), by.Actor().Event("auth.logout", "user", by.Actor().ID, nil))
	})
}

// PasswordChange is the account page's form.
type PasswordChange struct {
	Current, New, Confirm string
	// KeepSession is the hash of the session that stays signed in.
	KeepSession []byte
}

// ChangePassword sets a new password after checking the current one, and
// ends the user's other sessions. Guessing the current password from a
// stolen session counts against the same per-account throttle as
// sign-in, in the same three steps (throttle.go): no connection is held
// while the current password is checked and the new one hashed, both under
// the hash limit.
func (s *Service) ChangePassword(ctx context.Context, by Caller, in PasswordChange) error {
	var fs errs.Fields
	if in.Current == "" {
		fs.Add("current_password", "Enter your current password.")
	}
	if err := ValidatePassword(in.New, by.User.Email); err != nil {
		e, _ := errs.As(err)
		fs.Add("new_password", e.Message)
	} else if in.Current == in.New {
		fs.Add("new_password", "Choose a password different from the current one.")
	}
	if in.New != in.Confirm {
		fs.Add("confirm_password", "The new passwords do not match.")
	}
	if err := fs.Err(); err != nil {
		e := err.(*errs.Error)
		e.Err = ErrPasswordPolicy
		return e
	}
	turn, err := s.hashes().enter()
	if err != nil {
		return err
	}
	defer turn.leave()
	account := throttleKey{loginEmailKey(by.User.Email), accountPolicy}
	var u db.User
	err = s.begin(ctx, "Too many failed attempts", []throttleKey{account}, func(q *db.Queries) error {
		var err error
		u, err = q.GetUser(ctx, by.User.ID)
		return err
	})
	if err != nil {
		return err
	}
	var ok bool
	var hash string
	var hashErr error
	err = turn.hash(ctx, func() {
		if ok = CheckPassword(u.PasswordHash, in.Current); ok {
			hash, hashErr = HashPassword(in.New)
		}
	})
	if err = errors.Join(err, hashErr); err != nil {
		// Never checked, or nothing to store: count nothing.
		return errors.Join(err, s.settle(ctx, []throttleKey{account}, func(q *db.Queries, _ time.Time) error {
			return forgive(ctx, q, account)
		}))
	}
	id := strconv.FormatInt(u.ID, 10)
	wrong := invalid("current_password", "The current password is incorrect.")
	if !ok {
		err := s.settle(ctx, nil, func(q *db.Queries, now time.Time) error {
			return audit.Record(ctx, q, s.Audit, now, by.Actor().Event("user.password_change.failed", "user", id, nil))
		})
		if err != nil {
			return err
		}
		return wrong
	}
	var outcome error
	err = s.settle(ctx, []throttleKey{account}, func(q *db.Queries, now time.Time) error {
		// A password set while this one was hashed (another tab, a reset)
		// means the one checked is no longer current.
		cur, err := q.GetUser(ctx, u.ID)
		if err != nil {
			return err
		}
		if cur.PasswordHash != u.PasswordHash {
			outcome = wrong
			return audit.Record(ctx, q, s.Audit, now, by.Actor().Event("user.password_change.failed", "user", id, nil))
		}
		if err := forgive(ctx, q, account); err != nil {
			return err
		}
		if err := q.SetUserPassword(ctx, db.SetUserPasswordParams{ID: u.ID, PasswordHash: hash, MustChangePassword: false}); err != nil {
			return err
		}
		if err := q.DeleteUserSessionsExcept(ctx, db.DeleteUserSessionsExceptParams{UserID: &u.ID, IDHash: in.KeepSession}); err != nil {
			return err
		}
		return audit.Record(ctx, q, s.Audit, now, by.Actor().Event("user.password_changed", "user", id, nil))
	})
	if err != nil {
		return err
	}
	return outcome
}

// RecoveryCodesLeft counts the user's unused recovery codes.
func (s *Service) RecoveryCodesLeft(ctx context.Context, userID int64) (int64, error) {
	return s.Store.CountUnusedRecoveryCodes(ctx, userID)
}

// Session reads the user and tenant a session names. A user who no longer
// exists or is disabled is ErrSessionEnded: the session must end.
func (s *Service) Session(ctx context.Context, userID int64) (User, Tenant, error) {
	u, err := s.Store.GetUser(ctx, userID)
	if errors.Is(err, db.ErrNotFound) || err == nil && u.DisabledAt != nil {
		return User{}, Tenant{}, ErrSessionEnded
	}
	if err != nil {
		return User{}, Tenant{}, err
	}
	t, err := s.Store.GetTenant(ctx, u.TenantID)
	if err != nil {
		return User{}, Tenant{}, err
	}
	return userOf(u), tenantOf(t), nil
}

// Users maps the tenant's user ids to their email addresses, for pages
// that name who did something.
func (s *Service) Users(ctx context.Context, tenantID int64) (map[int64]string, error) {
	users, err := s.Store.ListUsersByTenant(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	m := make(map[int64]string, len(users))
	for _, u := range users {
		m[u.ID] = u.Email
	}
	return m, nil
}

var slugRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,62}$`)

// CreateTenant makes a tenant after validating its fields.
func CreateTenant(ctx context.Context, q *db.Queries, keys *audit.Keys, slug, name, plan string, now time.Time) (db.Tenant, error) {
	switch {
	case !slugRe.MatchString(slug):
		return db.Tenant{}, invalid("slug", "The slug must be 2-63 lower-case letters, digits or dashes, starting with a letter or digit")
	case strings.TrimSpace(name) == "" || len(name) > 200:
		return db.Tenant{}, invalid("name", "The name must be 1-200 characters.")
	}
	if _, ok := Plans[plan]; !ok {
		return db.Tenant{}, invalid("plan", "The plan must be one of free, solo, team, stack")
	}
	t, err := q.CreateTenant(ctx, db.CreateTenantParams{Slug: slug, Name: strings.TrimSpace(name), Plan: plan})
	if errors.Is(err, db.ErrConflict) {
		return db.Tenant{}, invalid("slug", "a tenant with slug %q already exists", slug)
	}
	if err != nil {
		return db.Tenant{}, err
	}
	return t, audit.Record(ctx, q, keys, now, audit.Event{
		TenantID: &t.ID, ActorType: audit.ActorSystem, Action: "tenant.created",
		TargetType: "tenant", TargetID: strconv.FormatInt(t.ID, 10),
		Diff: map[string]string{"slug": t.Slug, "name": t.Name, "plan": t.Plan},
	})
}

// CreateUser adds a user to a tenant and records user.created with keys.
// With mustChange the password is a one-time password: the user must
// replace it after signing in.
func CreateUser(ctx context.Context, q *db.Queries, keys *audit.Keys, tenantID int64, email, role, password string, mustChange bool, by audit.Actor, now time.Time) (db.User, error) {
	email = NormalizeEmail(email)
	if !validEmail(email) {
		return db.User{}, invalid("email", "%q is not an email address", email)
	}
	if role != RoleOwner && role != RoleAdmin && role != RoleViewer {
		return db.User{}, invalid("role", "The role must be owner, admin or viewer.")
	}
	if err := ValidatePassword(password, email); err != nil {
		return db.User{}, err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return db.User{}, err
	}
	u, err := q.CreateUser(ctx, db.CreateUserParams{TenantID: tenantID, Email: email, Role: role, PasswordHash: hash, MustChangePassword: mustChange})
	if errors.Is(err, db.ErrConflict) {
		return db.User{}, invalid("email", "a user with email %s already exists", email)
	}
	if err != nil {
		return db.User{}, err
	}
	by.TenantID = &tenantID
	return u, audit.Record(ctx, q, keys, now, by.Event("user.created", "user", strconv.FormatInt(u.ID, 10),
		map[string]string{"email": email, "role": role}))
}

// validEmail reports whether a normalised email is one a user can have:
// a bare address, nothing around it. mail.ParseAddress alone also takes
// "Name <a@b>" and "a@b (comment)", which would let one mailbox hold two
// accounts under two spellings, or show one address while mail goes to
// another.
func validEmail(email string) bool {
	a, err := mail.ParseAddress(email)
	return err == nil && a.Name == "" && a.Address == email && strings.Contains(email, "@") && len(email) <= 254
}

// NormalizeEmail trims and lower-cases an email address.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }
