package portal_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"keyward/db"
	"keyward/web/apikey"
	"keyward/web/audit"
	"keyward/web/auth"
	"keyward/web/keyring"
	"keyward/web/webtest"
)

const auditLog = "/settings/developers/audit-log"

var (
	auditRowRe   = regexp.MustCompile(`data-testid="audit-log-row" data-seq="(\d+)"`)
	auditOlderRe = regexp.MustCompile(`href="(/settings/developers/audit-log\?[^"]*before=[^"]+)"`)
	auditNewerRe = regexp.MustCompile(`href="(/settings/developers/audit-log\?[^"]*after=[^"]+)"`)
)

// seqs lists the sequence numbers of the rows a page shows, in order.
func seqs(body string) []int64 {
	var out []int64
	for _, m := range auditRowRe.FindAllStringSubmatch(body, -1) {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		out = append(out, n)
	}
	return out
}

// recordN writes n events of action into the tenant's trail, by the
// system, in one transaction.
func recordN(t *testing.T, e *webtest.Env, tenant int64, n int, action string) {
	t.Helper()
	err := e.Store.InTx(context.Background(), func(q *db.Queries) error {
		for i := range n {
			ev := audit.Event{TenantID: &tenant, ActorType: audit.ActorSystem, ActorID: "test", Action: action,
				TargetType: "audit_chain", TargetID: strconv.FormatInt(tenant, 10), IP: "192.0.2.9", UserAgent: "=cmd|' /C calc'!A0",
				Diff: map[string]any{"n": i}}
			if err := audit.Record(context.Background(), q, e.App.Audit, e.Clock.Now(), ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAuditLogPage: a viewer reads the tenant's trail, newest first, in
// words, filtered by action, actor, key and days; another tenant's events
// never show; a filter that cannot be read is a 400 page with each
// field's problem next to it.
func TestAuditLogPage(t *testing.T) {
	e := webtest.New(t)
	owner := newAdmin(t, e, "owner@acme.test", auth.RoleOwner)
	ownerRow, _ := e.Store.GetUserByEmail(context.Background(), "owner@acme.test")
	// The first key three days ago.
	e.Clock.Advance(-72 * time.Hour)
	k, _ := e.Key(e.Tenant, ownerRow, apikey.Config{Name: "Billing", Environment: apikey.Production, Scopes: apikey.AllScopes})
	first := k.ID
	e.Clock.Advance(72 * time.Hour)
	day := e.Clock.Now().UTC().Format("2006-01-02")
	second, _ := owner.create(t, keyForm("Reports"))
	r := owner.c.Get("/settings/developers/api-keys/" + second + "/edit")
	form := keyForm("Reports")
	form.Set("rate_limit_requests", "1000")
	form.Set("code", e.NextCode(owner.secret))
	if r = owner.c.PostForm("/settings/developers/api-keys/"+second, form); r.Status != http.StatusOK {
		t.Fatalf("edit: %d", r.Status)
	}
	globex := e.NewTenant("globex")
	gowner := e.User(globex, "owner@globex.test", auth.RoleOwner)
	e.Key(globex, gowner, apikey.Config{Name: "Globex secret project", Environment: apikey.Production, Scopes: apikey.AllScopes})

	v := newAdmin(t, e, "viewer@acme.test", auth.RoleViewer)
	r = v.c.Get(auditLog)
	all := seqs(r.Body)
	if r.Status != http.StatusOK || len(all) < 5 {
		t.Fatalf("audit log: %d, %d rows", r.Status, len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i] >= all[i-1] {
			t.Fatalf("not newest first: %v", all)
		}
	}
	for _, want := range []string{"Key created", "Settings changed", "owner@acme.test", "key Reports", "Rate limit: 500 per hour → 1,000 per hour",
		"<details class=\"audit-diff\">", "<time datetime="} {
		if !strings.Contains(html.UnescapeString(r.Body), want) && !strings.Contains(r.Body, want) {
			t.Errorf("the page does not show %q", want)
		}
	}
	if strings.Contains(r.Body, "Globex") || strings.Contains(r.Body, "globex.test") {
		t.Fatal("another tenant's events are shown")
	}
	if strings.Contains(r.Body, "1h0m0s") {
		t.Error("a Go duration on the page")
	}
	for _, p := range []string{"/settings", "/settings/developers"} {
		if !strings.Contains(v.c.Get(p).Body, `href="/settings/developers/audit-log"`) {
			t.Errorf("%s does not link the audit log", p)
		}
	}

	count := func(path string) int {
		t.Helper()
		r := v.c.Get(path)
		if r.Status != http.StatusOK {
			t.Fatalf("%s: %d", path, r.Status)
		}
		return len(seqs(r.Body))
	}
	if n := count(auditLog + "?action=api_key.created"); n != 2 {
		t.Errorf("action filter: %d rows, want 2", n)
	}
	if n := count(auditLog + "?action=api_key.updated"); n != 1 {
		t.Errorf("action filter: %d rows, want 1", n)
	}
	byOwner := count(auditLog + "?actor=owner@acme.test")
	if n := count(auditLog + "?actor=" + strconv.FormatInt(ownerRow.ID, 10)); n != byOwner || byOwner < 3 {
		t.Errorf("actor by email %d rows, by id %d", byOwner, n)
	}
	if n := count(auditLog + "?actor=system"); n < 1 || n+byOwner > len(all) {
		t.Errorf("system actor: %d rows", n)
	}
	if n := count(auditLog + "?key=" + first); n != 1 {
		t.Errorf("key filter: %d rows, want its creation only", n)
	}
	if n := count(auditLog + "?key=" + second + "&action=api_key.updated&actor=owner@acme.test"); n != 1 {
		t.Errorf("filters together: %d rows", n)
	}
	if n := count(auditLog + "?from=" + day + "&to=" + day + "&action=api_key.created"); n != 1 {
		t.Errorf("date range: %d keys created on %s, want 1", n, day)
	}
	before := e.Clock.Now().Add(-48 * time.Hour).UTC().Format("2006-01-02")
	if n := count(auditLog + "?to=" + before + "&action=api_key.created"); n != 1 {
		t.Errorf("to: %d keys created up to %s, want 1", n, before)
	}

	// Bad input: a 400 page with every field's problem next to it.
	r = v.c.Get(auditLog + "?action=api_key.teleported&actor=nobody@else.test&key=x&from=2026-13-45&to=yesterday")
	if r.Status != http.StatusBadRequest || len(seqs(r.Body)) != 0 {
		t.Fatalf("bad filters: %d", r.Status)
	}
	for _, f := range []string{"action", "actor", "key", "from", "to"} {
		if !strings.Contains(r.Body, `id="err-`+f+`"`) {
			t.Errorf("no error next to %s", f)
		}
	}
	if r = v.c.Get(auditLog + "?from=2026-03-02&to=2026-03-01"); r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "comes before the first") {
		t.Errorf("to before from: %d", r.Status)
	}
	for _, q := range []string{"?before=yesterday", "?after=-1", "?format=xlsx", "?from=2026-02-30&format=csv"} {
		if r = v.c.Get(auditLog + q); r.Status != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", q, r.Status)
		}
	}
}

// TestAuditLogPages: pages of 50 by the chain's sequence, neither losing
// nor repeating an event, with "newer" links back to the same pages.
func TestAuditLogPages(t *testing.T) {
	e := webtest.New(t)
	recordN(t, e, e.Tenant.ID, 120, "api_key.updated")
	v := newAdmin(t, e, "viewer@acme.test", auth.RoleViewer)
	seen := map[int64]bool{}
	var pages [][]int64
	var newer []string
	next := auditLog + "?actor=system"
	for next != "" && len(pages) < 10 {
		r := v.c.Get(next)
		s := seqs(r.Body)
		if len(s) > 50 {
			t.Fatalf("a page of %d", len(s))
		}
		for _, n := range s {
			if seen[n] {
				t.Fatalf("seq %d on two pages", n)
			}
			seen[n] = true
		}
		pages = append(pages, s)
		m := auditNewerRe.FindStringSubmatch(r.Body)
		if len(pages) > 1 && m == nil {
			t.Fatalf("page %d has no newer link", len(pages))
		}
		if m != nil {
			newer = append(newer, html.UnescapeString(m[1]))
		}
		next = ""
		if m := auditOlderRe.FindStringSubmatch(r.Body); m != nil {
			next = html.UnescapeString(m[1])
		}
	}
	if len(pages) != 3 || len(seen) < 120 || !strings.Contains(newer[0], "actor=system") {
		t.Fatalf("%d pages, %d events (the filter must follow the links: %v)", len(pages), len(seen), newer)
	}
	// The third page's "newer" is the second page.
	if got := seqs(v.c.Get(newer[1]).Body); len(got) != 50 || got[0] != pages[1][0] || got[49] != pages[1][49] {
		t.Errorf("newer from the last page: %v, want %v", got, pages[1])
	}
}

// exported is one exported event, as a receiver reads it (the JSON
// Lines fields; the CSV columns in the same order).
type exported struct {
	ChainID    int64    `json:"chain_id"`
	Seq        int64    `json:"seq"`
	Tenant     string   `json:"tenant_id"`
	At         string   `json:"occurred_at"`
	ActorType  string   `json:"actor_type"`
	ActorID    string   `json:"actor_id"`
	Action     string   `json:"action"`
	TargetType string   `json:"target_type"`
	Target     string   `json:"target_id"`
	IP         string   `json:"ip"`
	UserAgent  string   `json:"user_agent"`
	Diff       string   `json:"diff"`
	PrevHash   string   `json:"prev_hash"`
	Hash       string   `json:"hash"`
	HashAlg    string   `json:"hash_alg"`
	Summary    []string `json:"summary"`
}

// recompute checks an exported chain as an outsider would, following
// docs/audit-events.md: each event's hash from its exported fields
// (HMAC-SHA256 under the chain key derived from the secret, or SHA-256),
// each prev_hash the previous event's hash, the sequence unbroken from
// the first event.
func recompute(t *testing.T, events []exported) {
	t.Helper()
	ring, err := keyring.New([]byte(webtest.SecretKey))
	if err != nil {
		t.Fatal(err)
	}
	key := ring.Key(keyring.PurposeAuditChain)
	prev := strings.Repeat("00", 32)
	for i, ev := range events {
		if ev.Seq != int64(i+1) {
			t.Fatalf("row %d has seq %d: the sequence is broken", i, ev.Seq)
		}
		if ev.PrevHash != prev {
			t.Fatalf("seq %d: prev_hash is not the previous hash", ev.Seq)
		}
		var buf bytes.Buffer
		put := func(b []byte) {
			buf.Write(binary.BigEndian.AppendUint64(nil, uint64(len(b))))
			buf.Write(b)
		}
		ph, _ := hex.DecodeString(ev.PrevHash)
		put(ph)
		for _, s := range []string{strconv.FormatInt(ev.ChainID, 10), strconv.FormatInt(ev.Seq, 10), ev.Tenant, ev.At,
			ev.ActorType, ev.ActorID, ev.Action, ev.TargetType, ev.Target, ev.IP, ev.UserAgent, ev.Diff} {
			put([]byte(s))
		}
		var sum []byte
		switch ev.HashAlg {
		case audit.AlgHMAC:
			m := hmac.New(sha256.New, key)
			m.Write(buf.Bytes())
			sum = m.Sum(nil)
		case audit.AlgSHA256:
			s := sha256.Sum256(buf.Bytes())
			sum = s[:]
		default:
			t.Fatalf("seq %d: hash_alg %q", ev.Seq, ev.HashAlg)
		}
		if hex.EncodeToString(sum) != ev.Hash {
			t.Fatalf("seq %d (%s): the hash recomputed from the exported fields differs", ev.Seq, ev.Action)
		}
		prev = ev.Hash
	}
}

// readCSV parses a CSV export back, undoing the spreadsheet escape.
func readCSV(t *testing.T, body string) []exported {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(recs[0], ",") != strings.Join(audit.ExportColumns, ",") {
		t.Fatalf("header %v", recs[0])
	}
	var out []exported
	for _, rec := range recs[1:] {
		c := make([]string, len(rec))
		for i, cell := range rec {
			c[i] = audit.UnescapeCell(cell)
		}
		chain, _ := strconv.ParseInt(c[0], 10, 64)
		seq, _ := strconv.ParseInt(c[1], 10, 64)
		out = append(out, exported{chain, seq, c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], c[12], c[13], c[14],
			strings.Split(c[15], "; ")})
	}
	return out
}

// readJSONL parses a JSON Lines export back, line by line.
func readJSONL(t *testing.T, body string) []exported {
	t.Helper()
	var out []exported
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r exported
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("line %d: %v", len(out)+1, err)
		}
		out = append(out, r)
	}
	if !strings.HasSuffix(body, "\n") {
		t.Fatal("the last line is cut")
	}
	return out
}

