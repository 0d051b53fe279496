package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"keyward/db"
	"keyward/web/audit"
	"keyward/web/errs"
	kwmail "keyward/web/mail"
)

// InvitationTTL is how long an invitation link works.
const InvitationTTL = 72 * time.Hour

// Invitation statuses.
const (
	InvitationPending  = "pending"
	InvitationAccepted = "accepted"
	InvitationRevoked  = "revoked"
	InvitationExpired  = "expired"
)

// Invitation is an invitation as the team page shows it: never its token.
type Invitation struct {
	ID         int64
	Email      string
	Role       string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	AcceptedAt *time.Time
	RevokedAt  *time.Time
	CreatedBy  string // the inviter's email
}

// Status is the invitation's status at now.
func (i Invitation) Status(now time.Time) string {
	switch {
	case i.AcceptedAt != nil:
		return InvitationAccepted
	case i.RevokedAt != nil:
		return InvitationRevoked
	case !i.ExpiresAt.After(now):
		return InvitationExpired
	}
	return InvitationPending
}

// Invited is what Invite returns: the invitation, its link (to show once)
// and whether the link was mailed too.
type Invited struct {
	Invitation Invitation
	Link       string
	// Mailed says the link was handed to the mail server; MailError says
	// why it was not, when a mail server is configured.
	Mailed    bool
	MailError string
}

// The answers an invitation link gets when it no longer works. Each is a
// page of its own, never a 500.
var (
	ErrInvitationUnknown = &errs.Error{Kind: errs.NotFound, Title: "Invitation not found",
		Message: "This invitation link is not valid. Check that you copied the whole link, or ask the owner who invited you for a new one."}
	ErrInvitationExpired = &errs.Error{Kind: errs.NotFound, Title: "Invitation expired",
		Message: "This invitation has expired: links work for 72 hours. Ask the owner who invited you to send a new one."}
	ErrInvitationRevoked = &errs.Error{Kind: errs.NotFound, Title: "Invitation revoked",
		Message: "This invitation was revoked by an owner of the organisation. Ask them for a new one if you still need access."}
	ErrInvitationUsed = &errs.Error{Kind: errs.NotFound, Title: "Invitation already used",
		Message: "This invitation was already accepted: sign in with the email address and password chosen then."}
)

// ErrNoSuchInvitation: no invitation with that id in the caller's
// organisation.
var ErrNoSuchInvitation = errs.New(errs.NotFound, "", "No such invitation in your organisation.")

func invitationOf(r db.Invitation) Invitation {
	return Invitation{ID: r.ID, Email: r.Email, Role: r.Role, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt,
		AcceptedAt: r.AcceptedAt, RevokedAt: r.RevokedAt}
}

// Invitations lists the tenant's pending invitations and those that ended
// in the last 30 days, newest first.
func (s *Service) Invitations(ctx context.Context, tenantID int64) ([]Invitation, error) {
	rows, err := s.Store.ListInvitations(ctx, db.ListInvitationsParams{TenantID: tenantID, Since: s.Now().Add(-30 * 24 * time.Hour)})
	if err != nil {
		return nil, err
	}
	out := make([]Invitation, len(rows))
	for i, r := range rows {
		out[i] = Invitation{ID: r.ID, Email: r.Email, Role: r.Role, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt,
			AcceptedAt: r.AcceptedAt, RevokedAt: r.RevokedAt, CreatedBy: r.CreatedByEmail}
	}
	return out, nil
}

