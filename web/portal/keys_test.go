package portal_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"keyward/web/apikey"
	"keyward/web/auth"
	"keyward/web/webtest"
)

var (
	revealRe = regexp.MustCompile(`data-testid="api-key-secret">(kw_[a-z]+_[0-9A-Za-z]+)<`)
	keyIDRe  = regexp.MustCompile(`href="/settings/developers/api-keys/([0-9a-f-]{36})"`)
)

type admin struct {
	e      *webtest.Env
	c      *webtest.Client
	secret string
}

func newAdmin(t *testing.T, e *webtest.Env, email, role string) *admin {
	_, secret, _ := e.EnrolledUser(e.Tenant, email, role)
	return &admin{e: e, c: e.SignIn(email, secret), secret: secret}
}

func keyForm(name string) url.Values {
	return url.Values{"name": {name}, "environment": {"production"}, "preset": {"full_access"},
		"ip_allowlist": {"203.0.113.0/24\n198.51.100.7"}, "rate_limit_requests": {"500"}, "rate_limit_window": {"1h"}}
}

// create submits the create form with a fresh code and returns the key id
// and the revealed key.
func (a *admin) create(t *testing.T, form url.Values) (string, string) {
	t.Helper()
	a.c.Get("/settings/developers/api-keys/new")
	form.Set("code", a.e.NextCode(a.secret))
	r := a.c.PostForm("/settings/developers/api-keys", form)
	m := revealRe.FindStringSubmatch(r.Body)
	id := keyIDRe.FindStringSubmatch(r.Body)
	if r.Status != http.StatusOK || m == nil || id == nil {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	return id[1], m[1]
}

func (a *admin) op(id, op string, form url.Values) webtest.Response {
	a.c.Get("/settings/developers/api-keys/" + id)
	if form.Get("code") == "" {
		form.Set("code", a.e.NextCode(a.secret))
	}
	return a.c.PostForm("/settings/developers/api-keys/"+id+"/"+op, form)
}

// assertNowhere fails if s appears in any table or in the server's log.
func assertNowhere(t *testing.T, e *webtest.Env, s string) {
	t.Helper()
	ctx := context.Background()
	rows, err := e.Store.Pool.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	for _, tb := range tables {
		var n int
		if err := e.Store.Pool.QueryRow(ctx, `SELECT count(*) FROM `+tb+` t WHERE position($1 in t::text) > 0`, s).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			t.Errorf("the full key is stored in table %s", tb)
		}
	}
	if strings.Contains(e.Logs.String(), s) {
		t.Error("the full key is in the server log")
	}
}

func TestCreateKeyRevealsOnceAndStoresOnlyAHash(t *testing.T) {
	e := webtest.New(t)
	a := newAdmin(t, e, "ann@acme.test", auth.RoleAdmin)
	if r := a.c.Get("/settings/developers/api-keys"); !strings.Contains(r.Body, "No API keys yet") || !strings.Contains(r.Body, "Create API key") {
		t.Fatal("empty state missing")
	}
	id, key := a.create(t, keyForm("Billing worker"))
	p, err := apikey.Parse(key)
	if err != nil || p.Env != apikey.Production {
		t.Fatalf("revealed key %q: %v", key, err)
	}
	assertNowhere(t, e, key)
	// The list shows it with its prefix, environment and status; the detail
	// page never shows the key again.
	r := a.c.Get("/settings/developers/api-keys")
	if strings.Count(r.Body, `data-testid="api-key-row"`) != 1 || !strings.Contains(r.Body, apikey.DisplayPrefix(p)) ||
		!strings.Contains(r.Body, ">production<") || !strings.Contains(r.Body, ">active<") || strings.Contains(r.Body, key) {
		t.Fatalf("list: %s", r.Body)
	}
	r = a.c.Get("/settings/developers/api-keys/" + id)
	if r.Status != http.StatusOK || strings.Contains(r.Body, key) || !strings.Contains(r.Body, "api_key.created") ||
		!strings.Contains(r.Body, "203.0.113.0/24, 198.51.100.7/32") || !strings.Contains(r.Body, "500 / hour") {
		t.Fatalf("detail: %d %s", r.Status, r.Body)
	}
	// The name is unique among live keys.
	a.c.Get("/settings/developers/api-keys/new")
	f := keyForm("billing WORKER")
	f.Set("code", e.NextCode(a.secret))
	if r := a.c.PostForm("/settings/developers/api-keys", f); r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "already exists") {
		t.Fatalf("duplicate name: %d", r.Status)
	}
	if n := count(t, e, `SELECT count(*) FROM audit_events WHERE action = 'api_key.created' AND target_id = $1`, id); n != 1 {
		t.Errorf("api_key.created events = %d", n)
	}
}

