package usage

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"keyward/db"
	"keyward/web/errs"
)

// ErrNotFound: no request with that id in the tenant's log.
var ErrNotFound = errs.New(errs.NotFound, "", "No request with this id in your organisation's API request log. "+
	"It may be older than the log keeps, or a refusal counted into another row.")

// Reader reads the request log for the portal: the tenant's rows only.
type Reader struct {
	Store *db.Store
}

// LogFilter selects rows: a key, a status range, a path prefix, client
// addresses, and a time range.
type LogFilter struct {
	KeyID                string
	StatusMin, StatusMax int
	// PathPrefix, when set, keeps the paths that start with it.
	PathPrefix string
	// IPs, when not empty, keeps the rows of these addresses.
	IPs []string
	// From keeps rows at or after it; To keeps rows before it. Zero From
	// is no lower bound; To must be set.
	From, To time.Time
	Limit    int
}

// Cursor is a row of a page already shown, by its time and request id:
// the next page starts after it, towards older rows, or with After
// towards newer ones. The zero Cursor asks for the newest page.
type Cursor struct {
	At        time.Time
	RequestID string
	After     bool
}

// LogPage is one page of the log, newest first, and whether rows older
// and newer than it match too.
type LogPage struct {
	Rows         []Request
	Older, Newer bool
}

// bound is a position in the log's order: (at, request id). A time alone
// has request id "", which sorts before every real one.
type bound struct {
	at  time.Time
	rid string
}

func (b bound) before(o bound) bool {
	return b.at.Before(o.at) || b.at.Equal(o.at) && b.rid < o.rid
}

// Page returns a page of rows matching f, newest first, from c. A page
// asked for with After that finds no more than a page of newer rows is
// the newest page.
func (r *Reader) Page(ctx context.Context, tenantID int64, f LogFilter, c Cursor) (LogPage, error) {
	lo, hi := bound{f.From, ""}, bound{f.To, ""}
	cur := bound{c.At, c.RequestID}
	switch {
	case c.At.IsZero():
	case c.After:
		if lo.before(cur) {
			lo = cur
		}
		rows, err := r.Store.ListRequestLogsAfter(ctx, db.ListRequestLogsAfterParams(params(tenantID, f, lo, hi)))
		if err != nil {
			return LogPage{}, err
		}
		if len(rows) <= f.Limit {
			return r.Page(ctx, tenantID, f, Cursor{})
		}
		rows = rows[:f.Limit]
		slices.Reverse(rows)
		return LogPage{Rows: requests(rows), Older: true, Newer: true}, nil
	default:
		if cur.before(hi) {
			hi = cur
		}
	}
	rows, err := r.Store.ListRequestLogs(ctx, params(tenantID, f, lo, hi))
	if err != nil {
		return LogPage{}, err
	}
	p := LogPage{Older: len(rows) > f.Limit, Newer: !c.At.IsZero()}
	if p.Older {
		rows = rows[:f.Limit]
	}
	p.Rows = requests(rows)
	return p, nil
}

func params(tenantID int64, f LogFilter, lo, hi bound) db.ListRequestLogsParams {
	ips := f.IPs
	if ips == nil {
		ips = []string{}
	}
	return db.ListRequestLogsParams{
		TenantID: tenantID, KeyID: f.KeyID, StatusMin: int32(f.StatusMin), StatusMax: int32(f.StatusMax),
		PathPrefix: f.PathPrefix, Ips: ips, Lo: lo.at, LoRequestID: lo.rid, Hi: hi.at, HiRequestID: hi.rid, Lim: int32(f.Limit + 1),
	}
}

// Get returns one request of the tenant by its request id. at, when known
// (the log page's links carry it), finds it in its day's partition; a
// wrong one is ignored. Without it, the time the id carries
// (NewRequestID) bounds the search to a stretch of two hours.
func (r *Reader) Get(ctx context.Context, tenantID int64, requestID string, at *time.Time) (Request, error) {
	if requestID == "" {
		return Request{}, ErrNotFound
	}
	if at != nil {
		row, err := r.Store.GetRequestLogBetween(ctx, db.GetRequestLogBetweenParams{
			TenantID: tenantID, RequestID: requestID, Lo: *at, Hi: at.Add(time.Microsecond)})
		if err == nil {
			return request(row), nil
		}
		if !errors.Is(err, db.ErrNotFound) {
			return Request{}, err
		}
	}
	var row db.APIRequestLog
	var err error
	if made, ok := requestIDTime(requestID); ok {
		row, err = r.Store.GetRequestLogBetween(ctx, db.GetRequestLogBetweenParams{
			TenantID: tenantID, RequestID: requestID, Lo: made.Add(-idWindow), Hi: made.Add(idWindow)})
	} else {
		row, err = r.Store.GetRequestLog(ctx, db.GetRequestLogParams{TenantID: tenantID, RequestID: requestID})
	}
	if errors.Is(err, db.ErrNotFound) {
		return Request{}, ErrNotFound
	}
	if err != nil {
		return Request{}, err
	}
	return request(row), nil
}

func requests(rows []db.APIRequestLog) []Request {
	out := make([]Request, len(rows))
	for i, row := range rows {
		out[i] = request(row)
	}
	return out
}

func request(r db.APIRequestLog) Request {
	return Request{TenantID: r.TenantID, At: r.At, KeyID: uuid.UUID(r.KeyID.Bytes).String(), KeyPrefix: r.KeyPrefix, Method: r.Method,
		Path: r.Path, Status: int(r.Status), Code: text(r.Code), UserAgent: text(r.UserAgent), IP: r.Ip,
		Latency: time.Duration(r.LatencyUs) * time.Microsecond, RequestID: r.RequestID, Count: int(r.Count)}
}

func text(t pgtype.Text) string {
	if !t.Valid {
		return ""
	}
	return t.String
}

// nullText stores "" as NULL.
func nullText(s string) pgtype.Text { return pgtype.Text{String: s, Valid: s != ""} }