// Invite makes an invitation to join the caller's organisation with role,
// valid for InvitationTTL, and returns its link, made of linkBase and a
// random token, to be shown once: only the token's SHA-256 is stored.
// With a mail server configured the link is mailed too, after the
// invitation is committed; a mail that fails leaves the invitation as it
// is, and the page says so.
func (s *Service) Invite(ctx context.Context, by Caller, code, email, role, linkBase string) (Invited, error) {
	if by.User.Role != RoleOwner {
		return Invited{}, ErrOwnerOnly(by.User.Role)
	}
	email = NormalizeEmail(email)
	var fs errs.Fields
	if !validEmail(email) {
		fs.Add("email", "Enter the email address of the person to invite.")
	}
	if !ValidRole(role) {
		fs.Add("role", "Choose owner, admin or viewer.")
	}
	if err := fs.Err(); err != nil {
		return Invited{}, err
	}
	// exists is asked only after the code was checked: it says whether an
	// address has an account in any organisation, which an owner must not
	// learn by posting wrong codes.
	exists := func(q *db.Queries) error {
		if _, err := q.GetUserByEmail(ctx, email); err == nil {
			// Emails are unique across organisations: sign-in asks for
			// nothing else.
			return errs.InvalidField("email", "This address already has a Keyward account, so it cannot be invited.")
		} else if !errors.Is(err, db.ErrNotFound) {
			return err
		}
		return nil
	}
	check := func(q *db.Queries, now time.Time) error {
		n, err := q.CountPendingInvitations(ctx, db.CountPendingInvitationsParams{TenantID: by.Tenant.ID, Email: email, Now: now})
		if err != nil {
			return err
		}
		if n > 0 {
			return &errs.Error{Kind: errs.Conflict, Message: "This address has a pending invitation: revoke it first to send a new link.",
				Fields: []errs.Field{{Name: "email", Message: "This address has a pending invitation: revoke it first to send a new link."}}}
		}
		return nil
	}
	if err := check(s.Store.Queries, s.Now()); err != nil {
		return Invited{}, err // before a code is spent
	}
	token := newToken()
	var inv Invitation
	err := s.Confirm(ctx, by, code, func(q *db.Queries, now time.Time) error {
		if err := stillOwner(ctx, q, by); err != nil {
			return err
		}
		if err := check(q, now); err != nil {
			return err
		}
		if err := exists(q); err != nil {
			return err
		}
		row, err := q.CreateInvitation(ctx, db.CreateInvitationParams{TenantID: by.Tenant.ID, Email: email, Role: role,
			TokenHash: tokenHash(token), CreatedBy: by.User.ID, CreatedAt: now, ExpiresAt: now.Add(InvitationTTL)})
		if err != nil {
			return err
		}
		inv = invitationOf(row)
		inv.CreatedBy = by.User.Email
		return audit.Record(ctx, q, s.Audit, now, by.Actor().Event("user.invited", "invitation", strconv.FormatInt(row.ID, 10),
			map[string]any{"email": email, "role": role, "expires_at": row.ExpiresAt.UTC().Format(time.RFC3339)}))
	})
	if err != nil {
		return Invited{}, err
	}
	out := Invited{Invitation: inv, Link: strings.TrimRight(linkBase, "/") + "/" + token}
	if s.Mail != nil {
		mctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if err := s.Mail.Send(mctx, invitationMail(by, inv, out.Link)); err != nil {
			out.MailError = "The mail could not be sent (" + err.Error() + "): copy the link instead."
		} else {
			out.Mailed = true
		}
	}
	return out, nil
}

func invitationMail(by Caller, inv Invitation, link string) kwmail.Message {
	return kwmail.Message{
		To:      inv.Email,
		Subject: fmt.Sprintf("You are invited to %s on Keyward", by.Tenant.Name),
		Text: fmt.Sprintf("%s invited you to join %s on Keyward as %s %s.\n\n"+
			"Open this link to choose a password and set up two-factor authentication:\n\n%s\n\n"+
			"The link works once, until %s. If you did not expect this invitation, ignore this mail.\n",
			by.User.Email, by.Tenant.Name, article(inv.Role), inv.Role, link, inv.ExpiresAt.UTC().Format("2 January 2006 15:04 MST")),
	}
}

// RevokeInvitation ends a pending invitation: its link stops working.
func (s *Service) RevokeInvitation(ctx context.Context, by Caller, code string, id int64) (Invitation, error) {
	if by.User.Role != RoleOwner {
		return Invitation{}, ErrOwnerOnly(by.User.Role)
	}
	var inv Invitation
	err := s.Confirm(ctx, by, code, func(q *db.Queries, now time.Time) error {
		if err := stillOwner(ctx, q, by); err != nil {
			return err
		}
		row, err := q.GetInvitationForUpdate(ctx, db.GetInvitationForUpdateParams{TenantID: by.Tenant.ID, ID: id})
		if errors.Is(err, db.ErrNotFound) {
			return ErrNoSuchInvitation
		} else if err != nil {
			return err
		}
		inv = invitationOf(row)
		if st := inv.Status(now); st != InvitationPending {
			return errs.New(errs.Conflict, "", "This invitation is already "+st+".")
		}
		if err := q.RevokeInvitation(ctx, db.RevokeInvitationParams{TenantID: by.Tenant.ID, ID: id, Now: &now}); err != nil {
			return err
		}
		inv.RevokedAt = &now
		return audit.Record(ctx, q, s.Audit, now, by.Actor().Event("user.invitation_revoked", "invitation", strconv.FormatInt(id, 10),
			map[string]any{"email": row.Email, "role": row.Role}))
	})
	return inv, err
}

// PendingInvitation is what the accept page shows of an invitation.
type PendingInvitation struct {
	Email     string
	Role      string
	Tenant    string
	ExpiresAt time.Time
}

