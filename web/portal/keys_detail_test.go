package portal_test

import (
	"context"
	"errors"
	"html"
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

// focused reports whether the page's form with id takes the focus when
// the page opens.
func focused(body, id string) bool {
	for _, tag := range regexp.MustCompile(`<form [^>]*>`).FindAllString(body, -1) {
		if strings.Contains(tag, ` id="`+id+`"`) {
			return strings.Contains(tag, " autofocus") && strings.Contains(tag, ` tabindex="-1"`)
		}
	}
	return false
}

// secretRow is the detail page's row of the secret with prefix.
func secretRow(t *testing.T, body, prefix string) string {
	t.Helper()
	for _, row := range regexp.MustCompile(`(?s)<tr data-testid="api-key-secret-row">.*?</tr>`).FindAllString(body, -1) {
		if strings.Contains(row, "<code>"+prefix+"…</code>") {
			return row
		}
	}
	t.Fatalf("no secret row for %s", prefix)
	return ""
}

func prefixOf(t *testing.T, key string) string {
	t.Helper()
	p, err := apikey.Parse(key)
	if err != nil {
		t.Fatal(err)
	}
	return apikey.DisplayPrefix(p)
}

// TestSecretsShowTheirLastRequest: during a rotation's grace the key page
// says when each secret last presented a request, and when the old one
// stops working.
func TestSecretsShowTheirLastRequest(t *testing.T) {
	e := webtest.New(t)
	a := newAdmin(t, e, "ann@acme.test", auth.RoleAdmin)
	form := keyForm("Worker")
	form.Del("ip_allowlist")
	id, oldKey := a.create(t, form)
	r := a.op(id, "rotate", url.Values{"grace": {"24h"}})
	newKey := revealRe.FindStringSubmatch(r.Body)[1]
	oldPrefix, newPrefix := prefixOf(t, oldKey), prefixOf(t, newKey)
	page := "/settings/developers/api-keys/" + id
	if r := a.c.Get(page); !strings.Contains(secretRow(t, r.Body, oldPrefix), "none yet") {
		t.Error("an unused secret does not say it has no request yet")
	}

	e.API("GET", "/api/v1/key", oldKey, "")
	e.App.Usage.Flush(context.Background())
	e.Clock.Advance(5 * time.Minute)
	e.API("GET", "/api/v1/key", newKey, "")
	e.App.Usage.Flush(context.Background())

	r = a.c.Get(page)
	oldRow, newRow := secretRow(t, r.Body, oldPrefix), secretRow(t, r.Body, newPrefix)
	if !strings.Contains(oldRow, "in rotation grace") || !strings.Contains(oldRow, ">in 23 hours</time>") || !strings.Contains(oldRow, ">5 min ago</time>") {
		t.Errorf("the old secret's row does not show its grace and its last request 5 min ago: %s", oldRow)
	}
	if !strings.Contains(newRow, ">active<") || !strings.Contains(newRow, ">just now</time>") {
		t.Errorf("the new secret's row does not show it active and used just now: %s", newRow)
	}
	// Past the grace, a request with the old secret is refused, and still
	// its last request: a client is being refused with it.
	e.Clock.Advance(24 * time.Hour)
	a.c = e.SignIn("ann@acme.test", a.secret)
	if r := e.API("GET", "/api/v1/key", oldKey, ""); r.Status != http.StatusUnauthorized {
		t.Fatalf("the old secret past its grace: %d", r.Status)
	}
	e.App.Usage.Flush(context.Background())
	if row := secretRow(t, a.c.Get(page).Body, oldPrefix); !strings.Contains(row, ">expired<") || !strings.Contains(row, ">just now</time></td>") {
		t.Errorf("past its grace the old secret's row does not show it expired and refused just now: %s", row)
	}
}

// TestEndGrace: an admin can end a rotation's grace at once: confirmed by
// a code, audited, refused to a viewer and to another tenant, and the old
// secret is refused from then on.
func TestEndGrace(t *testing.T) {
	e := webtest.New(t)
	a := newAdmin(t, e, "ann@acme.test", auth.RoleAdmin)
	form := keyForm("Worker")
	form.Del("ip_allowlist")
	id, oldKey := a.create(t, form)
	r := a.op(id, "rotate", url.Values{"grace": {"24h"}})
	newKey := revealRe.FindStringSubmatch(r.Body)[1]
	oldPrefix, newPrefix := prefixOf(t, oldKey), prefixOf(t, newKey)
	page := "/settings/developers/api-keys/" + id
	r = a.c.Get(page)
	if !strings.Contains(r.Body, `data-testid="end-grace-`+oldPrefix+`-form"`) || strings.Contains(r.Body, `end-grace-`+newPrefix) {
		t.Fatal("the page offers to end the grace of the wrong secrets")
	}

	// A viewer sees the grace but cannot end it.
	v := newAdmin(t, e, "vic@acme.test", auth.RoleViewer)
	if r := v.c.Get(page); r.Status != 200 || !strings.Contains(r.Body, "in rotation grace") || strings.Contains(r.Body, "end-grace-form") || strings.Contains(r.Body, "End grace now") {
		t.Error("a viewer's page offers to end the grace")
	}
	if r := v.op(id, "end-grace", url.Values{"prefix": {oldPrefix}}); r.Status != http.StatusForbidden {
		t.Errorf("a viewer ending the grace: %d", r.Status)
	}
	// Another tenant's admin gets 404.
	other := e.NewTenant("globex")
	_, gs, _ := e.EnrolledUser(other, "gus@globex.test", auth.RoleOwner)
	g := &admin{e: e, c: e.SignIn("gus@globex.test", gs), secret: gs}
	if r := g.op(id, "end-grace", url.Values{"prefix": {oldPrefix}}); r.Status != http.StatusNotFound {
		t.Errorf("another tenant ending the grace: %d", r.Status)
	}
	// A wrong code changes nothing; the failed form takes the focus.
	r = a.op(id, "end-grace", url.Values{"prefix": {oldPrefix}, "code": {wrongCode(e, a.secret)}})
	if r.Status != http.StatusUnauthorized || !focused(r.Body, "op-end-grace-"+oldPrefix) {
		t.Errorf("a wrong code: %d, or the failed form does not take the focus", r.Status)
	}
	// The current secret has no grace to end: refused before the code.
	code := e.NextCode(a.secret)
	if r := a.op(id, "end-grace", url.Values{"prefix": {newPrefix}, "code": {code}}); r.Status != http.StatusConflict || !strings.Contains(r.Body, "not in a rotation grace window") {
		t.Errorf("ending the current secret's grace: %d", r.Status)
	}
	if _, err := e.App.Verifier.Verify(context.Background(), oldKey); err != nil {
		t.Fatalf("refused attempts ended the grace: %v", err)
	}

	// The same code, unspent, ends the old secret's grace.
	r = a.op(id, "end-grace", url.Values{"prefix": {oldPrefix}, "code": {code}})
	if len(r.Redirects) != 1 || r.Redirects[0] != http.StatusSeeOther || r.Path != page || !strings.Contains(r.Body, "no longer works") {
		t.Fatalf("end grace: redirects %v to %s (%d)", r.Redirects, r.Path, r.Status)
	}
	// The change reaches the verifier's cache by NOTIFY, within
	// milliseconds; until then the cache may still hold the old secret.
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, err = e.App.Verifier.Verify(context.Background(), oldKey); errors.Is(err, apikey.ErrRotated) {
			break
		}
	}
	if !errors.Is(err, apikey.ErrRotated) {
		t.Errorf("the old secret after its grace was ended: %v, want ErrRotated", err)
	}
	if r := e.API("GET", "/api/v1/key", oldKey, ""); r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, "KEY_EXPIRED") {
		t.Errorf("a request with the old secret: %d %s", r.Status, r.Body)
	}
	if _, err := e.App.Verifier.Verify(context.Background(), newKey); err != nil {
		t.Errorf("the new secret stopped too: %v", err)
	}
	if n := count(t, e, `SELECT count(*) FROM audit_events WHERE action = 'api_key.grace_ended' AND target_id = $1 AND diff::text LIKE '%'||$2||'%'`, id, oldPrefix); n != 1 {
		t.Errorf("api_key.grace_ended events naming the secret = %d", n)
	}
	r = a.c.Get(page)
	if !strings.Contains(secretRow(t, r.Body, oldPrefix), ">expired<") || strings.Contains(r.Body, "End grace now") {
		t.Error("after the grace ended the old secret is not shown expired, or still offers to end it")
	}
	if !strings.Contains(r.Body, "Rotation grace ended") || !strings.Contains(r.Body, "<li>Secret: "+oldPrefix+"…</li>") {
		t.Error("the history does not describe the ended grace")
	}
	// Ending it again is refused: nothing left to end.
	if r := a.op(id, "end-grace", url.Values{"prefix": {oldPrefix}}); r.Status != http.StatusConflict {
		t.Errorf("ending an ended grace: %d", r.Status)
	}
}

