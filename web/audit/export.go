package audit

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"keyward/db"
)

// This file writes a tenant's events as CSV or JSON Lines, for the audit
// log page's exports. Each row carries every field the event's hash covers,
// exactly as hashed, with the chain id, sequence number, previous hash,
// hash and algorithm, so a receiver can recompute the chain without
// Keyward (docs/audit-events.md says how); "summary" is the event in
// words, for people: it is not hashed, and in CSV its lines are joined
// with "; " past splitting back.

// ExportColumns are the exported fields, in CSV column order.
var ExportColumns = []string{
	"chain_id", "seq", "tenant_id", "occurred_at", "actor_type", "actor_id", "action", "target_type", "target_id",
	"ip", "user_agent", "diff", "prev_hash", "hash", "hash_alg", "summary",
}

// Export formats.
const (
	FormatCSV   = "csv"
	FormatJSONL = "jsonl"
)

// exportRow is one event as exported: text exactly as the hash covers it
// (tenant id in decimal, the time in RFC 3339 with up to nine fractional
// digits in UTC, the diff's stored bytes), hashes in lowercase hex.
type exportRow struct {
	ChainID    int64    `json:"chain_id"`
	Seq        int64    `json:"seq"`
	TenantID   string   `json:"tenant_id"`
	OccurredAt string   `json:"occurred_at"`
	ActorType  string   `json:"actor_type"`
	ActorID    string   `json:"actor_id"`
	Action     string   `json:"action"`
	TargetType string   `json:"target_type"`
	TargetID   string   `json:"target_id"`
	IP         string   `json:"ip"`
	UserAgent  string   `json:"user_agent"`
	Diff       string   `json:"diff"`
	PrevHash   string   `json:"prev_hash"`
	Hash       string   `json:"hash"`
	HashAlg    string   `json:"hash_alg"`
	Summary    []string `json:"summary"`
}

func exportRowOf(e db.AuditEvent) exportRow {
	tenant := ""
	if e.TenantID != nil {
		tenant = strconv.FormatInt(*e.TenantID, 10)
	}
	return exportRow{
		ChainID: e.ChainID, Seq: e.Seq, TenantID: tenant, OccurredAt: e.OccurredAt.UTC().Format(time.RFC3339Nano),
		ActorType: e.ActorType, ActorID: e.ActorID, Action: e.Action, TargetType: e.TargetType, TargetID: e.TargetID,
		IP: e.Ip, UserAgent: e.UserAgent, Diff: string(e.Diff),
		PrevHash: hex.EncodeToString(e.PrevHash), Hash: hex.EncodeToString(e.Hash), HashAlg: e.HashAlg,
		Summary: Describe(e.Action, e.Diff),
	}
}

// SpreadsheetSafe protects a CSV cell from being read as a formula by a
// spreadsheet: a cell that starts with =, +, -, @, a tab or a carriage
// return gets a single quote in front. So does one that starts with a
// single quote, so the escape can always be undone: UnescapeCell removes
// one leading quote from any cell that has one.
func SpreadsheetSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r'", rune(s[0])) {
		return "'" + s
	}
	return s
}

// UnescapeCell undoes SpreadsheetSafe.
func UnescapeCell(s string) string { return strings.TrimPrefix(s, "'") }

// Export writes the tenant's events matching f to w in format, oldest
// first, a batch at a time: each batch is written through to w and flush
// is called, so the memory an export holds does not grow with its size.
// An error after the first bytes were written leaves the output cut
// short; the caller cannot turn it into an error page any more.
func (l *Log) Export(ctx context.Context, tenantID int64, f Filter, format string, w io.Writer, flush func() error) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	after := func() error {
		if err := bw.Flush(); err != nil {
			return err
		}
		return flush()
	}
	switch format {
	case FormatCSV:
		// Rows end in LF: UseCRLF would also turn a newline inside a
		// cell into CR LF, changing the bytes its hash covers.
		cw := csv.NewWriter(bw)
		if err := cw.Write(ExportColumns); err != nil {
			return err
		}
		cells := make([]string, len(ExportColumns))
		return l.Each(ctx, tenantID, f, func(e db.AuditEvent) error {
			r := exportRowOf(e)
			copy(cells, []string{strconv.FormatInt(r.ChainID, 10), strconv.FormatInt(r.Seq, 10), r.TenantID, r.OccurredAt,
				r.ActorType, r.ActorID, r.Action, r.TargetType, r.TargetID, r.IP, r.UserAgent, r.Diff,
				r.PrevHash, r.Hash, r.HashAlg, strings.Join(r.Summary, "; ")})
			for i, c := range cells {
				cells[i] = SpreadsheetSafe(c)
			}
			return cw.Write(cells)
		}, func() error {
			cw.Flush()
			if err := cw.Error(); err != nil {
				return err
			}
			return after()
		})
	case FormatJSONL:
		enc := json.NewEncoder(bw) // one object a line: Encode ends each with "\n"
		return l.Each(ctx, tenantID, f, func(e db.AuditEvent) error {
			r := exportRowOf(e)
			if r.Summary == nil {
				r.Summary = []string{}
			}
			return enc.Encode(r)
		}, after)
	}
	return fmt.Errorf("audit: unknown export format %q", format)
}
