package portal

import (
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"keyward/views"
	"keyward/web/apikey"
	"keyward/web/audit"
	"keyward/web/usage"
)

const logsPerPage = 50

// statusFilters are the status choices of the request log: a class or
// one code clients often look for.
var statusFilters = map[string][2]int32{
	"":    {0, 999},
	"2xx": {200, 299},
	"4xx": {400, 499},
	"5xx": {500, 599},
	"401": {401, 401},
	"403": {403, 403},
	"429": {429, 429},
}

const apiLogsPath = "/settings/developers/api-logs"

// logQuery is the request log's filter as the URL carries it, cleaned:
// what was not understood is dropped.
type logQuery struct {
	key, status, from, to, path, ip string
}

// values is q as URL parameters, without the empty ones.
func (q logQuery) values() url.Values {
	return params([2]string{"key", q.key}, [2]string{"status", q.status}, [2]string{"from", q.from}, [2]string{"to", q.to},
		[2]string{"path", q.path}, [2]string{"ip", q.ip})
}

// url is the log with q's filter and extra parameters.
func (q logQuery) url(extra ...string) string { return withParams(apiLogsPath, q.values(), extra...) }

// params makes URL parameters of (name, value) pairs, leaving out the
// empty values.
func params(pairs ...[2]string) url.Values {
	v := url.Values{}
	for _, p := range pairs {
		if p[1] != "" {
			v.Set(p[0], p[1])
		}
	}
	return v
}

// withParams is path with the parameters v and extra (name, value, name,
// value, …), which replace those of v with the same name.
func withParams(path string, v url.Values, extra ...string) string {
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// timeForms are the forms a from or to bound may take, all read as UTC:
// what datetime-local inputs send, with or without seconds, and a bare
// date. Each comes with how long the moment it names lasts, so that "to"
// includes the whole minute or day it names.
var timeForms = []struct {
	layout string
	span   time.Duration
}{
	{"2006-01-02T15:04", time.Minute},
	{"2006-01-02T15:04:05", time.Second},
	{"2006-01-02 15:04", time.Minute},
	{"2006-01-02 15:04:05", time.Second},
	{"2006-01-02", 24 * time.Hour},
}

// parseBound reads a from or to bound: the start of the moment it names
// and how long it lasts. RFC 3339 times name an instant.
func parseBound(s string) (time.Time, time.Duration, bool) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), 0, true
	}
	for _, f := range timeForms {
		if t, err := time.ParseInLocation(f.layout, s, time.UTC); err == nil {
			return t, f.span, true
		}
	}
	return time.Time{}, 0, false
}

// boundText writes a bound back into the form's datetime-local input.
func boundText(t time.Time, span time.Duration) string {
	if span == time.Second || t.Second() != 0 {
		return t.UTC().Format("2006-01-02T15:04:05")
	}
	return t.UTC().Format("2006-01-02T15:04")
}

// parseCursor reads a page cursor: a row's time and request id.
func parseCursor(s string) (time.Time, string, bool) {
	at, rid, ok := strings.Cut(s, " ")
	if !ok {
		return time.Time{}, "", false
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return time.Time{}, "", false
	}
	return t, audit.CleanText(rid, 64), true
}

func cursorText(r usage.Request) string {
	return r.At.UTC().Format(time.RFC3339Nano) + " " + r.RequestID
}