func TestCreateKeyRejectsBadInputAndBadCodes(t *testing.T) {
	e := webtest.New(t)
	a := newAdmin(t, e, "ann@acme.test", auth.RoleAdmin)
	a.c.Get("/settings/developers/api-keys/new")
	f := keyForm("Worker")
	f.Set("ip_allowlist", "10.0.0.1/8")
	f.Set("code", e.NextCode(a.secret))
	r := a.c.PostForm("/settings/developers/api-keys", f)
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "host bits set") || !strings.Contains(r.Body, `value="Worker"`) {
		t.Fatalf("bad CIDR: %d", r.Status)
	}
	f = keyForm("Worker")
	f.Set("code", wrongCode(e, a.secret))
	r = a.c.PostForm("/settings/developers/api-keys", f)
	if r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, "That code is not valid") || !strings.Contains(r.Body, `value="Worker"`) {
		t.Fatalf("wrong code: %d", r.Status)
	}
	used := e.NextCode(a.secret)
	f.Set("code", used)
	if r := a.c.PostForm("/settings/developers/api-keys", f); r.Status != http.StatusOK {
		t.Fatalf("right code: %d", r.Status)
	}
	f.Set("name", "Second")
	if r := a.c.PostForm("/settings/developers/api-keys", f); r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, "already used") {
		t.Fatalf("replayed code: %d", r.Status)
	}
	if n := count(t, e, `SELECT count(*) FROM api_keys`); n != 1 {
		t.Errorf("keys = %d, want 1", n)
	}
}

func TestViewerIsReadOnly(t *testing.T) {
	e := webtest.New(t)
	a := newAdmin(t, e, "ann@acme.test", auth.RoleAdmin)
	id, _ := a.create(t, keyForm("Worker"))
	v := newAdmin(t, e, "vic@acme.test", auth.RoleViewer)
	if r := v.c.Get("/settings/developers/api-keys/" + id); r.Status != http.StatusOK || strings.Contains(r.Body, "rotate-form") {
		t.Fatalf("viewer detail: %d", r.Status)
	}
	if r := v.c.Get("/settings/developers/api-keys/new"); r.Status != http.StatusForbidden {
		t.Errorf("viewer new form: %d", r.Status)
	}
	if r := v.c.PostForm("/settings/developers/api-keys", keyForm("Mine")); r.Status != http.StatusForbidden {
		t.Errorf("viewer create: %d", r.Status)
	}
	for _, op := range []string{"rotate", "disable", "enable", "revoke"} {
		if r := v.op(id, op, url.Values{"grace": {"0"}}); r.Status != http.StatusForbidden {
			t.Errorf("viewer %s: %d", op, r.Status)
		}
	}
	if n := count(t, e, `SELECT count(*) FROM api_keys WHERE disabled_at IS NULL AND revoked_at IS NULL`); n != 1 {
		t.Error("a viewer changed a key")
	}
}

func TestKeyOperationsNeedCSRFAndStayInTenant(t *testing.T) {
	e := webtest.New(t)
	a := newAdmin(t, e, "ann@acme.test", auth.RoleAdmin)
	id, _ := a.create(t, keyForm("Worker"))
	if r := a.c.PostFormRaw("/settings/developers/api-keys/"+id+"/revoke", url.Values{"code": {e.NextCode(a.secret)}}); r.Status != http.StatusForbidden {
		t.Fatalf("revoke without CSRF: %d", r.Status)
	}
	other := e.NewTenant("globex")
	_, secret, _ := e.EnrolledUser(other, "gus@globex.test", auth.RoleOwner)
	g := &admin{e: e, c: e.SignIn("gus@globex.test", secret), secret: secret}
	if r := g.c.Get("/settings/developers/api-keys/" + id); r.Status != http.StatusNotFound {
		t.Errorf("another tenant's key detail: %d", r.Status)
	}
	if r := g.op(id, "revoke", url.Values{}); r.Status != http.StatusNotFound {
		t.Errorf("another tenant's revoke: %d", r.Status)
	}
	if r := g.c.Get("/settings/developers/api-keys"); strings.Contains(r.Body, "Worker") {
		t.Error("another tenant's list shows the key")
	}
	for _, bad := range []string{"not-a-uuid", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"} {
		if r := a.c.Get("/settings/developers/api-keys/" + bad); r.Status != http.StatusNotFound {
			t.Errorf("malformed id %s: %d", bad, r.Status)
		}
	}
	if r := a.c.Get("/settings/developers/api-keys?page=100000000"); r.Status != http.StatusOK {
		t.Errorf("huge page number: %d", r.Status)
	}
	if n := count(t, e, `SELECT count(*) FROM api_keys WHERE revoked_at IS NULL`); n != 1 {
		t.Error("the key was revoked")
	}
}

