package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"fmt"

	"keyward/db"
)

// Break describes the first problem found in a chain: a broken link
// (EventID set) or a head that does not match its chain (EventID 0).
type Break struct {
	ChainID int64
	Seq     int64
	EventID int64
	Reason  string
}

func (b Break) String() string {
	if b.EventID == 0 {
		return fmt.Sprintf("%s: %s", ChainName(b.ChainID), b.Reason)
	}
	return fmt.Sprintf("%s: event %d at seq %d: %s", ChainName(b.ChainID), b.EventID, b.Seq, b.Reason)
}

// ChainName names a chain by whose events it holds: "tenant 3", or
// "events of no tenant" for chain 0.
func ChainName(chain int64) string {
	if chain == 0 {
		return "events of no tenant"
	}
	return fmt.Sprintf("tenant %d", chain)
}

// Report is what Verify found.
type Report struct {
	Chains int
	Events int
	// Breaks holds the first problem of each chain that has one, in
	// chain order.
	Breaks []Break
	// Broken is the first of Breaks, nil when every chain is intact.
	Broken *Break
}

// Verify walks every chain that has events or a head, and reports each
// chain's first problem:
//   - a gap in the sequence, a prev_hash that is not the previous event's
//     hash, or an event whose fields no longer match its hash (checked
//     with the event's algorithm: HMAC-SHA256 under keys, or SHA-256 for
//     events written before the chain was keyed);
//   - a SHA-256 event after a keyed one: whoever wrote it had no key;
//   - a head that is missing, or that does not name the chain's last
//     event (events removed from the end, or the head moved back);
//   - a chain with events none of which is keyed: never sealed since the
//     upgrade, or rebuilt with plain SHA-256 by someone without the key.
//
// Events cut from the end of a chain whose head was moved back with them
// leave an intact, shorter chain: only checkpoints kept outside the
// database show those (VerifyCheckpoints).
func Verify(ctx context.Context, q *db.Queries, keys *Keys) (Report, error) {
	var rep Report
	if keys == nil {
		return rep, errNoKeys
	}
	ids, err := q.ListAuditChainIDs(ctx)
	if err != nil {
		return rep, err
	}
	list, err := q.ListAuditChainHeads(ctx)
	if err != nil {
		return rep, err
	}
	heads := make(map[int64]db.AuditChainHead, len(list))
	for _, h := range list {
		heads[h.ChainID] = h
	}
	for _, chain := range ids {
		rep.Chains++
		end, brk, err := walk(ctx, q, keys, chain, &rep)
		if err != nil {
			return rep, err
		}
		if brk == nil {
			head, ok := heads[chain]
			brk = checkHead(chain, end, head, ok)
		}
		if brk == nil && end.seq > 0 && !end.keyed {
			// SHA-256 links show accidents, not forgery: anyone who can
			// write to the database can rebuild them. Every chain is
			// keyed from its first event or sealed by its marker (at the
			// next event, or the next checkpoint job), so a chain without
			// a keyed event is either from before the upgrade and never
			// sealed, or rebuilt by someone without the key.
			brk = &Break{ChainID: chain, Seq: end.seq, Reason: "none of its events is keyed: written before the chain was keyed " +
				"and never sealed (keyward serve seals such chains at its next checkpoint), or rewritten without the key"}
		}
		if brk != nil {
			rep.Breaks = append(rep.Breaks, *brk)
		}
	}
	if len(rep.Breaks) > 0 {
		rep.Broken = &rep.Breaks[0]
	}
	return rep, nil
}

// chainEnd is where a walk of a chain ended: its last event's place and
// hash, and whether any event was keyed.
type chainEnd struct {
	seq   int64
	hash  []byte
	keyed bool
}

// walk checks a chain's links in order and stops at the first broken one.
func walk(ctx context.Context, q *db.Queries, keys *Keys, chain int64, rep *Report) (chainEnd, *Break, error) {
	const page = 1000
	end := chainEnd{hash: genesis}
	for {
		events, err := q.ListAuditEventsInChain(ctx, db.ListAuditEventsInChainParams{ChainID: chain, Seq: end.seq, Limit: page})
		if err != nil {
			return end, nil, err
		}
		for _, e := range events {
			rep.Events++
			brk := func(reason string) (chainEnd, *Break, error) {
				return end, &Break{ChainID: chain, Seq: e.Seq, EventID: e.ID, Reason: reason}, nil
			}
			if e.Seq != end.seq+1 {
				return brk(fmt.Sprintf("sequence jumps from %d to %d (an event is missing)", end.seq, e.Seq))
			}
			if !bytes.Equal(e.PrevHash, end.hash) {
				return brk("prev_hash does not match the previous event's hash")
			}
			switch e.HashAlg {
			case AlgHMAC:
				if !hmac.Equal(keys.mac(e), e.Hash) {
					return brk("the event's fields do not match its HMAC (it was altered, or KEYWARD_SECRET_KEY is not the key it was written with)")
				}
				end.keyed = true
			case AlgSHA256:
				if end.keyed {
					return brk("a SHA-256 event after the chain became keyed (written by someone without the secret key)")
				}
				if !bytes.Equal(Hash(e), e.Hash) {
					return brk("the event's fields do not match its hash (it was altered)")
				}
			default:
				return brk(fmt.Sprintf("unknown hash algorithm %q", e.HashAlg))
			}
			end.seq, end.hash = e.Seq, e.Hash
		}
		if len(events) < page {
			return end, nil, nil
		}
	}
}

// checkHead compares a chain's head with where its events end. The head
// remembers the last link: events cut off the end of a chain, or a whole
// chain, show here.
func checkHead(chain int64, end chainEnd, head db.AuditChainHead, ok bool) *Break {
	brk := func(format string, args ...any) *Break {
		return &Break{ChainID: chain, Seq: end.seq, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case !ok:
		return brk("the chain has events up to seq %d but no head (its audit_chain_heads row was deleted)", end.seq)
	case head.Seq > end.seq:
		return brk("the chain ends at seq %d but its head says %d (events were removed from the end)", end.seq, head.Seq)
	case head.Seq < end.seq:
		return brk("the chain goes on to seq %d but its head says %d (the head was moved back)", end.seq, head.Seq)
	case !bytes.Equal(head.Hash, end.hash):
		return brk("the head's hash is not that of the event at seq %d (the head was altered)", end.seq)
	case end.keyed && !head.Keyed:
		return brk("the head says the chain is not keyed, but it is (the head was altered)")
	case !end.keyed && head.Keyed && end.seq > 0:
		// A keyed head's chain has a keyed event: its first, or the
		// marker that keyed it.
		return brk("the head says the chain is keyed, but none of its events is (they were rewritten without the key)")
	}
	return nil
}
