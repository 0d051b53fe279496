// Package audit owns the audit trail: it appends events to a per-tenant hash
// chain inside the caller's transaction and verifies chains. It never
// receives a secret: callers pass diffs of configuration, not keys or codes.
// It must not import echo.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"keyward/db"
)

// Actor types.
const (
	ActorUser   = "user"
	ActorAPIKey = "api_key"
	ActorSystem = "system"
)

// Event is one entry of the trail.
type Event struct {
	TenantID   *int64 // nil: belongs to no tenant (chain 0)
	ActorType  string
	ActorID    string
	Action     string
	TargetType string
	TargetID   string
	IP         string
	UserAgent  string
	// Diff is marshalled to JSON. Nil becomes {}.
	Diff any
}

// Actor identifies who does something, from where. Handlers build it once
// per request.
type Actor struct {
	TenantID  *int64
	Type      string
	ID        string
	IP        string
	UserAgent string
}

// Event starts an event by this actor.
func (a Actor) Event(action, targetType, targetID string, diff any) Event {
	return Event{
		TenantID: a.TenantID, ActorType: a.Type, ActorID: a.ID,
		Action: action, TargetType: targetType, TargetID: targetID,
		IP: a.IP, UserAgent: a.UserAgent, Diff: diff,
	}
}

var genesis = make([]byte, sha256.Size)

// Record appends ev to its tenant's chain using q, which should be the
// transaction that makes the change being recorded. now is the
// application's clock at the change.
func Record(ctx context.Context, q *db.Queries, now time.Time, ev Event) error {
	chain := int64(0)
	if ev.TenantID != nil {
		chain = *ev.TenantID
	}
	diff := []byte("{}")
	if ev.Diff != nil {
		b, err := json.Marshal(ev.Diff)
		if err != nil {
			return fmt.Errorf("audit: diff: %w", err)
		}
		diff = b
	}
	if ev.ActorType == "" {
		ev.ActorType = ActorSystem
	}
	if err := q.InitAuditChainHead(ctx, db.InitAuditChainHeadParams{ChainID: chain, Hash: genesis}); err != nil {
		return err
	}
	head, err := q.LockAuditChainHead(ctx, chain)
	if err != nil {
		return err
	}
	row := db.AuditEvent{
		ChainID: chain, Seq: head.Seq + 1, TenantID: ev.TenantID,
		// Postgres keeps microseconds; truncating first keeps the hash of
		// what is stored equal to the hash of what was written.
		OccurredAt: now.UTC().Truncate(time.Microsecond),
		ActorType:  ev.ActorType, ActorID: CleanText(ev.ActorID, 200), Action: ev.Action,
		TargetType: ev.TargetType, TargetID: CleanText(ev.TargetID, 200),
		Ip: CleanText(ev.IP, 64), UserAgent: CleanText(ev.UserAgent, 512), Diff: diff,
		PrevHash: head.Hash,
	}
	row.Hash = Hash(row)
	if _, err := q.InsertAuditEvent(ctx, db.InsertAuditEventParams{
		ChainID: row.ChainID, Seq: row.Seq, TenantID: row.TenantID, OccurredAt: row.OccurredAt,
		ActorType: row.ActorType, ActorID: row.ActorID, Action: row.Action,
		TargetType: row.TargetType, TargetID: row.TargetID, Ip: row.Ip, UserAgent: row.UserAgent,
		Diff: row.Diff, PrevHash: row.PrevHash, Hash: row.Hash,
	}); err != nil {
		return err
	}
	return q.UpdateAuditChainHead(ctx, db.UpdateAuditChainHeadParams{ChainID: chain, Seq: row.Seq, Hash: row.Hash})
}

// Hash is SHA-256 over the previous hash and every stored field, each
// length-prefixed so no two different events encode the same.
func Hash(e db.AuditEvent) []byte {
	h := sha256.New()
	var n [8]byte
	put := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	tenant := ""
	if e.TenantID != nil {
		tenant = strconv.FormatInt(*e.TenantID, 10)
	}
	put(e.PrevHash)
	put([]byte(strconv.FormatInt(e.ChainID, 10)))
	put([]byte(strconv.FormatInt(e.Seq, 10)))
	put([]byte(tenant))
	put([]byte(e.OccurredAt.UTC().Format(time.RFC3339Nano)))
	for _, s := range []string{e.ActorType, e.ActorID, e.Action, e.TargetType, e.TargetID, e.Ip, e.UserAgent} {
		put([]byte(s))
	}
	put(e.Diff)
	return h.Sum(nil)
}

// CleanText makes client-supplied text storable: invalid UTF-8 and NUL
// bytes (which Postgres text refuses) become U+FFFD, and the result is cut
// to at most max bytes on a character boundary. A header with odd bytes must
// never make an audit insert, and with it the whole attempt, fail.
func CleanText(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// Entry is a stored event as pages show it.
type Entry struct {
	At        time.Time
	Action    string
	ActorType string
	ActorID   string
	IP        string
	// Diff is the stored JSON diff, exactly as recorded.
	Diff json.RawMessage
}

// ListForTarget returns the newest 100 events of the tenant about one
// target, newest first.
func ListForTarget(ctx context.Context, q *db.Queries, tenantID int64, targetType, targetID string) ([]Entry, error) {
	rows, err := q.ListAuditEventsForTarget(ctx, db.ListAuditEventsForTargetParams{TenantID: &tenantID, TargetType: targetType, TargetID: targetID})
	if err != nil {
		return nil, err
	}
	out := make([]Entry, len(rows))
	for i, r := range rows {
		out[i] = entry(r)
	}
	return out, nil
}

// LatestForTarget returns the tenant's newest event of action about one
// target, or db.ErrNotFound.
func LatestForTarget(ctx context.Context, q *db.Queries, tenantID int64, targetType, targetID, action string) (Entry, error) {
	r, err := q.GetLatestAuditEventForTarget(ctx, db.GetLatestAuditEventForTargetParams{TenantID: &tenantID, TargetType: targetType, TargetID: targetID, Action: action})
	if err != nil {
		return Entry{}, err
	}
	return entry(r), nil
}

func entry(r db.AuditEvent) Entry {
	return Entry{At: r.OccurredAt, Action: r.Action, ActorType: r.ActorType, ActorID: r.ActorID, IP: r.Ip, Diff: r.Diff}
}
