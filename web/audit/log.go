package audit

import (
	"context"
	"math"
	"slices"
	"time"

	"keyward/db"
)

// This file reads a tenant's trail for the audit log page and its
// exports (export.go). A tenant's events are its chain, so their sequence
// numbers order them and serve as the page cursor.

// Filter selects a tenant's events. Empty fields match everything.
type Filter struct {
	Action string
	// ActorType alone matches every actor of that type ("system");
	// with ActorIDs, those actors (a key's name may have been several
	// keys').
	ActorType string
	ActorIDs  []string
	// KeyID keeps the events about one key (target api_key).
	KeyID string
	// From keeps events at or after it, To those before it; zero is no
	// bound.
	From, To time.Time
}

// Cursor is where a page starts: after the event Before (towards older
// events) or, with Newer, after the event After towards newer ones. The
// zero Cursor asks for the newest page.
type Cursor struct {
	Before, After int64
}

// LogPage is a page of events, newest first, and whether older and newer
// events match too.
type LogPage struct {
	Entries      []Entry
	Older, Newer bool
}

// Log reads a tenant's audit trail for the portal. Every read is scoped
// by the tenant.
type Log struct {
	Store *db.Store
}

// params is f as the log queries take it, between two sequence numbers
// (exclusive).
func (f Filter) params(tenantID, after, before int64, limit int) db.ListAuditLogParams {
	to := f.To
	if to.IsZero() {
		to = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	}
	return db.ListAuditLogParams{
		TenantID: tenantID, Action: f.Action, ActorType: f.ActorType, ActorIds: f.ActorIDs, KeyID: f.KeyID,
		FromAt: f.From, ToAt: to, AfterSeq: after, BeforeSeq: before, Lim: int32(limit),
	}
}

// Page returns up to limit of the tenant's events matching f, newest
// first, from c. A "newer" page that reaches the newest event is the
// newest page.
func (l *Log) Page(ctx context.Context, tenantID int64, f Filter, c Cursor, limit int) (LogPage, error) {
	if c.After > 0 {
		rows, err := l.Store.ListAuditLogOldestFirst(ctx, db.ListAuditLogOldestFirstParams(f.params(tenantID, c.After, math.MaxInt64, limit+1)))
		if err != nil {
			return LogPage{}, err
		}
		if len(rows) <= limit {
			return l.Page(ctx, tenantID, f, Cursor{}, limit)
		}
		rows = rows[:limit]
		slices.Reverse(rows)
		return LogPage{Entries: entries(rows), Older: true, Newer: true}, nil
	}
	before := int64(math.MaxInt64)
	if c.Before > 0 {
		before = c.Before
	}
	rows, err := l.Store.ListAuditLog(ctx, f.params(tenantID, 0, before, limit+1))
	if err != nil {
		return LogPage{}, err
	}
	p := LogPage{Older: len(rows) > limit, Newer: c.Before > 0}
	if p.Older {
		rows = rows[:limit]
	}
	p.Entries = entries(rows)
	return p, nil
}

func entries(rows []db.AuditEvent) []Entry {
	out := make([]Entry, len(rows))
	for i, r := range rows {
		out[i] = entry(r)
	}
	return out
}

// exportBatch is how many events an export reads at a time: enough that
// the queries cost little next to writing the rows, few enough that an
// export of any size holds well under a megabyte of them.
const exportBatch = 500

// Each calls fn with every event of the tenant matching f, oldest first,
// as stored (hashes included), reading them in batches by sequence number
// so that the memory it holds does not grow with the trail. It stops at
// the chain's end as it was when it began, and at fn's first error. after
// is called after each batch (an export flushes there).
func (l *Log) Each(ctx context.Context, tenantID int64, f Filter, fn func(db.AuditEvent) error, after func() error) error {
	last, err := l.Store.GetAuditChainLastSeq(ctx, tenantID)
	if err != nil {
		return err
	}
	seq := int64(0)
	for {
		rows, err := l.Store.ListAuditLogOldestFirst(ctx, db.ListAuditLogOldestFirstParams(f.params(tenantID, seq, last+1, exportBatch)))
		if err != nil {
			return err
		}
		for _, r := range rows {
			if err := fn(r); err != nil {
				return err
			}
		}
		if err := after(); err != nil {
			return err
		}
		if len(rows) < exportBatch {
			return nil
		}
		seq = rows[len(rows)-1].Seq
	}
}
