package apikey

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"time"

	"keyward/db"
	"keyward/web/audit"
)

// This file acts on reports that a key leaked: from a secret-scanning
// partner such as GitHub (web/secretscan verifies those) or from anyone
// through the public report route. The reporter learns only whether a
// token is a real Keyward key (the partner) or nothing at all (the public);
// the key's organisation learns everything, in its audit trail and on the
// key's page.

// Leak is what a report says about where a token was found. Every field
// comes from outside: Clean bounds it and blanks any key in it.
type Leak struct {
	// URL is where the token was found, as the reporter gave it; may be
	// empty.
	URL string
	// Source says who found it and how: "secret scanning: commit",
	// "public report".
	Source string
	// Note is a public reporter's free text; may be empty.
	Note string
}

// The bounds of a report's text, in bytes.
const (
	maxLeakURL    = 2000
	maxLeakSource = 200
	maxLeakNote   = 500
)

// keyLike finds key-shaped text in a report's own words, so that a URL
// or note quoting a key (this one or another) stores only its prefix.
var keyLike = regexp.MustCompile(`kw_[a-z]+_[0-9A-Za-z]{` + strconv.Itoa(randomLen+checksumLen) + `}`)

// Clean makes a report's text storable: valid UTF-8 without NUL, bounded,
// and with every key it quotes cut to its display prefix.
func (l Leak) Clean() Leak {
	scrub := func(s string, max int) string {
		s = keyLike.ReplaceAllStringFunc(s, func(k string) string {
			if p, err := Parse(k); err == nil {
				return DisplayPrefix(p) + "…"
			}
			return k[:len(k)-randomLen-checksumLen+PrefixLen] + "…"
		})
		return audit.CleanText(s, max)
	}
	return Leak{URL: scrub(l.URL, maxLeakURL), Source: scrub(l.Source, maxLeakSource), Note: scrub(l.Note, maxLeakNote)}
}

// LeakOutcome is what a reported token turned out to be.
type LeakOutcome int

const (
	// LeakNotOurs: malformed, or no key of any organisation. Nothing was
	// changed.
	LeakNotOurs LeakOutcome = iota
	// LeakDead: a real key that no longer works (revoked, or a secret
	// rotated out whose grace has ended). Nothing was changed.
	LeakDead
	// LeakHandled: a live key; its organisation's leak policy was applied
	// and api_key.leaked recorded.
	LeakHandled
)

// What the policy did, as api_key.leaked's "action" says.
const (
	LeakActionRevoked         = "revoked"
	LeakActionDisabled        = "disabled"
	LeakActionAlreadyDisabled = "already_disabled"
	// LeakActionSecretEnded: the reported secret had been rotated out and
	// was still in its grace window; the grace ended at once, and the key's
	// current secret, which was not reported, goes on working.
	LeakActionSecretEnded = "secret_ended"
)

// ReportLeak handles one reported token. A malformed token costs no
// database work; every well-formed one costs the same lookup by hash,
// found or not. A live key of any organisation (active, disabled or
// expired, but not revoked) gets that organisation's leak policy, in one
// transaction with its audit events: revoked (through Revoke, so every
// instance's cache drops it at once) or disabled; a reported secret that
// was rotated out and is still in its grace stops at once instead (the
// key's current secret was not reported). The key is marked leaked, with
// where and by whom, and api_key.leaked records url, source, the action
// and the secret's display prefix, never the token. by is the reporter as
// the audit trail names it (the system, with its own id).
func (s *Service) ReportLeak(ctx context.Context, token string, leak Leak, by audit.Actor) (LeakOutcome, error) {
	parsed, err := Parse(token)
	if err != nil {
		return LeakNotOurs, nil
	}
	h := hashKey(token)
	row, err := s.Store.GetKeyForVerify(ctx, h[:])
	if errors.Is(err, db.ErrNotFound) {
		return LeakNotOurs, nil
	}
	if err != nil {
		return LeakNotOurs, err
	}
	if Environment(row.APIKey.Environment) != parsed.Env {
		return LeakNotOurs, nil // the verifier refuses it too: not a key we issued
	}
	if row.APIKey.RevokedAt != nil {
		return LeakDead, nil
	}
	leak = leak.Clean()
	out := LeakDead
	err = s.Store.InTx(ctx, func(q *db.Queries) error {
		out = LeakDead
		now := s.Now()
		tenantID, id := row.APIKey.TenantID, row.APIKey.ID
		k, err := lockKey(ctx, q, tenantID, id)
		if errors.Is(err, ErrRevoked) {
			return nil // revoked meanwhile
		}
		if err != nil {
			return err
		}
		// Read the secret again under the key's lock: every rotation and
		// grace change takes the same lock.
		sec, err := q.GetKeyForVerify(ctx, h[:])
		if err != nil {
			return err
		}
		p, err := LoadPolicy(ctx, q, tenantID)
		if err != nil {
			return err
		}
		var action string
		switch {
		case sec.SecretExpiresAt != nil && !sec.SecretExpiresAt.After(now):
			return nil // rotated out and over: it works nowhere
		case sec.SecretExpiresAt != nil:
			action = LeakActionSecretEnded
			err = EndGrace(ctx, q, s.Audit, tenantID, id, sec.Prefix, by, now)
		case p.Leak() == LeakDisable && k.DisabledAt != nil:
			action = LeakActionAlreadyDisabled
		case p.Leak() == LeakDisable:
			action = LeakActionDisabled
			err = SetDisabled(ctx, q, s.Audit, tenantID, id, true, by, now)
		default:
			action = LeakActionRevoked
			err = Revoke(ctx, q, s.Audit, tenantID, id, by, now)
		}
		if err != nil {
			return err
		}
		if err := q.MarkAPIKeyLeaked(ctx, db.MarkAPIKeyLeakedParams{TenantID: tenantID, ID: id, LeakedAt: &now,
			LeakedUrl: leak.URL, LeakedSource: leak.Source, LeakedPrefix: sec.Prefix}); err != nil {
			return err
		}
		diff := map[string]any{"prefix": sec.Prefix, "url": leak.URL, "source": leak.Source, "action": action}
		if leak.Note != "" {
			diff["note"] = leak.Note
		}
		out = LeakHandled
		return record(ctx, q, s.Audit, now, by, "api_key.leaked", k, diff)
	})
	if err != nil {
		return LeakNotOurs, err
	}
	return out, nil
}

// LeakedWithin is how far back the developers overview lists keys
// reported leaked.
const LeakedWithin = 30 * 24 * time.Hour