// TestRevokeAsksForTheName: revoking in the portal needs the key's name
// typed again; a wrong or missing name is a field error that changes
// nothing and spends no code, so the same code then works with the name.
// The page comes back with the revoke form taking the focus.
func TestRevokeAsksForTheName(t *testing.T) {
	e := webtest.New(t)
	a := newAdmin(t, e, "ann@acme.test", auth.RoleAdmin)
	id, _ := a.create(t, keyForm("Billing worker"))
	page := "/settings/developers/api-keys/" + id
	a.c.Get(page)
	code := e.NextCode(a.secret)
	for _, name := range []string{"", "Billing", "billing worker 2"} {
		before := keyState(t, e)
		r := a.c.PostForm(page+"/revoke", url.Values{"confirm_name": {name}, "code": {code}})
		if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, `aria-describedby="err-revoke-confirm_name"`) || !strings.Contains(r.Body, `id="err-revoke-confirm_name"`) {
			t.Fatalf("revoke with the name %q: %d, or the name field is not marked", name, r.Status)
		}
		if !focused(r.Body, "op-revoke") {
			t.Errorf("name %q: the failed revoke form does not take the focus", name)
		}
		if name != "" && !strings.Contains(r.Body, `value="`+name+`"`) {
			t.Errorf("name %q: the typed name is not kept", name)
		}
		if keyState(t, e) != before {
			t.Fatalf("a revoke with the name %q changed the key", name)
		}
	}
	if r := a.c.PostForm(page+"/revoke", url.Values{"confirm_name": {"x"}}); r.Status != http.StatusBadRequest || !strings.Contains(r.Body, `id="err-revoke-code"`) {
		t.Error("a wrong name and no code: the code's problem is not shown too")
	}
	// The same code, never spent, revokes with the name (case and spaces
	// aside).
	r := a.c.PostForm(page+"/revoke", url.Values{"confirm_name": {"  BILLING worker "}, "code": {code}})
	if len(r.Redirects) != 1 || r.Redirects[0] != http.StatusSeeOther || !strings.Contains(r.Body, "The key is revoked") {
		t.Fatalf("revoke with the name: redirects %v (%d)", r.Redirects, r.Status)
	}
}

