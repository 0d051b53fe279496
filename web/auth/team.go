package auth

import (
	"context"
	"errors"
	"strconv"
	"time"

	"keyward/db"
	"keyward/web/audit"
	"keyward/web/errs"
)

// Team management: owners change roles, disable and enable members and
// reset their authenticators. Each change is a package-level function
// that runs in the caller's transaction (the portal's Confirm, or the
// command line's InTx), so both paths keep the same rules: the tenant's
// row is locked first, which serialises every membership change of the
// tenant, and the last active owner can be neither demoted nor disabled.

// Member is a user as the team page shows them.
type Member struct {
	ID           int64
	Email        string
	Role         string
	TOTPEnrolled bool
	Disabled     bool
	LastSignInAt *time.Time
	CreatedAt    time.Time
}

var (
	// ErrNoSuchMember: no user with that id in the caller's organisation.
	ErrNoSuchMember = errs.New(errs.NotFound, "", "No such member in your organisation.")
	errLastOwner    = errs.New(errs.Conflict, "",
		"This is the organisation's last active owner: make another member an owner first.")
	errSelf = errs.New(errs.Invalid, "",
		"You cannot do this to your own account here: ask another owner. (Your own authenticator can be replaced on your account page.)")
)

// ErrOwnerOnly refuses a change to the team or the organisation by
// someone who is not an owner.
func ErrOwnerOnly(role string) error {
	return errs.New(errs.Forbidden, "", "Your role ("+role+") can see this page but not change it. Ask an owner.")
}

// ValidRole reports whether role is one of the three roles.
func ValidRole(role string) bool { return role == RoleOwner || role == RoleAdmin || role == RoleViewer }