func TestDisableEnableRevoke(t *testing.T) {
	e := webtest.New(t)
	a := newAdmin(t, e, "ann@acme.test", auth.RoleAdmin)
	id, _ := a.create(t, keyForm("Worker"))
	if r := a.op(id, "disable", url.Values{}); r.Status != http.StatusOK || !strings.Contains(r.Body, "The key is disabled") {
		t.Fatalf("disable: %d", r.Status)
	}
	// The flash is shown once: the same page again has none.
	if r := a.c.Get("/settings/developers/api-keys/" + id); strings.Contains(r.Body, "The key is disabled") {
		t.Error("the flash message shows a second time")
	}
	if r := a.c.Get("/settings/developers/api-keys?status=disabled"); strings.Count(r.Body, `data-testid="api-key-row"`) != 1 {
		t.Error("the disabled filter does not show the key")
	}
	if r := a.op(id, "disable", url.Values{}); r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "already disabled") {
		t.Fatalf("disable twice: %d", r.Status)
	}
	if r := a.op(id, "enable", url.Values{"code": {wrongCode(e, a.secret)}}); r.Status != http.StatusUnauthorized {
		t.Fatalf("enable with a wrong code: %d", r.Status)
	}
	if r := a.op(id, "enable", url.Values{}); r.Status != http.StatusOK {
		t.Fatalf("enable: %d", r.Status)
	}
	if r := a.op(id, "revoke", url.Values{"confirm_name": {"Worker"}}); r.Status != http.StatusOK || !strings.Contains(r.Body, "revoked") {
		t.Fatalf("revoke: %d", r.Status)
	}
	if r := a.op(id, "enable", url.Values{}); r.Status != http.StatusConflict {
		t.Fatalf("enable after revoke: %d", r.Status)
	}
	if n := count(t, e, `SELECT count(*) FROM api_key_secrets WHERE key_id = $1 AND (expires_at IS NULL OR expires_at > $2)`, id, e.Clock.Now()); n != 0 {
		t.Error("a revoked key still has a live secret")
	}
	// The list still names a revoked key by its prefix.
	var prefix string
	if err := e.Store.Pool.QueryRow(context.Background(), `SELECT prefix FROM api_key_secrets WHERE key_id = $1`, id).Scan(&prefix); err != nil {
		t.Fatal(err)
	}
	if r := a.c.Get("/settings/developers/api-keys?status=revoked"); !strings.Contains(r.Body, prefix) {
		t.Errorf("the list does not show the revoked key's prefix %s", prefix)
	}
	acts := auditActions(t, e)
	for _, want := range []string{"api_key.disabled", "api_key.enabled", "api_key.revoked"} {
		if !contains(acts, want) {
			t.Errorf("audit lacks %s", want)
		}
	}
	if n := count(t, e, `SELECT count(*) FROM audit_events WHERE target_id = $1`, id); n != 4 {
		t.Errorf("the key's history has %d events, want 4", n)
	}
}

func TestRotateGrace(t *testing.T) {
	e := webtest.New(t)
	a := newAdmin(t, e, "ann@acme.test", auth.RoleAdmin)
	id, first := a.create(t, keyForm("Worker"))
	r := a.op(id, "rotate", url.Values{"grace": {"1h"}})
	m := revealRe.FindStringSubmatch(r.Body)
	if r.Status != http.StatusOK || m == nil || m[1] == first {
		t.Fatalf("rotate: %d", r.Status)
	}
	assertNowhere(t, e, m[1])
	var until time.Time
	e.Store.Pool.QueryRow(context.Background(), `SELECT expires_at FROM api_key_secrets WHERE hash = $1`, apikey.Hash(first)).Scan(&until)
	if d := until.Sub(e.Clock.Now()); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("the old secret expires in %s, want 1h", d)
	}
	// Both secrets work during the grace window; past it, on the same
	// clock, only the new one does. The clock moves; nothing sleeps.
	if _, err := e.App.Verifier.Verify(context.Background(), first); err != nil {
		t.Fatalf("the old secret fails during its grace window: %v", err)
	}
	for range 3 { // three steps, each well inside the session's idle timeout
		e.Clock.Advance(20*time.Minute + 30*time.Second)
		a.c.Get("/settings/developers/api-keys/" + id)
	}
	if _, err := e.App.Verifier.Verify(context.Background(), first); !errors.Is(err, apikey.ErrRotated) {
		t.Fatalf("the old secret past its grace window: %v, want ErrRotated", err)
	}
	if _, err := e.App.Verifier.Verify(context.Background(), m[1]); err != nil {
		t.Fatalf("the new secret: %v", err)
	}
	if r := a.c.Get("/settings/developers/api-keys/" + id); !strings.Contains(r.Body, `expired</span> <time datetime="`+until.UTC().Format(time.RFC3339)+`"`) {
		t.Error("past the grace window, the detail page does not show the old secret as expired")
	}
	e.Clock.Advance(-3 * (20*time.Minute + 30*time.Second))
	if n := count(t, e, `SELECT count(*) FROM api_key_secrets WHERE key_id = $1 AND expires_at IS NULL`, id); n != 1 {
		t.Errorf("live secrets without expiry = %d, want 1 (the new one)", n)
	}
	if r := a.c.Get("/settings/developers/api-keys/" + id); !strings.Contains(r.Body, "rotation grace") {
		t.Error("the detail page does not show the grace window")
	}
	// Grace 0 retires every current secret at once.
	a.op(id, "rotate", url.Values{"grace": {"0"}})
	if n := count(t, e, `SELECT count(*) FROM api_key_secrets WHERE key_id = $1 AND (expires_at IS NULL OR expires_at > $2)`, id, e.Clock.Now()); n != 1 {
		t.Errorf("after rotating with no grace, live secrets = %d, want 1", n)
	}
	if r := a.op(id, "rotate", url.Values{"grace": {"5h"}}); r.Status != http.StatusBadRequest || !strings.Contains(r.Body, `aria-describedby="err-grace"`) {
		t.Errorf("grace 5h: %d, or the grace window is not marked", r.Status)
	}
	// A wrong code keeps the chosen window on the form.
	r = a.op(id, "rotate", url.Values{"grace": {"24h"}, "code": {wrongCode(e, a.secret)}})
	if r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, `<option value="24h" selected`) || strings.Contains(r.Body, `<option value="1h" selected`) {
		t.Errorf("after a wrong code the rotate form lost the 24h choice: %d", r.Status)
	}
}

