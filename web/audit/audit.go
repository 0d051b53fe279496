// Package audit owns the audit trail: it appends events to a per-tenant
// chain of HMAC-SHA256 hashes inside the caller's transaction, verifies
// chains, and signs checkpoints of their heads (checkpoint.go). Its keys
// (Keys) come from its callers, derived from KEYWARD_SECRET_KEY; no event
// holds a secret: callers pass diffs of configuration, not keys or codes.
// It must not import echo.
package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"keyward/db"
	"keyward/web/keyring"
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

// Hash algorithms, as audit_events.hash_alg names them.
const (
	// AlgSHA256 is the plain SHA-256 of events written before the chain
	// was keyed. Anyone can compute it: it shows accidents, not forgery.
	AlgSHA256 = "sha256"
	// AlgHMAC is HMAC-SHA256 under the chain key: only a holder of
	// KEYWARD_SECRET_KEY can compute it.
	AlgHMAC = "hmac-sha256"
)

// Actions the trail writes about itself.
const (
	// ActionChainKeyed is the first keyed event of a chain that began
	// with SHA-256 events: its prev_hash is the last SHA-256 hash, so the
	// old part is sealed under the key.
	ActionChainKeyed = "audit.chain_keyed"
	// ActionCheckpoint records a signed checkpoint of the chain's head
	// (Checkpoint is its diff).
	ActionCheckpoint = "audit.checkpoint"
)

// Keys are the audit trail's two keys, both derived from
// KEYWARD_SECRET_KEY (web/keyring): the HMAC key every event's hash is
// made with, and the Ed25519 key that signs checkpoints. web.Build makes
// them from the ring main gives it and hands them to the services, the
// jobs and the shutdown checkpoint; the commands make them from the same
// secret. No package keeps them in a global.
type Keys struct {
	chain []byte
	sign  ed25519.PrivateKey
	// subscriber hears of every event Record appends (Subscribe).
	subscriber Subscriber
}

// A Subscriber hears of every event Record appends, inside the same
// transaction and with the same q, after the event row is written: the
// webhooks (web/webhook) enqueue their deliveries there, so an event and
// its alerts commit together or not at all. An error fails the Record,
// and with it the change. It must be cheap when nobody listens: Record is
// on every audited path.
type Subscriber interface {
	EventRecorded(ctx context.Context, q *db.Queries, ev db.AuditEvent) error
}

// Subscribe installs s on the keys, which every writer of the trail
// already passes to Record, so every event reaches it without its writer
// doing anything. Call it while wiring, before the keys are used: it is
// not safe to call while Record runs.
func (k *Keys) Subscribe(s Subscriber) { k.subscriber = s }

// NewKeys derives the trail's keys from the ring: the HMAC key of purpose
// keyring.PurposeAuditChain, and the Ed25519 key whose seed is the key of
// purpose keyring.PurposeAuditCheckpoint. The same secret always gives the
// same keys, on every instance and after every restart.
func NewKeys(ring *keyring.Ring) *Keys {
	return &Keys{
		chain: ring.Key(keyring.PurposeAuditChain),
		sign:  ed25519.NewKeyFromSeed(ring.Key(keyring.PurposeAuditCheckpoint)),
	}
}

// PublicKey is the key that verifies checkpoints. It is not secret.
func (k *Keys) PublicKey() ed25519.PublicKey { return k.sign.Public().(ed25519.PublicKey) }

// mac is the keyed hash of an event: HMAC-SHA256 over the same bytes as
// Hash.
func (k *Keys) mac(e db.AuditEvent) []byte {
	h := hmac.New(sha256.New, k.chain)
	encode(h, e)
	return h.Sum(nil)
}

// errNoKeys: a writer or a checker was built without the trail's keys.
// Refusing is the only safe answer: an unkeyed event would be forgeable,
// and a chain checked without its key proves nothing.
var errNoKeys = errors.New("audit: no keys for the audit chain")

// Record appends ev to its tenant's chain using q, which should be the
// transaction that makes the change being recorded. now is the
// application's clock at the change. The event is keyed with keys; on a
// chain that still ends with SHA-256 events (written before the chain was
// keyed), an audit.chain_keyed marker is appended first.
func Record(ctx context.Context, q *db.Queries, keys *Keys, now time.Time, ev Event) error {
	if keys == nil {
		return errNoKeys
	}
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
	// Postgres keeps microseconds; truncating first keeps the hash of
	// what is stored equal to the hash of what was written.
	at := now.UTC().Truncate(time.Microsecond)
	seq, prev, err := seal(ctx, q, keys, at, head)
	if err != nil {
		return err
	}
	row := db.AuditEvent{
		ChainID: chain, TenantID: ev.TenantID, OccurredAt: at,
		ActorType: ev.ActorType, ActorID: CleanText(ev.ActorID, 200), Action: ev.Action,
		TargetType: ev.TargetType, TargetID: CleanText(ev.TargetID, 200),
		Ip: CleanText(ev.IP, 64), UserAgent: CleanText(ev.UserAgent, 512), Diff: diff,
	}
	if row, err = appendEvent(ctx, q, keys, row, seq, prev); err != nil {
		return err
	}
	if err := q.UpdateAuditChainHead(ctx, db.UpdateAuditChainHeadParams{ChainID: chain, Seq: row.Seq, Hash: row.Hash}); err != nil {
		return err
	}
	if keys.subscriber == nil {
		return nil
	}
	return keys.subscriber.EventRecorded(ctx, q, row)
}

