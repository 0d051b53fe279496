package portal

import (
	"context"
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
	// auditKeyChoices is how many keys, newest first, the filter form
	// offers.
	auditKeyChoices = 1000
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
	// names holds the names of the keys a page mentions (and the key
	// filter's), by id, looked up for those ids alone: a tenant's keys
	// are never deleted, however many there are.
	names map[string]string
}

// auditFilter reads the filter from the request. Every field is checked,
// and all problems come back together as one Invalid error; the key
// filter's name goes into ac.names.
func (h *Handler) auditFilter(c echo.Context, tenantID int64, ac auditContext) (auditQuery, audit.Filter, error) {
	ctx := c.Request().Context()
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
		var err error
		if f.ActorType, f.ActorIDs, err = h.auditActor(ctx, tenantID, ac, q.actor); err != nil {
			return q, f, err
		}
		if f.ActorType == "" {
			fields.Add("actor", "No member's email, user id or key of this organisation is "+strconv.Quote(q.actor)+`: type an email, a key's name, or "system".`)
		}
	}
	if q.key != "" {
		names, err := h.Keys.Names(ctx, tenantID, []string{q.key})
		if err != nil {
			return q, f, err
		}
		if names[q.key] == "" {
			fields.Add("key", "No key of this organisation has this id: choose a key from the list.")
		}
		ac.names[q.key] = names[q.key]
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
		f.To = t.Add(max(span, time.Microsecond)) // the whole day it names
		switch {
		case !ok:
			fields.Add("to", "Write the last day as YYYY-MM-DD (UTC).")
		case !f.From.IsZero() && !f.To.After(f.From):
			fields.Add("to", "The last day comes before the first.")
		}
	}
	return q, f, fields.Err()
}

// auditActor reads the actor filter: "system", a member's email or user
// id, or a key's id or name (every key of the organisation ever called
// that). typ is "" when s is none of them.
func (h *Handler) auditActor(ctx context.Context, tenantID int64, ac auditContext, s string) (typ string, ids []string, err error) {
	if strings.EqualFold(s, "system") {
		return audit.ActorSystem, nil, nil
	}
	for uid, email := range ac.emails {
		if strings.EqualFold(email, s) || strconv.FormatInt(uid, 10) == s {
			return audit.ActorUser, []string{strconv.FormatInt(uid, 10)}, nil
		}
	}
	if apikey.ValidID(s) {
		names, err := h.Keys.Names(ctx, tenantID, []string{s})
		if err != nil || names[s] == "" {
			return "", nil, err
		}
		return audit.ActorAPIKey, []string{s}, nil
	}
	if ids, err = h.Keys.Named(ctx, tenantID, s); err != nil || len(ids) == 0 {
		return "", nil, err
	}
	return audit.ActorAPIKey, ids, nil
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
		return "key " + e.ActorID
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
		// Keys are never deleted: one not found is not the tenant's.
		return "key " + e.TargetID, ""
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
	ac := auditContext{names: map[string]string{}}
	var err error
	if ac.emails, err = h.Auth.Users(ctx, st.tenant.ID); err != nil {
		return err
	}
	// The form offers the newest keys; any key's id or name works.
	keys, err := h.Keys.All(ctx, st.tenant.ID, auditKeyChoices)
	if err != nil {
		return err
	}
	q, f, ferr := h.auditFilter(c, st.tenant.ID, ac)
	if ferr != nil && errs.KindOf(ferr) != errs.Invalid {
		return ferr // a lookup failed
	}
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
	for _, k := range keys {
		p.Keys = append(p.Keys, views.KeyChoice{ID: k.ID, Name: k.Name})
		p.Actors = append(p.Actors, k.Name)
	}
	if n := ac.names[q.key]; n != "" && !slices.ContainsFunc(p.Keys, func(k views.KeyChoice) bool { return k.ID == q.key }) {
		p.Keys = append(p.Keys, views.KeyChoice{ID: q.key, Name: n}) // an older key, chosen by its id
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
	var ids []string
	for _, e := range page.Entries {
		if e.TargetType == "api_key" {
			ids = append(ids, e.TargetID)
		}
		if e.ActorType == audit.ActorAPIKey {
			ids = append(ids, e.ActorID)
		}
	}
	if ac.names, err = h.Keys.Names(ctx, st.tenant.ID, ids); err != nil {
		return err
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
		// application/jsonl is registered nowhere; x-ndjson is what
		// tools that stream JSON lines recognise. Both are UTF-8 by
		// definition, so no charset.
		ctype = "application/x-ndjson"
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