// TestAuditLogExports: both exports hold every event of the tenant, a few
// thousand of them, oldest first, with what a receiver needs to recompute
// the chain outside Keyward; the CSV's cells cannot start a formula; both
// honour the page's filters; another tenant's events are never in them.
func TestAuditLogExports(t *testing.T) {
	e := webtest.New(t)
	v := newAdmin(t, e, "viewer@acme.test", auth.RoleViewer)
	owner := newAdmin(t, e, "owner@acme.test", auth.RoleOwner)
	id, _ := owner.create(t, keyForm("Billing"))
	recordN(t, e, e.Tenant.ID, 3000, "api_key.updated")
	globex := e.NewTenant("globex")
	recordN(t, e, globex.ID, 5, "api_key.updated")
	var last int64
	if err := e.Store.Pool.QueryRow(context.Background(), `SELECT max(seq) FROM audit_events WHERE chain_id = $1`, e.Tenant.ID).Scan(&last); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		format, ctype string
		read          func(*testing.T, string) []exported
	}{
		{"csv", "text/csv; charset=utf-8", readCSV},
		{"jsonl", "application/x-ndjson", readJSONL},
	} {
		t.Run(c.format, func(t *testing.T) {
			r := v.c.Get(auditLog + "?format=" + c.format)
			if r.Status != http.StatusOK || r.Header.Get("Content-Type") != c.ctype || r.Header.Get("Cache-Control") != "no-store" ||
				!regexp.MustCompile(`^attachment; filename="keyward-audit-acme-\d{8}T\d{6}Z\.`+c.format+`"$`).MatchString(r.Header.Get("Content-Disposition")) {
				t.Fatalf("export: %d %v", r.Status, r.Header)
			}
			events := c.read(t, r.Body)
			if int64(len(events)) != last {
				t.Fatalf("%d events exported, the chain holds %d", len(events), last)
			}
			for _, ev := range events {
				if ev.ChainID != e.Tenant.ID || ev.Tenant != strconv.FormatInt(e.Tenant.ID, 10) {
					t.Fatalf("an event of chain %d, tenant %s", ev.ChainID, ev.Tenant)
				}
			}
			recompute(t, events)

			r = v.c.Get(auditLog + "?format=" + c.format + "&key=" + id)
			if got := c.read(t, r.Body); len(got) != 1 || got[0].Action != "api_key.created" || got[0].Target != id {
				t.Errorf("filtered by key: %+v", got)
			}
			r = v.c.Get(auditLog + "?format=" + c.format + "&action=api_key.created&actor=owner@acme.test")
			if got := c.read(t, r.Body); len(got) != 1 || got[0].ActorType != audit.ActorUser {
				t.Errorf("filtered by action and actor: %d events", len(got))
			}
		})
	}

	// No cell starts a formula; the one that did is escaped and comes
	// back whole.
	body := v.c.Get(auditLog + "?format=csv&actor=system").Body
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		for _, cell := range rec {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Fatalf("a cell starts a formula: %q", cell)
			}
		}
	}
	if ua := recs[len(recs)-1][10]; ua != "'=cmd|' /C calc'!A0" || audit.UnescapeCell(ua) != "=cmd|' /C calc'!A0" {
		t.Errorf("user agent cell %q", ua)
	}
}

