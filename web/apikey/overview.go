package apikey

import (
	"context"
	"slices"
	"time"

	"keyward/db"
)

// Overview is what the developers overview shows.
type Overview struct {
	// Leaked: keys reported leaked within LeakedWithin, whatever their
	// status, newest report first.
	Leaked []Key
	// ExpiringSoon: active keys that expire within ExpiringWithin,
	// soonest first.
	ExpiringSoon []Key
	// Idle: active keys unused (or, never used, made) more than IdleAfter
	// ago, longest idle first.
	Idle []Key
	// ProdOpen: active production keys with no IP allowlist.
	ProdOpen []Key
	// Requests and Refusals (4xx and 5xx) made with the tenant's keys
	// over the last 24 hours.
	Requests, Refusals int64
}

// The overview's windows.
const (
	ExpiringWithin = 14 * 24 * time.Hour
	IdleAfter      = 30 * 24 * time.Hour
)

// ExpiresSoon reports whether the key is active and expires within
// ExpiringWithin of now: the overview lists it, and pages mark it.
func ExpiresSoon(k Key, now time.Time) bool {
	return k.Status(now) == StatusActive && k.ExpiresAt != nil && k.ExpiresAt.Sub(now) <= ExpiringWithin
}

// Overview reads the developers overview of a tenant.
func (s *Service) Overview(ctx context.Context, tenantID int64) (Overview, error) {
	now := s.Now()
	rows, err := s.Store.ListLiveAPIKeys(ctx, db.ListLiveAPIKeysParams{TenantID: tenantID, Now: now})
	if err != nil {
		return Overview{}, err
	}
	var o Overview
	for _, r := range rows {
		k := keyOf(r)
		if k.Status(now) != StatusActive {
			continue
		}
		if ExpiresSoon(k, now) {
			o.ExpiringSoon = append(o.ExpiringSoon, k)
		}
		if now.Sub(IdleSince(k)) > IdleAfter {
			o.Idle = append(o.Idle, k)
		}
		if k.Environment == Production && len(k.IPAllowlist) == 0 {
			o.ProdOpen = append(o.ProdOpen, k)
		}
	}
	slices.SortStableFunc(o.ExpiringSoon, func(a, b Key) int { return a.ExpiresAt.Compare(*b.ExpiresAt) })
	slices.SortStableFunc(o.Idle, func(a, b Key) int { return IdleSince(a).Compare(IdleSince(b)) })
	counts, err := s.Store.CountRequestsSince(ctx, db.CountRequestsSinceParams{TenantID: tenantID, Since: now.Add(-24 * time.Hour)})
	if err != nil {
		return Overview{}, err
	}
	o.Requests, o.Refusals = counts.Requests, counts.Refusals
	leaked, err := s.Store.ListLeakedAPIKeys(ctx, db.ListLeakedAPIKeysParams{TenantID: tenantID, Since: now.Add(-LeakedWithin)})
	if err != nil {
		return Overview{}, err
	}
	for _, r := range leaked {
		o.Leaked = append(o.Leaked, keyOf(r))
	}
	return o, nil
}

// Breaching lists the tenant's live keys that break p at now, each with
// the policies it breaks, newest first.
func (s *Service) Breaching(ctx context.Context, tenantID int64, p Policy) ([]Breach, error) {
	now := s.Now()
	rows, err := s.Store.ListLiveAPIKeys(ctx, db.ListLiveAPIKeysParams{TenantID: tenantID, Now: now})
	if err != nil {
		return nil, err
	}
	var out []Breach
	for _, r := range rows {
		k := keyOf(r)
		if b := p.Breaches(k, now); len(b) > 0 {
			out = append(out, Breach{Key: k, Policies: b})
		}
	}
	return out, nil
}

// Breach is a key and the policies it breaks.
type Breach struct {
	Key      Key
	Policies []string
}
