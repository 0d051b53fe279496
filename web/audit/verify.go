package audit

import (
	"bytes"
	"context"
	"fmt"

	"keyward/db"
)

// Break describes the first broken link found in a chain.
type Break struct {
	ChainID int64
	Seq     int64
	EventID int64
	Reason  string
}

func (b Break) String() string {
	owner := fmt.Sprintf("tenant %d", b.ChainID)
	if b.ChainID == 0 {
		owner = "events of no tenant"
	}
	return fmt.Sprintf("%s: event %d at seq %d: %s", owner, b.EventID, b.Seq, b.Reason)
}

// Report is what Verify found.
type Report struct {
	Chains int
	Events int
	Broken *Break // nil when every chain is intact
}

// Verify walks every chain in order and stops at the first broken link: a
// gap in the sequence, a prev_hash that is not the previous event's hash, an
// event whose fields no longer match its hash, or a chain that ends before
// its recorded head.
func Verify(ctx context.Context, q *db.Queries) (Report, error) {
	var rep Report
	heads, err := q.ListAuditChainHeads(ctx)
	if err != nil {
		return rep, err
	}
	for _, head := range heads {
		chain := head.ChainID
		rep.Chains++
		prev, seq := genesis, int64(0)
		for {
			page, err := q.ListAuditEventsInChain(ctx, db.ListAuditEventsInChainParams{ChainID: chain, Seq: seq, Limit: 1000})
			if err != nil {
				return rep, err
			}
			for _, e := range page {
				rep.Events++
				brk := func(reason string) (Report, error) {
					rep.Broken = &Break{ChainID: chain, Seq: e.Seq, EventID: e.ID, Reason: reason}
					return rep, nil
				}
				switch {
				case e.Seq != seq+1:
					return brk(fmt.Sprintf("sequence jumps from %d to %d (an event is missing)", seq, e.Seq))
				case !bytes.Equal(e.PrevHash, prev):
					return brk("prev_hash does not match the previous event's hash")
				case !bytes.Equal(Hash(e), e.Hash):
					return brk("the event's fields do not match its hash (it was altered)")
				}
				prev, seq = e.Hash, e.Seq
			}
			if len(page) < 1000 {
				break
			}
		}
		// The head remembers the last link: events cut off the end of a
		// chain, or a whole chain, show here.
		if seq != head.Seq || !bytes.Equal(prev, head.Hash) {
			rep.Broken = &Break{ChainID: chain, Seq: seq + 1, Reason: fmt.Sprintf("the chain ends at seq %d but its head says %d (events were removed from the end)", seq, head.Seq)}
			return rep, nil
		}
	}
	return rep, nil
}