// TestAuditLogKeyNames: the page names every key it mentions, however
// many keys the tenant has (keys are never deleted), and an actor filter
// by a key's name matches every key that ever had it: a revoked key may
// share a live key's name.
func TestAuditLogKeyNames(t *testing.T) {
	e := webtest.New(t)
	ctx := context.Background()
	v := newAdmin(t, e, "viewer@acme.test", auth.RoleViewer)
	ownerRow := e.User(e.Tenant, "owner@acme.test", auth.RoleOwner)
	oldest, _ := e.Key(e.Tenant, ownerRow, apikey.Config{Name: "Oldest", Environment: apikey.Production, Scopes: apikey.AllScopes})
	// 1,100 newer keys, more than the form offers.
	if _, err := e.Store.Pool.Exec(ctx, `INSERT INTO api_keys (tenant_id, name, environment, scopes, created_at)
		SELECT $1, 'bulk ' || i, 'production', '{}', now() + make_interval(secs => i) FROM generate_series(1, 1100) i`, e.Tenant.ID); err != nil {
		t.Fatal(err)
	}
	revoked, _ := e.Key(e.Tenant, ownerRow, apikey.Config{Name: "CI", Environment: apikey.Production, Scopes: apikey.AllScopes})
	if _, err := e.Store.Pool.Exec(ctx, `UPDATE api_keys SET revoked_at = now() WHERE id = $1`, revoked.ID); err != nil {
		t.Fatal(err)
	}
	live, _ := e.Key(e.Tenant, ownerRow, apikey.Config{Name: "ci", Environment: apikey.Production, Scopes: apikey.AllScopes})
	err := e.Store.InTx(ctx, func(q *db.Queries) error {
		for _, id := range []string{revoked.ID, live.ID} {
			ev := audit.Event{TenantID: &e.Tenant.ID, ActorType: audit.ActorAPIKey, ActorID: id, Action: "api_key.rotated",
				TargetType: "api_key", TargetID: id, Diff: map[string]any{}}
			if err := audit.Record(ctx, q, e.App.Audit, e.Clock.Now(), ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	r := v.c.Get(auditLog + "?key=" + oldest.ID)
	if r.Status != http.StatusOK || len(seqs(r.Body)) != 1 || !strings.Contains(r.Body, "key Oldest") ||
		!strings.Contains(r.Body, `href="/settings/developers/api-keys/`+oldest.ID+`"`) ||
		!strings.Contains(r.Body, `<option value="`+oldest.ID+`" selected>Oldest</option>`) {
		t.Errorf("the oldest of 1,103 keys: %d, %d rows, named: %v", r.Status, len(seqs(r.Body)), strings.Contains(r.Body, "key Oldest"))
	}
	r = v.c.Get(auditLog + "?actor=CI&action=api_key.rotated")
	if r.Status != http.StatusOK || len(seqs(r.Body)) != 2 || strings.Count(r.Body, "key CI") != 2 || strings.Count(r.Body, "key ci") != 2 {
		t.Errorf("actor CI: %d, %d rows; want both keys called CI, each named as actor and target", r.Status, len(seqs(r.Body)))
	}
	for _, path := range []string{auditLog, auditLog + "?actor=" + revoked.ID} {
		if r = v.c.Get(path); r.Status != http.StatusOK || strings.Contains(r.Body, "deleted key") || strings.Contains(r.Body, "an API key") {
			t.Errorf("%s: %d, or a key left unnamed", path, r.Status)
		}
	}

	// A key id that is none of the tenant's keys is a 400, as the form
	// says, whether in the key filter or the actor filter.
	globex := e.NewTenant("globex")
	other, _ := e.Key(globex, e.User(globex, "owner@globex.test", auth.RoleOwner), apikey.Config{Name: "Globex secret", Environment: apikey.Production, Scopes: apikey.AllScopes})
	for _, q := range []string{"?key=" + other.ID, "?actor=" + other.ID, "?key=00000000-0000-4000-8000-000000000000"} {
		if r = v.c.Get(auditLog + q); r.Status != http.StatusBadRequest || strings.Contains(r.Body, "Globex") {
			t.Errorf("%s: %d, want 400", q, r.Status)
		}
	}
}

// TestAuditLogExportCutShort: when reading the trail fails after an
// export's first bytes went out (here the database ends the server's
// connections and refuses new ones), the client sees an incomplete
// transfer, never a file that looks whole, and the server logs the
// failure and the request.
func TestAuditLogExportCutShort(t *testing.T) {
	e := webtest.New(t)
	ctx := context.Background()
	v := newAdmin(t, e, "viewer@acme.test", auth.RoleViewer)
	// About 20 MB of events, many batches: more than the socket buffers
	// between server and client hold (the client's receive buffer is made
	// small below; the kernel caps the server's send buffer at a few MB),
	// so while the client reads nothing the server is stuck writing an
	// early batch, with later ones still to read.
	if _, err := e.Store.Pool.Exec(ctx, `INSERT INTO audit_events
		(chain_id, seq, tenant_id, occurred_at, actor_type, actor_id, action, diff, prev_hash, hash, hash_alg)
		SELECT $1, s.last + i, $1, now(), 'system', 'test', 'api_key.updated', json_build_object('pad', repeat('x', 3000)),
		       decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'), 'sha256'
		FROM generate_series(1, 6000) i, (SELECT max(seq) AS last FROM audit_events WHERE chain_id = $1) s`, e.Tenant.ID); err != nil {
		t.Fatal(err)
	}
	// A connection to another database of the same server, to cut this
	// one off.
	cfg := e.Store.Pool.Config().ConnConfig.Copy()
	dbName := cfg.Database
	cfg.Database = "postgres"
	admin, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{dbName}.Sanitize()+" ALLOW_CONNECTIONS true"); err != nil {
			t.Error(err)
		}
		admin.Close(ctx)
	})

	dialer := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 64<<10) })
		return errors.Join(err, serr)
	}}
	client := &http.Client{Jar: v.c.HTTP.Jar, Transport: &http.Transport{DialContext: dialer.DialContext}}
	res, err := client.Get(e.Server.URL + auditLog + "?format=jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("export: %d", res.StatusCode)
	}
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{dbName}.Sanitize()+" ALLOW_CONNECTIONS false"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", dbName); err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("reading the export after the database went away: %v, %d bytes; want an unexpected EOF", err, len(body))
	}
	if n := bytes.Count(body, []byte("\n")); len(body) == 0 || n >= 6000 {
		t.Errorf("%d bytes, %d lines before the cut", len(body), n)
	}
	logs := e.Logs.String()
	if !strings.Contains(logs, `"msg":"audit export cut short"`) {
		t.Error("the server did not log the cut")
	}
	if id := res.Header.Get("X-Request-Id"); id == "" || !regexp.MustCompile(`"msg":"request".*"request_id":"`+regexp.QuoteMeta(id)+`".*"path":"/settings/developers/audit-log".*"aborted":true`).MatchString(logs) {
		t.Errorf("no request line for the cut export %q", id)
	}
}
