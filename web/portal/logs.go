package portal

import (
	"errors"
	"net/http"
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

// handleAPILogs shows the tenant's API request log, newest first, filtered
// by key and status, a page at a time ("before" is the last row's time).
func (h *Handler) handleAPILogs(c echo.Context) error {
	st := getState(c)
	ctx := c.Request().Context()
	keyID, status := c.QueryParam("key"), c.QueryParam("status")
	if keyID != "" && !apikey.ValidID(keyID) {
		keyID = ""
	}
	bounds, ok := statusFilters[status]
	if !ok {
		status, bounds = "", statusFilters[""]
	}
	// The cursor is the last row shown: its time and request id.
	f := usage.LogFilter{KeyID: keyID, StatusMin: int(bounds[0]), StatusMax: int(bounds[1]), Before: h.Now().Add(time.Minute), Limit: logsPerPage}
	if at, rid, ok := strings.Cut(c.QueryParam("before"), " "); ok {
		if b, err := time.Parse(time.RFC3339Nano, at); err == nil {
			f.Before, f.BeforeRequestID = b, audit.CleanText(rid, 64)
		}
	}
	rows, more, err := h.Logs.List(ctx, st.tenant.ID, f)
	if err != nil {
		return err
	}
	keys, err := h.Keys.All(ctx, st.tenant.ID, 1000)
	if err != nil {
		return err
	}
	p := views.APILogsProps{Key: keyID, Status: status, RefusalBudget: usage.RefusalBudget}
	names := map[string]string{}
	for _, k := range keys {
		names[k.ID] = k.Name
		p.Keys = append(p.Keys, views.KeyChoice{ID: k.ID, Name: k.Name})
	}
	if more {
		last := rows[len(rows)-1]
		q := url.Values{"before": {last.At.UTC().Format(time.RFC3339Nano) + " " + last.RequestID}}
		if keyID != "" {
			q.Set("key", keyID)
		}
		if status != "" {
			q.Set("status", status)
		}
		p.OlderURL = "/settings/developers/api-logs?" + q.Encode()
	}
	for _, r := range rows {
		if _, ok := names[r.KeyID]; !ok { // beyond the filter's first 1,000 keys
			k, err := h.Keys.Get(ctx, st.tenant.ID, r.KeyID)
			if err == nil {
				names[r.KeyID] = k.Name
			} else if !errors.Is(err, apikey.ErrNotFound) {
				return err
			}
		}
		row := views.LogRow{
			At: r.At.UTC().Format("2006-01-02 15:04:05 UTC"), Method: r.Method, Path: r.Path, Status: r.Status,
			KeyID: r.KeyID, KeyName: names[r.KeyID], KeyPrefix: r.KeyPrefix, IP: r.IP, Latency: latencyText(r.Latency.Microseconds()), RequestID: r.RequestID,
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