func TestEditKey(t *testing.T) {
	e := webtest.New(t)
	a := newAdmin(t, e, "ann@acme.test", auth.RoleAdmin)
	id, _ := a.create(t, keyForm("Worker"))
	r := a.c.Get("/settings/developers/api-keys/" + id + "/edit")
	if !strings.Contains(r.Body, `value="Worker"`) || !strings.Contains(r.Body, "203.0.113.0/24") {
		t.Fatalf("edit form: %d", r.Status)
	}
	f := url.Values{"name": {"Renamed"}, "preset": {"read_only"}, "sources": {"checkout, billing"}, "code": {e.NextCode(a.secret)}}
	r = a.c.PostForm("/settings/developers/api-keys/"+id, f)
	if r.Status != http.StatusOK || !strings.Contains(r.Body, "Changes saved") || !strings.Contains(r.Body, "checkout, billing") {
		t.Fatalf("edit: %d %s", r.Status, r.Body)
	}
	var diff string
	e.Store.Pool.QueryRow(context.Background(), `SELECT diff::text FROM audit_events WHERE action = 'api_key.updated'`).Scan(&diff)
	if !strings.Contains(diff, `"name":{"from":"Worker","to":"Renamed"}`) || !strings.Contains(diff, "ip_allowlist") {
		t.Errorf("update diff = %s", diff)
	}
	// An expiry with a time of day, already past, survives an edit that
	// keeps its date: the key can still be renamed, and nothing moves.
	// The key is made with that expiry an hour ahead, then the
	// application's clock moves two hours on (and Ann signs in again).
	at := e.Clock.Now().Add(time.Hour).UTC().Truncate(time.Second)
	owner, _ := e.Store.GetUserByEmail(context.Background(), "ann@acme.test")
	expiring, _ := e.Key(e.Tenant, owner, apikey.Config{Name: "Expiring", Environment: apikey.Production, Scopes: apikey.AllScopes, ExpiresAt: &at})
	id = expiring.ID
	e.Clock.Advance(2 * time.Hour)
	a.c = e.SignIn("ann@acme.test", a.secret)
	r = a.c.Get("/settings/developers/api-keys/" + id + "/edit")
	f = url.Values{"name": {"Renamed again"}, "preset": {"read_only"}, "expires_at": {at.Format("2006-01-02")}, "code": {e.NextCode(a.secret)}}
	if r = a.c.PostForm("/settings/developers/api-keys/"+id, f); r.Status != http.StatusOK {
		t.Fatalf("edit of an expired key: %d %s", r.Status, r.Body)
	}
	var got time.Time
	var name string
	e.Store.Pool.QueryRow(context.Background(), `SELECT expires_at, name FROM api_keys WHERE id = $1`, id).Scan(&got, &name)
	if !got.Equal(at) || name != "Renamed again" {
		t.Errorf("after the edit: expiry %v (want %v), name %q", got, at, name)
	}
	// Moving it to another past date is still refused.
	f = url.Values{"name": {"x"}, "preset": {"read_only"}, "expires_at": {"2001-01-01"}, "code": {e.NextCode(a.secret)}}
	if r = a.c.PostForm("/settings/developers/api-keys/"+id, f); r.Status != http.StatusBadRequest {
		t.Errorf("a new past expiry: %d", r.Status)
	}
}
