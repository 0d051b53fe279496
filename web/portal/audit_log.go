package portal

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"keyward/views"
	"keyward/web/apikey"
	"keyward/web/audit"
	"keyward/web/errs"
)

const (
	auditLogPath = "/settings/developers/audit-log"
	// auditPerPage is the audit log's page size.
	auditPerPage = 50
	// auditWriteWindow is how long an export may take to write each
	// batch: the server's write timeout would otherwise end any export
	// longer than it.
	auditWriteWindow = time.Minute
)

// auditQuery is the audit log's filter as the URL carries it.
type auditQuery struct {
	action, actor, key, from, to string
}

func (q auditQuery) values() url.Values {
	return params([2]string{"action", q.action}, [2]string{"actor", q.actor}, [2]string{"key", q.key}, [2]string{"from", q.from}, [2]string{"to", q.to})
}

// url is the audit log with q's filter and extra parameters.
func (q auditQuery) url(extra ...string) string {
	return withParams(auditLogPath, q.values(), extra...)
}

// auditContext is what the audit log needs to name people and keys.
type auditContext struct {
	emails map[int64]string
	keys   []apikey.Key
	names  map[string]string // key id → name
}

// auditFilter reads the filter from the request. Every field is checked,
// and all problems come back together as one Invalid error.
func auditFilter(c echo.Context, ac auditContext) (auditQuery, audit.Filter, error) {
	q := auditQuery{action: c.QueryParam("action"), actor: strings.TrimSpace(c.QueryParam("actor")), key: c.QueryParam("key"),
		from: strings.TrimSpace(c.QueryParam("from")), to: strings.TrimSpace(c.QueryParam("to"))}
	var f audit.Filter
	var fields errs.Fields
	if q.action != "" {
		if !slices.Contains(audit.Actions(), q.action) {
			fields.Add("action", "Choose an action from the list.")
		}
		f.Action = q.action
	}
	if q.actor != "" {
		q.actor = audit.CleanText(q.actor, 200)
		var ok bool
		if f.ActorType, f.ActorID, ok = ac.actor(q.actor); !ok {
			fields.Add("actor", "No member's email, user id or key of this organisation is "+strconv.Quote(q.actor)+`: type an email, a key's name, or "system".`)
		}
	}
	if q.key != "" {
		if !apikey.ValidID(q.key) {
			fields.Add("key", "Choose a key from the list.")
		}
		f.KeyID = q.key
	}
	if q.from != "" {
		t, _, ok := parseBound(q.from)
		if !ok {
			fields.Add("from", "Write the first day as YYYY-MM-DD (UTC).")
		}
		f.From = t
	}
	if q.to != "" {
		t, span, ok := parseBound(q.to)
		switch {
		case !ok:
			fields.Add("to", "Write the last day as YYYY-MM-DD (UTC).")
		case !f.From.IsZero() && !t.Add(max(span, time.Microsecond)).After(f.From):
			fields.Add("to", "The last day comes before the first.")
		}
		f.To = t.Add(max(span, time.Microsecond)) // the whole day it names
	}
	return q, f, fields.Err()
}

// actor reads the actor filter: "system", a member's email or user id, or
// a key's name or id.
func (ac auditContext) actor(s string) (typ, id string, ok bool) {
	if strings.EqualFold(s, "system") {
		return audit.ActorSystem, "", true
	}
	for uid, email := range ac.emails {
		if strings.EqualFold(email, s) || strconv.FormatInt(uid, 10) == s {
			return audit.ActorUser, strconv.FormatInt(uid, 10), true
		}
	}
	if apikey.ValidID(s) {
		return audit.ActorAPIKey, s, true
	}
	for _, k := range ac.keys {
		if k.Name == s {
			return audit.ActorAPIKey, k.ID, true
		}
	}
	return "", "", false
}

// who says who an event's actor is: a member's email, a key's name, or
// the system (with what part of it, when recorded).
func (ac auditContext) who(e audit.Entry) string {
	switch e.ActorType {
	case audit.ActorUser:
		return actorName(e, ac.emails)
	case audit.ActorAPIKey:
		if n := ac.names[e.ActorID]; n != "" {
			return "key " + n
		}
		return "an API key"
	}
	if e.ActorID != "" {
		return "system (" + e.ActorID + ")"
	}
	return "system"
}

// about says what an event is about, and links its page when it has one.
func (ac auditContext) about(e audit.Entry) (string, string) {
	switch e.TargetType {
	case "api_key":
		if n := ac.names[e.TargetID]; n != "" {
			return "key " + n, "/settings/developers/api-keys/" + e.TargetID
		}
		return "a deleted key", ""
	case "user":
		if id, err := strconv.ParseInt(e.TargetID, 10, 64); err == nil && ac.emails[id] != "" {
			return ac.emails[id], ""
		}
		return "a user", ""
	case "audit_chain":
		return "the audit trail", ""
	case "tenant":
		return "the organisation", ""
	case "":
		return "", ""
	}
	return strings.ReplaceAll(e.TargetType, "_", " ") + " " + e.TargetID, ""
}

