// Package org owns an organisation's settings: its display name and its
// key policies (web/apikey enforces them). Owners change them, each change
// confirmed with a code and audited; it must not import echo.
package org

import (
	"context"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"keyward/db"
	"keyward/web/apikey"
	"keyward/web/audit"
	"keyward/web/auth"
	"keyward/web/errs"
)

// Service reads and changes organisation settings.
type Service struct {
	Store *db.Store
	Auth  *auth.Service
	Keys  *apikey.Service
	Audit *audit.Keys
	Now   func() time.Time
}

// Settings is what the organisation page shows and saves.
type Settings struct {
	Name   string
	Plan   string
	Policy apikey.Policy
}

// Page is the organisation page: its settings and the keys that break
// its policies now.
type Page struct {
	Settings Settings
	// PlanLimit is the plan's default hourly rate limit.
	PlanLimit int
	Breaches  []apikey.Breach
}

// Get reads the tenant's settings and the keys that break its policy.
func (s *Service) Get(ctx context.Context, by auth.Caller) (Page, error) {
	if by.User.Role != auth.RoleOwner {
		return Page{}, auth.ErrOwnerOnly(by.User.Role)
	}
	t, err := s.Store.GetTenant(ctx, by.Tenant.ID)
	if err != nil {
		return Page{}, err
	}
	p, err := apikey.LoadPolicy(ctx, s.Store.Queries, t.ID)
	if err != nil {
		return Page{}, err
	}
	b, err := s.Keys.Breaching(ctx, t.ID, p)
	if err != nil {
		return Page{}, err
	}
	return Page{Settings: Settings{Name: t.Name, Plan: t.Plan, Policy: p}, PlanLimit: auth.Plans[t.Plan], Breaches: b}, nil
}

// DefaultExpiry is the expiry the tenant's create form offers, or nil.
func (s *Service) DefaultExpiry(ctx context.Context, tenantID int64) (*time.Time, error) {
	p, err := apikey.LoadPolicy(ctx, s.Store.Queries, tenantID)
	if err != nil || p.DefaultExpiryDays == 0 {
		return nil, err
	}
	d := s.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, p.DefaultExpiryDays)
	return &d, nil
}

type change struct {
	From any `json:"from"`
	To   any `json:"to"`
}

// Save changes the display name and key policies, confirmed with the
// owner's code, and records tenant.updated with what changed. Existing
// keys are left as they are: the page lists those that break the new
// policy. The plan is not changed here.
func (s *Service) Save(ctx context.Context, by auth.Caller, code string, in Settings) error {
	if by.User.Role != auth.RoleOwner {
		return auth.ErrOwnerOnly(by.User.Role)
	}
	in.Name = strings.TrimSpace(in.Name)
	var fs errs.Fields
	if in.Name == "" || utf8.RuneCountInString(in.Name) > 200 || !utf8.ValidString(in.Name) || strings.ContainsRune(in.Name, 0) {
		fs.Add("name", "The name must be 1 to 200 characters.")
	}
	if err := in.Policy.Check(); err != nil {
		e, _ := errs.As(err)
		fs = append(fs, e.Fields...)
	}
	if err := fs.Err(); err != nil {
		return err
	}
	return s.Auth.Confirm(ctx, by, code, func(q *db.Queries, now time.Time) error {
		me, err := q.GetUser(ctx, by.User.ID)
		if err != nil {
			return err
		}
		if me.Role != auth.RoleOwner || me.DisabledAt != nil {
			return auth.ErrOwnerOnly(me.Role)
		}
		t, err := q.GetTenant(ctx, by.Tenant.ID)
		if err != nil {
			return err
		}
		old, err := apikey.LoadPolicy(ctx, q, t.ID)
		if err != nil {
			return err
		}
		diff := map[string]any{}
		if t.Name != in.Name {
			diff["name"] = change{t.Name, in.Name}
			if err := q.SetTenantName(ctx, db.SetTenantNameParams{ID: t.ID, Name: in.Name}); err != nil {
				return err
			}
		}
		days := func(name string, a, b int) {
			if a != b {
				diff[name] = change{a, b}
			}
		}
		days("max_key_lifetime_days", old.MaxLifetimeDays, in.Policy.MaxLifetimeDays)
		days("idle_key_disable_days", old.IdleDisableDays, in.Policy.IdleDisableDays)
		days("default_key_expiry_days", old.DefaultExpiryDays, in.Policy.DefaultExpiryDays)
		if old.RequireProdAllowlist != in.Policy.RequireProdAllowlist {
			diff["require_production_ip_allowlist"] = change{old.RequireProdAllowlist, in.Policy.RequireProdAllowlist}
		}
		if old.Leak() != in.Policy.Leak() {
			diff["leak_action"] = change{old.Leak(), in.Policy.Leak()}
		}
		if len(diff) == 0 {
			return errs.New(errs.Invalid, "", "Nothing changed: the settings are as they were.")
		}
		if err := apikey.SavePolicy(ctx, q, t.ID, in.Policy, now); err != nil {
			return err
		}
		return audit.Record(ctx, q, s.Audit, now, by.Actor().Event("tenant.updated", "tenant", strconv.FormatInt(t.ID, 10), diff))
	})
}