// seal appends the audit.chain_keyed marker to a chain whose head, held
// FOR UPDATE by the caller, is not keyed yet (its events were written
// before the chain was keyed), and returns where the chain then ends. A
// keyed or empty chain is left as it is. The marker's prev_hash is the
// last SHA-256 hash, so the old part is sealed under the key.
func seal(ctx context.Context, q *db.Queries, keys *Keys, at time.Time, head db.AuditChainHead) (int64, []byte, error) {
	if head.Keyed || head.Seq == 0 {
		return head.Seq, head.Hash, nil
	}
	marker := db.AuditEvent{
		ChainID: head.ChainID, OccurredAt: at, ActorType: ActorSystem,
		Action: ActionChainKeyed, TargetType: "audit_chain", TargetID: strconv.FormatInt(head.ChainID, 10),
		Diff: fmt.Appendf(nil, `{"sha256_events":%d}`, head.Seq),
	}
	if head.ChainID != 0 {
		marker.TenantID = &head.ChainID
	}
	m, err := appendEvent(ctx, q, keys, marker, head.Seq, head.Hash)
	return m.Seq, m.Hash, err
}

// SealChains keys every chain whose head is not keyed: each gets its
// audit.chain_keyed marker (the one Record appends before a chain's next
// event), in a transaction of its own that holds the chain's head. After
// it, a chain with no keyed event is one someone rewrote without the key,
// and Verify reports it. It returns how many chains it sealed; errors are
// joined.
func SealChains(ctx context.Context, store *db.Store, keys *Keys, now time.Time) (int, error) {
	if keys == nil {
		return 0, errNoKeys
	}
	chains, err := store.ListUnkeyedAuditChains(ctx)
	if err != nil {
		return 0, err
	}
	at := now.UTC().Truncate(time.Microsecond)
	n := 0
	var errs []error
	for _, chain := range chains {
		sealed := false
		err := store.InTx(ctx, func(q *db.Queries) error {
			sealed = false
			head, err := q.LockAuditChainHead(ctx, chain)
			if err != nil || head.Keyed || head.Seq == 0 {
				return err // another instance was first
			}
			seq, hash, err := seal(ctx, q, keys, at, head)
			if err != nil {
				return err
			}
			sealed = true
			return q.UpdateAuditChainHead(ctx, db.UpdateAuditChainHeadParams{ChainID: chain, Seq: seq, Hash: hash})
		})
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("sealing %s: %w", ChainName(chain), err))
		case sealed:
			n++
		}
	}
	return n, errors.Join(errs...)
}

// appendEvent stores row as the event after (seq, prev), keyed, and
// returns it as stored, with its place and hash.
func appendEvent(ctx context.Context, q *db.Queries, keys *Keys, row db.AuditEvent, seq int64, prev []byte) (db.AuditEvent, error) {
	row.Seq, row.PrevHash, row.HashAlg = seq+1, prev, AlgHMAC
	row.Hash = keys.mac(row)
	_, err := q.InsertAuditEvent(ctx, db.InsertAuditEventParams{
		ChainID: row.ChainID, Seq: row.Seq, TenantID: row.TenantID, OccurredAt: row.OccurredAt,
		ActorType: row.ActorType, ActorID: row.ActorID, Action: row.Action,
		TargetType: row.TargetType, TargetID: row.TargetID, Ip: row.Ip, UserAgent: row.UserAgent,
		Diff: row.Diff, PrevHash: row.PrevHash, Hash: row.Hash, HashAlg: row.HashAlg,
	})
	return row, err
}

// Hash is the plain SHA-256 of an event (AlgSHA256): over the previous
// hash and every stored field, each length-prefixed so no two different
// events encode the same. Keyed events are HMAC-SHA256 over the same
// bytes.
func Hash(e db.AuditEvent) []byte {
	h := sha256.New()
	encode(h, e)
	return h.Sum(nil)
}

// encode writes what an event's hash covers. hash_alg is not part of it:
// whichever algorithm an event claims, it is checked with that one, and
// a SHA-256 event after a keyed one is refused by Verify.
func encode(h hash.Hash, e db.AuditEvent) {
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
	// Seq is the event's place in its tenant's chain.
	Seq    int64
	At     time.Time
	Action string
	// TargetType and TargetID name what the event is about (api_key and
	// the key's id).
	TargetType, TargetID string
	ActorType            string
	ActorID              string
	IP                   string
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
	return Entry{Seq: r.Seq, At: r.OccurredAt, Action: r.Action, TargetType: r.TargetType, TargetID: r.TargetID, ActorType: r.ActorType, ActorID: r.ActorID, IP: r.Ip, Diff: r.Diff}
}