// handleAuditLog shows the tenant's audit trail, newest first, filtered by
// action, actor, key and days, a page at a time ("before" and "after" are
// sequence numbers of the trail); with ?format=csv or ?format=jsonl it
// exports every event the filter matches instead.
func (h *Handler) handleAuditLog(c echo.Context) error {
	st := getState(c)
	ctx := c.Request().Context()
	var ac auditContext
	var err error
	if ac.emails, err = h.Auth.Users(ctx, st.tenant.ID); err != nil {
		return err
	}
	if ac.keys, err = h.Keys.All(ctx, st.tenant.ID, 1000); err != nil {
		return err
	}
	ac.names = make(map[string]string, len(ac.keys))
	for _, k := range ac.keys {
		ac.names[k.ID] = k.Name
	}
	q, f, ferr := auditFilter(c, ac)
	var cur audit.Cursor
	for _, p := range []struct {
		name string
		to   *int64
	}{{"before", &cur.Before}, {"after", &cur.After}} {
		if s := c.QueryParam(p.name); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 1 {
				return errs.InvalidField(p.name, "This page link is broken: start again from the newest events.")
			}
			*p.to = n
		}
	}
	format := c.QueryParam("format")
	if format != "" && format != audit.FormatCSV && format != audit.FormatJSONL {
		return errs.InvalidField("format", "Exports are ?format=csv or ?format=jsonl.")
	}
	p := views.AuditLogProps{Action: q.action, Actor: q.actor, Key: q.key, From: q.from, To: q.to, Filtered: len(q.values()) > 0,
		CSVURL: q.url("format", audit.FormatCSV), JSONLURL: q.url("format", audit.FormatJSONL)}
	for _, a := range audit.Actions() {
		p.Actions = append(p.Actions, views.ActionChoice{Action: a, Name: audit.ActionName(a) + " (" + a + ")"})
	}
	p.Actors = append(p.Actors, "system")
	for _, email := range ac.emails {
		p.Actors = append(p.Actors, email)
	}
	slices.Sort(p.Actors[1:])
	for _, k := range ac.keys {
		p.Keys = append(p.Keys, views.KeyChoice{ID: k.ID, Name: k.Name})
		p.Actors = append(p.Actors, k.Name)
	}
	if ferr != nil {
		e, _ := errs.As(ferr)
		p.Errors = map[string]string{}
		for _, fe := range e.Fields {
			p.Errors[fe.Name] = fe.Message
		}
		return render(c, http.StatusBadRequest, views.AuditLogPage(meta(c, "Audit log", "settings"), p))
	}
	if format != "" {
		return h.exportAuditLog(c, f, format)
	}

	page, err := h.Audit.Page(ctx, st.tenant.ID, f, cur, auditPerPage)
	if err != nil {
		return err
	}
	if es := page.Entries; len(es) > 0 {
		if page.Newer {
			p.NewestURL = q.url()
			p.NewerURL = q.url("after", strconv.FormatInt(es[0].Seq, 10))
		}
		if page.Older {
			p.OlderURL = q.url("before", strconv.FormatInt(es[len(es)-1].Seq, 10))
		}
	}
	now := h.Now()
	for _, e := range page.Entries {
		row := views.AuditLogRow{Seq: strconv.FormatInt(e.Seq, 10), AuditRow: views.AuditRow{When: views.At(e.At, now), Action: e.Action,
			Name: audit.ActionName(e.Action), Actor: ac.who(e), IP: e.IP, Lines: audit.Describe(e.Action, e.Diff), Diff: string(e.Diff)}}
		row.Target, row.TargetURL = ac.about(e)
		p.Rows = append(p.Rows, row)
	}
	return render(c, http.StatusOK, views.AuditLogPage(meta(c, "Audit log", "settings"), p))
}

// exportAuditLog streams every event f matches as a file. Once the first
// bytes are out, an error can no longer become an error page: it is
// logged and the connection is cut without the response's end, so the
// receiver sees a truncated transfer rather than a file that looks whole.
func (h *Handler) exportAuditLog(c echo.Context, f audit.Filter, format string) error {
	st := getState(c)
	res := c.Response()
	ctype := "text/csv; charset=utf-8"
	if format == audit.FormatJSONL {
		ctype = "application/jsonl; charset=utf-8"
	}
	name := fmt.Sprintf("keyward-audit-%s-%s.%s", st.tenant.Slug, h.Now().UTC().Format("20060102T150405Z"), format)
	res.Header().Set(echo.HeaderContentType, ctype)
	res.Header().Set(echo.HeaderContentDisposition, `attachment; filename="`+name+`"`)
	res.Header().Set(echo.HeaderCacheControl, "no-store")
	rc := http.NewResponseController(res)
	extend := func() error {
		// Not every writer has a deadline (tests' recorders); nothing to
		// extend then.
		if err := rc.SetWriteDeadline(time.Now().Add(auditWriteWindow)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		return nil
	}
	if err := extend(); err != nil {
		return err
	}
	if c.Request().Method == http.MethodHead {
		return c.NoContent(http.StatusOK)
	}
	err := h.Audit.Export(c.Request().Context(), st.tenant.ID, f, format, res, func() error {
		if err := rc.Flush(); err != nil {
			return err
		}
		return extend()
	})
	if err == nil {
		return nil
	}
	if !res.Committed {
		res.Header().Del(echo.HeaderContentDisposition)
		res.Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
		return err
	}
	log := h.Log
	if log == nil {
		log = slog.Default()
	}
	log.Error("audit export cut short", "tenant", st.tenant.ID, "format", format, "bytes", res.Size, "err", err)
	panic(http.ErrAbortHandler)
}