// TestRevokedKeySaysWhoAndWhen: a revoked key's page says when and by
// whom, has no expiry to speak of, and no secret of it reads as active.
func TestRevokedKeySaysWhoAndWhen(t *testing.T) {
	e := webtest.New(t)
	a := newAdmin(t, e, "ann@acme.test", auth.RoleAdmin)
	id, _ := a.create(t, keyForm("Worker"))
	page := "/settings/developers/api-keys/" + id
	if r := a.c.Get(page); !strings.Contains(r.Body, `data-testid="api-key-expiry">never</dd>`) || strings.Contains(r.Body, `data-testid="api-key-revoked"`) {
		t.Fatal("a live key without expiry does not read never, or reads as revoked")
	}
	a.op(id, "revoke", url.Values{"confirm_name": {"Worker"}})
	e.Clock.Advance(3 * time.Minute)
	r := a.c.Get(page)
	if !regexp.MustCompile(`data-testid="api-key-revoked"><time datetime="[^"]+" title="[^"]+">3 min ago</time> by ann@acme.test</dd>`).MatchString(r.Body) {
		t.Error("the page does not say the key was revoked 3 min ago by ann@acme.test")
	}
	if !strings.Contains(r.Body, `data-testid="api-key-expiry">— (revoked)</dd>`) {
		t.Error("a revoked key's expiry reads as if it could still expire")
	}
	if strings.Contains(r.Body, ">active<") || !strings.Contains(r.Body, ">revoked with the key<") {
		t.Error("a revoked key's secret is not shown revoked with it")
	}
}

// TestDisabledKeysSecretsAreNotActive: a disabled key's secrets say they
// are disabled with it.
func TestDisabledKeysSecretsAreNotActive(t *testing.T) {
	e := webtest.New(t)
	a := newAdmin(t, e, "ann@acme.test", auth.RoleAdmin)
	id, _ := a.create(t, keyForm("Worker"))
	a.op(id, "rotate", url.Values{"grace": {"1h"}})
	if r := a.op(id, "disable", url.Values{}); r.Status != http.StatusOK {
		t.Fatalf("disable: %d", r.Status)
	}
	r := a.c.Get("/settings/developers/api-keys/" + id)
	states := regexp.MustCompile(`data-testid="api-key-secret-state">([^<]*)<`).FindAllStringSubmatch(r.Body, -1)
	if len(states) != 2 {
		t.Fatalf("%d secret states", len(states))
	}
	for _, s := range states {
		if !strings.HasPrefix(s[1], "disabled with the key") {
			t.Errorf("a disabled key's secret reads %q", s[1])
		}
	}
}

