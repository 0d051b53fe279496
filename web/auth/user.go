package auth

import (
	"strconv"
	"time"

	"keyward/db"
	"keyward/web/audit"
	"keyward/web/errs"
)

// ErrSessionEnded: the session's user no longer exists or is disabled.
var ErrSessionEnded = errs.New(errs.Unauthorized, "", "Your session has ended: sign in again.")

// User is a portal user as pages and services see one: never a password
// hash or a TOTP secret.
type User struct {
	ID                 int64
	TenantID           int64
	Email              string
	Role               string
	TOTPEnrolled       bool
	MustChangePassword bool
	CreatedAt          time.Time
}

// CanManageKeys: owners and admins manage keys; viewers read.
func (u User) CanManageKeys() bool { return u.Role == RoleOwner || u.Role == RoleAdmin }

// Tenant is an organisation.
type Tenant struct {
	ID   int64
	Slug string
	Name string
	Plan string
}

// PlanLimit is the plan's default hourly rate limit.
func (t Tenant) PlanLimit() int { return Plans[t.Plan] }

// Origin is where a request came from, for the trail and the throttles.
type Origin struct {
	IP        string
	UserAgent string
}

func (o Origin) actor() audit.Actor {
	return audit.Actor{Type: audit.ActorSystem, IP: o.IP, UserAgent: o.UserAgent}
}

// Caller is a signed-in user acting through one request.
type Caller struct {
	User   User
	Tenant Tenant
	Origin
}

// Actor describes the caller for the audit trail.
func (c Caller) Actor() audit.Actor {
	tid := c.User.TenantID
	return audit.Actor{TenantID: &tid, Type: audit.ActorUser, ID: strconv.FormatInt(c.User.ID, 10), IP: c.IP, UserAgent: c.UserAgent}
}

func userOf(u db.User) User {
	return User{ID: u.ID, TenantID: u.TenantID, Email: u.Email, Role: u.Role, TOTPEnrolled: u.TotpEnrolledAt != nil,
		MustChangePassword: u.MustChangePassword, CreatedAt: u.CreatedAt}
}

func tenantOf(t db.Tenant) Tenant { return Tenant{ID: t.ID, Slug: t.Slug, Name: t.Name, Plan: t.Plan} }