// OpenInvitation reads the invitation a link's token names, or says why
// the link no longer works.
func (s *Service) OpenInvitation(ctx context.Context, token string) (PendingInvitation, error) {
	row, err := usable(s.Store.Queries.GetInvitationByToken(ctx, tokenHash(token)))(s.Now())
	if err != nil {
		return PendingInvitation{}, err
	}
	t, err := s.Store.GetTenant(ctx, row.TenantID)
	if err != nil {
		return PendingInvitation{}, err
	}
	return PendingInvitation{Email: row.Email, Role: row.Role, Tenant: t.Name, ExpiresAt: row.ExpiresAt}, nil
}

// usable turns a looked-up invitation into the error its state calls for.
func usable(row db.Invitation, err error) func(now time.Time) (db.Invitation, error) {
	return func(now time.Time) (db.Invitation, error) {
		switch {
		case errors.Is(err, db.ErrNotFound):
			return row, ErrInvitationUnknown
		case err != nil:
			return row, err
		}
		switch invitationOf(row).Status(now) {
		case InvitationAccepted:
			return row, ErrInvitationUsed
		case InvitationRevoked:
			return row, ErrInvitationRevoked
		case InvitationExpired:
			return row, ErrInvitationExpired
		}
		return row, nil
	}
}

// Acceptance is the accept form: the new password, twice.
type Acceptance struct {
	Token, Password, Confirm string
}

// AcceptInvitation creates the invited user with the chosen password (the
// policy of every new password), marks the invitation used and records
// user.created, with the new user as the actor. The user then enrols an
// authenticator like any user without one. The password is hashed under
// the hash limit with no connection held; the invitation is locked and
// checked again when the user is created, so a link works once.
func (s *Service) AcceptInvitation(ctx context.Context, in Acceptance, from Origin) (User, error) {
	hash := tokenHash(in.Token)
	row, err := usable(s.Store.GetInvitationByToken(ctx, hash))(s.Now())
	if err != nil {
		return User{}, err
	}
	var fs errs.Fields
	if err := ValidatePassword(in.Password, row.Email); err != nil {
		e, _ := errs.As(err)
		fs.Add("password", e.Message)
	}
	if in.Password != in.Confirm {
		fs.Add("confirm_password", "The passwords do not match.")
	}
	if err := fs.Err(); err != nil {
		return User{}, err
	}
	var pwHash string
	var hashErr error
	if err := s.hashes().Do(ctx, func() { pwHash, hashErr = HashPassword(in.Password) }); err != nil {
		return User{}, err
	}
	if hashErr != nil {
		return User{}, hashErr
	}
	var u db.User
	err = s.Store.InTx(ctx, func(q *db.Queries) error {
		now := s.Now()
		inv, err := usable(q.GetInvitationByTokenForUpdate(ctx, hash))(now)
		if err != nil {
			return err
		}
		// An invitation speaks for the owner who made it: once they are
		// no longer an active owner of the organisation, it is dead.
		by, err := q.GetUser(ctx, inv.CreatedBy)
		if err != nil && !errors.Is(err, db.ErrNotFound) {
			return err
		}
		if err != nil || by.TenantID != inv.TenantID || by.Role != RoleOwner || by.DisabledAt != nil {
			return errs.New(errs.NotFound, "", "This invitation no longer works: the owner who sent it can no longer invite. Ask an owner for a new link.")
		}
		u, err = q.CreateUser(ctx, db.CreateUserParams{TenantID: inv.TenantID, Email: inv.Email, Role: inv.Role, PasswordHash: pwHash})
		if errors.Is(err, db.ErrConflict) {
			return errs.New(errs.Conflict, "", "This email address already has a Keyward account: sign in with it instead.")
		} else if err != nil {
			return err
		}
		if err := q.AcceptInvitation(ctx, db.AcceptInvitationParams{ID: inv.ID, Now: &now, UserID: &u.ID}); err != nil {
			return err
		}
		id := strconv.FormatInt(u.ID, 10)
		actor := audit.Actor{TenantID: &inv.TenantID, Type: audit.ActorUser, ID: id, IP: from.IP, UserAgent: from.UserAgent}
		return audit.Record(ctx, q, s.Audit, now, actor.Event("user.created", "user", id, map[string]any{
			"email": u.Email, "role": u.Role, "invitation_id": inv.ID, "invited_by": inv.CreatedBy}))
	})
	if err != nil {
		return User{}, err
	}
	return userOf(u), nil
}

// newToken is an invitation link's secret: 256 random bits.
func newToken() string {
	b := make([]byte, 32)
	rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}
