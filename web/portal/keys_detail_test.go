package portal_test

import (
	"context"
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
