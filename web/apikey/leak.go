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
// through the public report route. The reporter learns from the answer
// only whether a token is a real Keyward key (the partner) or nothing at
// all (the public; a live key's report takes longer, which tells its
// holder what it knows); the key's organisation learns everything, in its
// audit trail and on the key's page.

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
	return Leak{URL: scrubKeys(l.URL, maxLeakURL), Source: scrubKeys(l.Source, maxLeakSource), Note: scrubKeys(l.Note, maxLeakNote)}
}

// scrubKeys cuts every key s quotes to its display prefix, then makes s
// storable and at most max bytes long.
func scrubKeys(s string, max int) string {
	s = keyLike.ReplaceAllStringFunc(s, func(k string) string {
		if p, err := Parse(k); err == nil {
			return DisplayPrefix(p) + "…"
		}
		return k[:len(k)-randomLen-checksumLen+PrefixLen] + "…"
	})
	return audit.CleanText(s, max)
}

// maxReporterUserAgent bounds a reporter's user agent, as the audit trail
// bounds every user agent.
const maxReporterUserAgent = 512

// The sources a report's route names, as api_key.leaked's "source" and the
// key's page say them.
const (
	SourceSecretScanning = "secret scanning"
	SourcePublicReport   = "public report"
)

// Report is one report of leaked tokens, as a route parsed it.
type Report struct {
	// Source is the route's: SourceSecretScanning or SourcePublicReport.
	Source string
	Tokens []Reported
	// Note is a public reporter's free text; may be empty.
	Note string
}

// Reported is one token a report names and where it was found. Every
// field comes from outside.
type Reported struct {
	Token string
	// URL is where it was found; may be empty.
	URL string
	// Where is what a partner says it was found in ("commit", "content");
	// it follows the route's source: "secret scanning: commit".
	Where string
}

// LeakRepeatWithin is how long after a key's latest report another report
// of the same secret, under the disable policy and with the key still
// disabled, counts as a repeat: it changes nothing and writes nothing.
// Reports are unsigned in time and cheap to send again; one api_key.leaked
// an hour per secret is enough for the organisation to know it is still
// out there.
const LeakRepeatWithin = time.Hour

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

// HandleReport handles each token of one report by its organisation's
// leak policy (reportLeak) and returns one outcome per token, in order. A
// token named again in the same report is handled once, with where it was
// first named, and shares that outcome: a report naming one key a hundred
// times writes one api_key.leaked. by is the reporter as the audit trail
// names it (the system, with the route's own id); any key in its user
// agent is cut to its display prefix, as in the report's own words.
func (s *Service) HandleReport(ctx context.Context, r Report, by audit.Actor) ([]LeakOutcome, error) {
	by.UserAgent = scrubKeys(by.UserAgent, maxReporterUserAgent)
	outcomes := make([]LeakOutcome, len(r.Tokens))
	seen := make(map[string]int, len(r.Tokens))
	for i, t := range r.Tokens {
		if first, ok := seen[t.Token]; ok {
			outcomes[i] = outcomes[first]
			continue
		}
		seen[t.Token] = i
		source := r.Source
		if t.Where != "" {
			source += ": " + t.Where
		}
		out, err := s.reportLeak(ctx, t.Token, Leak{URL: t.URL, Source: source, Note: r.Note}, by)
		if err != nil {
			return nil, err
		}
		outcomes[i] = out
	}
	return outcomes, nil
}

// reportLeak handles one reported token. A malformed token costs no
// database work; every well-formed one costs a lookup by hash, found or
// not, and a live key then a transaction, so a live key's report takes
// longer: its timing tells the reporter only what the token it holds
// already tells, and the key is handled either way. A live key of any
// organisation (active, disabled or expired, but not revoked) gets that organisation's leak policy, in one
// transaction with its audit events: revoked (through Revoke, so every
// instance's cache drops it at once) or disabled; a reported secret that
// was rotated out and is still in its grace stops at once instead (the
// key's current secret was not reported). The key is marked leaked, with
// where and by whom, and api_key.leaked records url, source, the action
// and the secret's display prefix, never the token. Under the disable
// policy, a report of the secret the key's latest report named, within
// LeakRepeatWithin of it and with the key still disabled, is a repeat:
// LeakHandled, with nothing written.
func (s *Service) reportLeak(ctx context.Context, token string, leak Leak, by audit.Actor) (LeakOutcome, error) {
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
		case p.Leak() == LeakDisable && k.DisabledAt != nil && k.LeakedAt != nil && k.LeakedPrefix == sec.Prefix &&
			now.Sub(*k.LeakedAt) < LeakRepeatWithin:
			out = LeakHandled // a repeat: the first report's event stands
			return nil
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
