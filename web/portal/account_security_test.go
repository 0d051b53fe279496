package portal_test

import (
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

// TestAccountSecurity: the account page lists the user's sessions with
// their address and browser; "sign out other sessions" ends the others;
// new recovery codes replace the old; replacing the authenticator needs a
// current code, then a code from the new one, after which only the new
// one works.
func TestAccountSecurity(t *testing.T) {
	e := webtest.New(t)
	_, secret, oldCodes := e.EnrolledUser(e.Tenant, "ann@acme.test", auth.RoleAdmin)
	first := e.SignIn("ann@acme.test", secret)
	second := e.SignIn("ann@acme.test", secret)
	r := first.Get("/account")
	if n := strings.Count(r.Body, `data-testid="session-row"`); n != 2 || !strings.Contains(r.Body, "127.0.0.1") || !strings.Contains(r.Body, "this session") {
		t.Fatalf("sessions listed: %d: %s", n, r.Body)
	}
	if r := first.PostForm("/account/sessions/others", url.Values{}); r.Path != "/account" || !strings.Contains(r.Body, "other sessions were signed out") {
		t.Fatalf("sign out others: %d at %s", r.Status, r.Path)
	}
	if r := second.Get("/account"); r.Path != "/login" {
		t.Errorf("the other session goes on: at %s", r.Path)
	}
	if r := first.Get("/account"); r.Path != "/account" || strings.Count(r.Body, `data-testid="session-row"`) != 1 {
		t.Errorf("this session ended too, or the other is still listed")
	}

	// New recovery codes: shown once; the old ones stop working.
	first.Get("/account")
	r = first.PostForm("/account/recovery-codes", url.Values{"code": {wrongCode(e, secret)}})
	if r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, `aria-describedby="err-recovery-code"`) {
		t.Errorf("recovery codes with a wrong code: %d", r.Status)
	}
	r = first.PostForm("/account/recovery-codes", url.Values{"code": {e.NextCode(secret)}})
	codes := recoveryRe.FindAllStringSubmatch(r.Body, -1)
	if r.Status != http.StatusOK || len(codes) != 10 || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("new recovery codes: %d, %d codes", r.Status, len(codes))
	}
	c, _ := e.PasswordStep("ann@acme.test")
	if r := c.PostForm("/login/totp", url.Values{"code": {oldCodes[0]}}); r.Status != http.StatusUnauthorized {
		t.Errorf("an old recovery code still works: %d", r.Status)
	}
	if r := c.PostForm("/login/totp", url.Values{"code": {codes[0][1]}}); r.Path != "/settings/developers/api-keys" {
		t.Errorf("a new recovery code: at %s", r.Path)
	}

	// Replace the authenticator.
	first.Get("/account/authenticator")
	if r := first.PostForm("/account/authenticator/confirm", url.Values{"code": {"123456"}}); r.Path != "/account/authenticator" || strings.Contains(r.Body, "totp-secret") {
		t.Errorf("confirming with no replacement under way: at %s", r.Path)
	}
	r = first.PostForm("/account/authenticator", url.Values{"code": {e.NextCode(secret)}})
	m := regexp.MustCompile(`data-testid="totp-secret">([A-Z2-7]+)<`).FindStringSubmatch(r.Body)
	if r.Path != "/account/authenticator" || m == nil || m[1] == secret {
		t.Fatalf("replacement, step 2: at %s", r.Path)
	}
	newSecret := m[1]
	if r := first.PostForm("/account/authenticator/confirm", url.Values{"code": {wrongCode(e, newSecret)}}); r.Status != http.StatusUnauthorized {
		t.Errorf("a wrong code for the new authenticator: %d", r.Status)
	}
	if r := first.PostForm("/account/authenticator/confirm", url.Values{"code": {e.NextCode(newSecret)}}); r.Path != "/account" || !strings.Contains(r.Body, "authenticator was replaced") {
		t.Fatalf("replacement confirmed: %d at %s: %s", r.Status, r.Path, r.Body)
	}
	c, _ = e.PasswordStep("ann@acme.test")
	if r := c.PostForm("/login/totp", url.Values{"code": {e.NextCode(secret)}}); r.Status != http.StatusUnauthorized {
		t.Errorf("the old authenticator still works: %d", r.Status)
	}
	if r := c.PostForm("/login/totp", url.Values{"code": {e.NextCode(newSecret)}}); r.Path != "/settings/developers/api-keys" {
		t.Errorf("the new authenticator: at %s", r.Path)
	}
	// A replacement left too long runs out.
	first.Get("/account/authenticator")
	first.PostForm("/account/authenticator", url.Values{"code": {e.NextCode(newSecret)}})
	e.Clock.Advance(auth.ReplaceWindow)
	if r := first.Get("/account/authenticator"); strings.Contains(r.Body, "totp-secret") || !strings.Contains(r.Body, "run out") {
		t.Errorf("a replacement past its window: %s", r.Body)
	}
	acts := auditActions(t, e)
	for _, want := range []string{"user.sessions_ended", "auth.mfa.recovery_codes_regenerated", "auth.mfa.replaced"} {
		if !contains(acts, want) {
			t.Errorf("no %s event", want)
		}
	}
}