// handleAPILogs shows the tenant's API request log, newest first,
// filtered by key, status, time range (from, to), path prefix and
// address, a page at a time: "before" is the last row of a newer page,
// "after" the first row of an older one.
func (h *Handler) handleAPILogs(c echo.Context) error {
	st := getState(c)
	ctx := c.Request().Context()
	q := logQuery{key: c.QueryParam("key"), status: c.QueryParam("status")}
	if q.key != "" && !apikey.ValidID(q.key) {
		q.key = ""
	}
	bounds, ok := statusFilters[q.status]
	if !ok {
		q.status, bounds = "", statusFilters[""]
	}
	f := usage.LogFilter{KeyID: q.key, StatusMin: int(bounds[0]), StatusMax: int(bounds[1]), To: h.Now().Add(time.Minute), Limit: logsPerPage}
	if t, _, ok := parseBound(c.QueryParam("from")); ok {
		f.From, q.from = t, boundText(t, 0)
	}
	if t, span, ok := parseBound(c.QueryParam("to")); ok {
		f.To, q.to = t.Add(max(span, time.Microsecond)), boundText(t, span)
	}
	if p := strings.TrimSpace(c.QueryParam("path")); p != "" {
		f.PathPrefix = audit.CleanText(p, 512)
		q.path = f.PathPrefix
	}
	if ip := strings.TrimSpace(c.QueryParam("ip")); ip != "" {
		q.ip = audit.CleanText(ip, 64)
		f.IPs = []string{q.ip}
		if a, err := netip.ParseAddr(q.ip); err == nil && a.String() != q.ip {
			f.IPs = append(f.IPs, a.String()) // as the request log keeps it, whichever way it was typed
		}
	}
	var cur usage.Cursor
	if at, rid, ok := parseCursor(c.QueryParam("before")); ok {
		cur = usage.Cursor{At: at, RequestID: rid}
	} else if at, rid, ok := parseCursor(c.QueryParam("after")); ok {
		cur = usage.Cursor{At: at, RequestID: rid, After: true}
	}
	page, err := h.Logs.Page(ctx, st.tenant.ID, f, cur)
	if err != nil {
		return err
	}
	keys, err := h.Keys.All(ctx, st.tenant.ID, 1000)
	if err != nil {
		return err
	}
	p := views.APILogsProps{Key: q.key, Status: q.status, From: q.from, To: q.to, Path: q.path, IP: q.ip,
		Filtered: len(q.values()) > 0, RefusalBudget: usage.RefusalBudget}
	names := map[string]string{}
	for _, k := range keys {
		names[k.ID] = k.Name
		p.Keys = append(p.Keys, views.KeyChoice{ID: k.ID, Name: k.Name})
	}
	if rows := page.Rows; len(rows) > 0 {
		if page.Newer {
			p.NewestURL = q.url()
			p.NewerURL = q.url("after", cursorText(rows[0]))
		}
		if page.Older {
			p.OlderURL = q.url("before", cursorText(rows[len(rows)-1]))
		}
	}
	now := h.Now()
	for _, r := range page.Rows {
		if _, ok := names[r.KeyID]; !ok { // beyond the filter's first 1,000 keys
			k, err := h.Keys.Get(ctx, st.tenant.ID, r.KeyID)
			if err == nil {
				names[r.KeyID] = k.Name
			} else if !errors.Is(err, apikey.ErrNotFound) {
				return err
			}
		}
		row := views.LogRow{
			At: views.At(r.At, now), Method: r.Method, Path: r.Path, Status: r.Status, Code: r.Code,
			KeyID: r.KeyID, KeyName: names[r.KeyID], KeyPrefix: r.KeyPrefix, IP: r.IP, Latency: latencyText(r.Latency.Microseconds()),
			RequestID: r.RequestID, DetailURL: logURL(r),
		}
		if r.Count > 1 {
			row.Count = "×" + thousands(r.Count)
			row.CountNote = thousands(r.Count) + " refusals of this key with this status and error in the minute from " +
				r.At.UTC().Truncate(time.Minute).Format("15:04 UTC") + ", counted rather than listed; this row shows the first of them and their mean latency."
		}
		p.Rows = append(p.Rows, row)
	}
	return render(c, http.StatusOK, views.APILogsPage(meta(c, "API request log", "api-logs"), p))
}

// logURL is one request's page. It carries the row's time, which finds
// the row in its day's partition at once; the page works without it.
func logURL(r usage.Request) string {
	return apiLogsPath + "/" + url.PathEscape(r.RequestID) + "?at=" + url.QueryEscape(r.At.UTC().Format(time.RFC3339Nano))
}

// handleAPILog shows one logged request of the tenant: another tenant's
// request id is not found.
func (h *Handler) handleAPILog(c echo.Context) error {
	st := getState(c)
	ctx := c.Request().Context()
	rid := audit.CleanText(c.Param("rid"), 64)
	var at *time.Time
	if t, err := time.Parse(time.RFC3339Nano, c.QueryParam("at")); err == nil {
		at = &t
	}
	r, err := h.Logs.Get(ctx, st.tenant.ID, rid, at)
	if err != nil {
		return err
	}
	name := ""
	if k, err := h.Keys.Get(ctx, st.tenant.ID, r.KeyID); err == nil {
		name = k.Name
	} else if !errors.Is(err, apikey.ErrNotFound) {
		return err
	}
	p := views.APILogDetailProps{
		RequestID: r.RequestID, At: views.At(r.At, h.Now()), Method: r.Method, Path: r.Path, Status: r.Status, Code: r.Code,
		KeyID: r.KeyID, KeyName: name, KeyPrefix: r.KeyPrefix, IP: r.IP, UserAgent: r.UserAgent,
		Latency: latencyText(r.Latency.Microseconds()), Count: r.Count,
		// Back to the log at this request: the page of rows from it on.
		BackURL: logQuery{}.url("before", r.At.UTC().Add(time.Microsecond).Format(time.RFC3339Nano)+" "),
	}
	return render(c, http.StatusOK, views.APILogDetailPage(meta(c, "Request "+r.RequestID, "api-logs"), p))
}

// thousands writes n with commas between groups of three digits: 3,940.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func latencyText(us int64) string {
	if us < 1000 {
		return strconv.FormatInt(us, 10) + " µs"
	}
	return strconv.FormatFloat(float64(us)/1000, 'f', 1, 64) + " ms"
}
