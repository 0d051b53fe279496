package usage

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"keyward/db"
)

// Reader reads the request log for the portal: the tenant's rows only.
type Reader struct {
	Store *db.Store
}

// LogFilter selects rows: a key, a status range, and the cursor (the last
// row shown: its time and request id).
type LogFilter struct {
	KeyID                string
	StatusMin, StatusMax int
	Before               time.Time
	BeforeRequestID      string
	Limit                int
}

// List returns up to f.Limit rows, newest first, and whether more follow.
func (r *Reader) List(ctx context.Context, tenantID int64, f LogFilter) ([]Request, bool, error) {
	rows, err := r.Store.ListRequestLogs(ctx, db.ListRequestLogsParams{
		TenantID: tenantID, KeyID: f.KeyID, StatusMin: int32(f.StatusMin), StatusMax: int32(f.StatusMax),
		Before: f.Before, BeforeRequestID: f.BeforeRequestID, Lim: int32(f.Limit + 1),
	})
	if err != nil {
		return nil, false, err
	}
	more := len(rows) > f.Limit
	if more {
		rows = rows[:f.Limit]
	}
	out := make([]Request, len(rows))
	for i, r := range rows {
		out[i] = Request{TenantID: r.TenantID, At: r.At, KeyID: uuid.UUID(r.KeyID.Bytes).String(), KeyPrefix: r.KeyPrefix, Method: r.Method,
			Path: r.Path, Status: int(r.Status), Code: text(r.Code), UserAgent: text(r.UserAgent), IP: r.Ip,
			Latency: time.Duration(r.LatencyUs) * time.Microsecond, RequestID: r.RequestID, Count: int(r.Count)}
	}
	return out, more, nil
}

func text(t pgtype.Text) string {
	if !t.Valid {
		return ""
	}
	return t.String
}

// nullText stores "" as NULL.
func nullText(s string) pgtype.Text { return pgtype.Text{String: s, Valid: s != ""} }