// TestSettingsHubAndDevelopers: the hub lists what the role opens; the
// developers overview lists keys expiring soon, idle keys and open
// production keys, and the last day's requests.
func TestSettingsHubAndDevelopers(t *testing.T) {
	e := webtest.New(t)
	owner, ownerSecret, _ := e.EnrolledUser(e.Tenant, "olga@acme.test", auth.RoleOwner)
	_, viewerSecret, _ := e.EnrolledUser(e.Tenant, "vic@acme.test", auth.RoleViewer)
	soon := e.Clock.Now().Add(5 * 24 * time.Hour)
	e.Key(e.Tenant, owner, apikey.Config{Name: "Soon", Environment: apikey.Staging, Scopes: []string{apikey.ScopeEventsRead}, ExpiresAt: &soon})
	e.Key(e.Tenant, owner, apikey.Config{Name: "Open prod", Environment: apikey.Production, Scopes: []string{apikey.ScopeEventsRead}})
	_, used := e.Key(e.Tenant, owner, apikey.Config{Name: "Busy", Environment: apikey.Production, Scopes: []string{apikey.ScopeEventsRead}, IPAllowlist: []string{"127.0.0.1"}})

	o := e.SignIn("olga@acme.test", ownerSecret)
	if r := o.Get("/settings"); !strings.Contains(r.Body, `href="/settings/organization"`) || !strings.Contains(r.Body, `href="/settings/team"`) {
		t.Errorf("the owner's hub lacks a section")
	}
	v := e.SignIn("vic@acme.test", viewerSecret)
	if r := v.Get("/settings"); strings.Contains(r.Body, `href="/settings/organization"`) || !strings.Contains(r.Body, `href="/settings/developers"`) {
		t.Errorf("the viewer's hub: %s", r.Body)
	}
	e.API(http.MethodGet, "/api/v1/key", used, "")
	e.API(http.MethodGet, "/api/v1/key", "kw_test_bogus", "")
	e.API(http.MethodPost, "/api/v1/events", used, `{}`) // refused: no scope
	// The request log is written in the background, within a second or so.
	var r webtest.Response
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if r = v.Get("/settings/developers"); strings.Contains(r.Body, `data-testid="overview-requests">2<`) {
			break
		}
	}
	if !strings.Contains(r.Body, `data-testid="overview-requests">2<`) || !strings.Contains(r.Body, `data-testid="overview-refusals">1<`) {
		t.Errorf("the last day's counts: %s", r.Body)
	}
	section := func(body, testid string) string {
		i := strings.Index(body, `data-testid="`+testid+`"`)
		if i < 0 {
			return ""
		}
		rest := body[i:]
		if j := strings.Index(rest, "</section>"); j >= 0 {
			return rest[:j]
		}
		return rest
	}
	if s := section(r.Body, "overview-expiring"); !strings.Contains(s, "Soon") || strings.Contains(s, "Busy") ||
		!strings.Contains(s, `data-testid="expires-soon">Expires in 4 days<`) { // 5 days less the codes' clock steps
		t.Errorf("expiring soon: %s", s)
	}
	if s := section(r.Body, "overview-prod-open"); !strings.Contains(s, "Open prod") || strings.Contains(s, "Busy") {
		t.Errorf("production keys without allowlist: %s", s)
	}
	if s := section(r.Body, "overview-idle"); strings.Contains(s, "overview-key") {
		t.Errorf("new keys listed as idle: %s", s)
	}
	e.Clock.Advance(31 * 24 * time.Hour)
	r = v.Get("/settings/developers")
	if r.Path != "/settings/developers" {
		r = e.SignIn("vic@acme.test", viewerSecret).Get("/settings/developers")
	}
	if s := section(r.Body, "overview-idle"); !strings.Contains(s, "Open prod") || !strings.Contains(s, "Busy") {
		t.Errorf("idle keys after 31 days: %s", s)
	}
}