// Members lists the tenant's users, by email.
func (s *Service) Members(ctx context.Context, tenantID int64) ([]Member, error) {
	rows, err := s.Store.ListMembers(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	out := make([]Member, len(rows))
	for i, r := range rows {
		out[i] = Member{ID: r.ID, Email: r.Email, Role: r.Role, TOTPEnrolled: r.TotpEnrolledAt != nil,
			Disabled: r.DisabledAt != nil, LastSignInAt: r.LastSignInAt, CreatedAt: r.CreatedAt}
	}
	return out, nil
}

// ChangeRole gives a member another role.
func (s *Service) ChangeRole(ctx context.Context, by Caller, code string, userID int64, role string) (Member, error) {
	if !ValidRole(role) {
		return Member{}, invalid("role", "Choose owner, admin or viewer.")
	}
	return s.memberChange(ctx, by, code, userID, false, func(q *db.Queries, now time.Time) (db.User, error) {
		return SetRole(ctx, q, s.Audit, by.Tenant.ID, userID, role, by.Actor(), now)
	})
}

// DisableMember disables a member and ends their sessions at once.
func (s *Service) DisableMember(ctx context.Context, by Caller, code string, userID int64) (Member, error) {
	return s.memberChange(ctx, by, code, userID, true, func(q *db.Queries, now time.Time) (db.User, error) {
		return SetDisabled(ctx, q, s.Audit, by.Tenant.ID, userID, true, by.Actor(), now)
	})
}

// EnableMember lets a disabled member sign in again.
func (s *Service) EnableMember(ctx context.Context, by Caller, code string, userID int64) (Member, error) {
	return s.memberChange(ctx, by, code, userID, true, func(q *db.Queries, now time.Time) (db.User, error) {
		return SetDisabled(ctx, q, s.Audit, by.Tenant.ID, userID, false, by.Actor(), now)
	})
}

// ResetMemberMFA removes a member's authenticator and recovery codes and
// ends their sessions: their next sign-in goes to enrolment.
func (s *Service) ResetMemberMFA(ctx context.Context, by Caller, code string, userID int64) (Member, error) {
	return s.memberChange(ctx, by, code, userID, true, func(q *db.Queries, now time.Time) (db.User, error) {
		return ResetMFA(ctx, q, s.Audit, by.Tenant.ID, userID, by.Actor(), now)
	})
}

// memberChange checks, before a code is spent, that the caller is an
// owner and the member is theirs (and, with notSelf, not the caller), then
// runs change under Confirm, after checking again in the transaction that
// the caller is still an active owner.
func (s *Service) memberChange(ctx context.Context, by Caller, code string, userID int64, notSelf bool,
	change func(q *db.Queries, now time.Time) (db.User, error)) (Member, error) {
	if by.User.Role != RoleOwner {
		return Member{}, ErrOwnerOnly(by.User.Role)
	}
	if notSelf && userID == by.User.ID {
		return Member{}, errSelf
	}
	if u, err := s.Store.GetUser(ctx, userID); errors.Is(err, db.ErrNotFound) || err == nil && u.TenantID != by.Tenant.ID {
		return Member{}, ErrNoSuchMember
	} else if err != nil {
		return Member{}, err
	}
	var m Member
	err := s.Confirm(ctx, by, code, func(q *db.Queries, now time.Time) error {
		if err := stillOwner(ctx, q, by); err != nil {
			return err
		}
		u, err := change(q, now)
		if err != nil {
			return err
		}
		m = memberOf(u)
		return nil
	})
	return m, err
}

// stillOwner locks the tenant and checks that the caller is still one of
// its active owners: a role read at the start of the request may have
// changed since.
func stillOwner(ctx context.Context, q *db.Queries, by Caller) error {
	if _, err := q.LockTenant(ctx, by.Tenant.ID); err != nil {
		return err
	}
	me, err := q.GetUser(ctx, by.User.ID)
	if err != nil {
		return err
	}
	if me.DisabledAt != nil {
		return ErrSessionEnded
	}
	if me.Role != RoleOwner {
		return ErrOwnerOnly(me.Role)
	}
	return nil
}

func memberOf(u db.User) Member {
	return Member{ID: u.ID, Email: u.Email, Role: u.Role, TOTPEnrolled: u.TotpEnrolledAt != nil,
		Disabled: u.DisabledAt != nil, LastSignInAt: u.LastSignInAt, CreatedAt: u.CreatedAt}
}

// lockMember locks the tenant, then the member's row.
func lockMember(ctx context.Context, q *db.Queries, tenantID, userID int64) (db.User, error) {
	if _, err := q.LockTenant(ctx, tenantID); err != nil {
		return db.User{}, err
	}
	u, err := q.GetMemberForUpdate(ctx, db.GetMemberForUpdateParams{TenantID: tenantID, ID: userID})
	if errors.Is(err, db.ErrNotFound) {
		return db.User{}, ErrNoSuchMember
	}
	return u, err
}

// lastActiveOwner reports whether u is the tenant's only active owner.
func lastActiveOwner(ctx context.Context, q *db.Queries, u db.User) (bool, error) {
	if u.Role != RoleOwner || u.DisabledAt != nil {
		return false, nil
	}
	n, err := q.CountActiveOwners(ctx, u.TenantID)
	return n <= 1, err
}

type roleChange struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// SetRole changes a member's role in q's transaction and records
// user.role_changed. The last active owner keeps theirs.
func SetRole(ctx context.Context, q *db.Queries, keys *audit.Keys, tenantID, userID int64, role string, by audit.Actor, now time.Time) (db.User, error) {
	if !ValidRole(role) {
		return db.User{}, invalid("role", "Choose owner, admin or viewer.")
	}
	u, err := lockMember(ctx, q, tenantID, userID)
	if err != nil {
		return db.User{}, err
	}
	if u.Role == role {
		return db.User{}, errs.New(errs.Invalid, "", u.Email+" is already "+article(role)+" "+role+".")
	}
	if last, err := lastActiveOwner(ctx, q, u); err != nil {
		return db.User{}, err
	} else if last {
		return db.User{}, errLastOwner
	}
	if err := q.SetUserRole(ctx, db.SetUserRoleParams{TenantID: tenantID, ID: u.ID, Role: role}); err != nil {
		return db.User{}, err
	}
	by.TenantID = &tenantID
	if err := audit.Record(ctx, q, keys, now, by.Event("user.role_changed", "user", strconv.FormatInt(u.ID, 10),
		map[string]any{"email": u.Email, "role": roleChange{From: u.Role, To: role}})); err != nil {
		return db.User{}, err
	}
	u.Role = role
	return u, nil
}

// SetDisabled disables a member (ending every session of theirs in the
// same transaction) or enables them again, and records user.disabled or
// user.enabled. The last active owner cannot be disabled.
func SetDisabled(ctx context.Context, q *db.Queries, keys *audit.Keys, tenantID, userID int64, disabled bool, by audit.Actor, now time.Time) (db.User, error) {
	u, err := lockMember(ctx, q, tenantID, userID)
	if err != nil {
		return db.User{}, err
	}
	if (u.DisabledAt != nil) == disabled {
		state := map[bool]string{true: "disabled", false: "active"}[disabled]
		return db.User{}, errs.New(errs.Invalid, "", u.Email+" is already "+state+".")
	}
	diff := map[string]any{"email": u.Email}
	action := "user.enabled"
	var at *time.Time
	if disabled {
		if last, err := lastActiveOwner(ctx, q, u); err != nil {
			return db.User{}, err
		} else if last {
			return db.User{}, errLastOwner
		}
		at, action = &now, "user.disabled"
	}
	if err := q.SetUserDisabled(ctx, db.SetUserDisabledParams{TenantID: tenantID, ID: u.ID, DisabledAt: at}); err != nil {
		return db.User{}, err
	}
	if disabled {
		ended, err := q.DeleteUserSessions(ctx, &u.ID)
		if err != nil {
			return db.User{}, err
		}
		diff["sessions_ended"] = ended
	}
	by.TenantID = &tenantID
	if err := audit.Record(ctx, q, keys, now, by.Event(action, "user", strconv.FormatInt(u.ID, 10), diff)); err != nil {
		return db.User{}, err
	}
	u.DisabledAt = at
	return u, nil
}

// ResetMFA removes a member's authenticator and recovery codes and ends
// their sessions, in q's transaction, and records user.mfa_reset. Their
// next sign-in goes to enrolment.
func ResetMFA(ctx context.Context, q *db.Queries, keys *audit.Keys, tenantID, userID int64, by audit.Actor, now time.Time) (db.User, error) {
	u, err := lockMember(ctx, q, tenantID, userID)
	if err != nil {
		return db.User{}, err
	}
	if u.TotpEnrolledAt == nil {
		return db.User{}, errs.New(errs.Invalid, "", u.Email+" has no authenticator set up: their next sign-in already goes to enrolment.")
	}
	if err := q.ResetUserTOTP(ctx, db.ResetUserTOTPParams{TenantID: tenantID, ID: u.ID}); err != nil {
		return db.User{}, err
	}
	if err := q.DeleteRecoveryCodes(ctx, u.ID); err != nil {
		return db.User{}, err
	}
	ended, err := q.DeleteUserSessions(ctx, &u.ID)
	if err != nil {
		return db.User{}, err
	}
	by.TenantID = &tenantID
	if err := audit.Record(ctx, q, keys, now, by.Event("user.mfa_reset", "user", strconv.FormatInt(u.ID, 10),
		map[string]any{"email": u.Email, "sessions_ended": ended})); err != nil {
		return db.User{}, err
	}
	u.TotpEnrolledAt, u.TotpSecretEnc = nil, nil
	return u, nil
}

// MemberByEmail finds a user of the tenant with slug tenantSlug by email,
// for the command line. Unknown tenants and emails are ErrInvalidInput.
func MemberByEmail(ctx context.Context, q *db.Queries, tenantSlug, email string) (db.Tenant, db.User, error) {
	t, err := q.GetTenantBySlug(ctx, tenantSlug)
	if errors.Is(err, db.ErrNotFound) {
		return db.Tenant{}, db.User{}, invalid("tenant", "no tenant with slug %q", tenantSlug)
	} else if err != nil {
		return db.Tenant{}, db.User{}, err
	}
	email = NormalizeEmail(email)
	u, err := q.GetMemberByEmail(ctx, db.GetMemberByEmailParams{TenantID: t.ID, Email: email})
	if errors.Is(err, db.ErrNotFound) {
		return db.Tenant{}, db.User{}, invalid("email", "no user with email %q in tenant %s", email, t.Slug)
	}
	return t, u, err
}

func article(role string) string {
	if role == RoleOwner || role == RoleAdmin {
		return "an"
	}
	return "a"
}