// TestFailedOperationOpensAtItsForm: the form that failed takes the focus;
// an error about the key as a whole, which no form shows, is at the top.
func TestFailedOperationOpensAtItsForm(t *testing.T) {
	e := webtest.New(t)
	a := newAdmin(t, e, "ann@acme.test", auth.RoleAdmin)
	id, _ := a.create(t, keyForm("Worker"))
	r := a.op(id, "disable", url.Values{"code": {wrongCode(e, a.secret)}})
	if r.Status != http.StatusUnauthorized || strings.Count(r.Body, "autofocus") != 1 ||
		!focused(r.Body, "op-disable") {
		t.Errorf("wrong code on disable: %d, or the disable form is not the one focused", r.Status)
	}
	a.op(id, "disable", url.Values{})
	// Disabling again: the page now shows the enable form, so the error is
	// at the top, and takes the focus there.
	r = a.op(id, "disable", url.Values{})
	if r.Status != http.StatusBadRequest || strings.Count(r.Body, "autofocus") != 1 ||
		!strings.Contains(r.Body, `<p class="alert" role="alert" tabindex="-1" autofocus data-testid="page-error">The key is already disabled.</p>`) {
		t.Errorf("disable twice: %d, or the error is not at the top", r.Status)
	}
}

// TestKeyHistoryReadsInWords: the key page's history says each change in
// words and units, one line per field, with the stored diff folded under
// it.
func TestKeyHistoryReadsInWords(t *testing.T) {
	e := webtest.New(t)
	a := newAdmin(t, e, "ann@acme.test", auth.RoleAdmin)
	form := keyForm("Worker")
	form.Set("ip_allowlist", "198.51.100.7")
	id, key := a.create(t, form)
	page := "/settings/developers/api-keys/" + id
	a.c.Get(page + "/edit")
	if r := a.c.PostForm(page, url.Values{"name": {"Worker"}, "preset": {"full_access"}, "ip_allowlist": {"198.51.100.7\n127.0.0.1"},
		"rate_limit_requests": {"1000"}, "rate_limit_window": {"1h"}, "expires_at": {"2099-01-31"}, "code": {e.NextCode(a.secret)}}); r.Status != http.StatusOK {
		t.Fatalf("edit: %d", r.Status)
	}
	e.API("GET", "/api/v1/key", key, "")
	e.App.Usage.Flush(context.Background())
	a.op(id, "rotate", url.Values{"grace": {"1h"}})
	a.op(id, "disable", url.Values{})
	a.op(id, "enable", url.Values{})
	a.op(id, "revoke", url.Values{"confirm_name": {"Worker"}})

	r := a.c.Get(page)
	for _, want := range []string{
		"Key created", "<li>Rate limit: 500 per hour</li>", "<li>IP allowlist: 198.51.100.7/32</li>", "<li>Name: Worker</li>",
		"Settings changed", "<li>Rate limit: 500 per hour → 1,000 per hour</li>", "<li>IP allowlist: added 127.0.0.1/32</li>",
		"<li>Expiry: never → 2099-01-31 00:00 UTC</li>",
		"Used from a new address", "<li>New address: 127.0.0.1</li>", "the key itself",
		"Secret rotated", "<li>Grace: 1 hour</li>",
		"Key disabled", "<li>Status: enabled → disabled</li>", "Key enabled", "<li>Status: disabled → enabled</li>",
		"Key revoked", "<li>Status: active → revoked</li>",
		`<details class="audit-diff"><summary>Stored change</summary>`,
	} {
		if !strings.Contains(r.Body, want) {
			t.Errorf("the history lacks %q", want)
		}
	}
	lines := regexp.MustCompile(`<ul class="audit-lines"[^>]*>(.*?)</ul>`).FindAllStringSubmatch(r.Body, -1)
	if len(lines) < 7 {
		t.Fatalf("%d events with lines, want 7", len(lines))
	}
	for _, l := range lines {
		if text := html.UnescapeString(l[1]); strings.ContainsAny(text, "{}") || regexp.MustCompile(`\d+h\d+m\d+s`).MatchString(text) {
			t.Errorf("a history line holds JSON or a Go duration: %s", text)
		}
	}
	// New events store readable forms too.
	var diff string
	e.Store.Pool.QueryRow(context.Background(), `SELECT diff::text FROM audit_events WHERE action = 'api_key.updated'`).Scan(&diff)
	if !strings.Contains(diff, `"rate_limit":{"from":{"requests":500,"window":"1h"},"to":{"requests":1000,"window":"1h"}}`) {
		t.Errorf("the update's diff: %s", diff)
	}
	e.Store.Pool.QueryRow(context.Background(), `SELECT diff::text FROM audit_events WHERE action = 'api_key.rotated'`).Scan(&diff)
	if !strings.Contains(diff, `"grace":"1h"`) {
		t.Errorf("the rotation's diff: %s", diff)
	}
}
