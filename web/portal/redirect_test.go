package portal_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"keyward/web/auth"
	"keyward/web/webtest"
)

// TestChangesRedirectWithAFlashShownOnce: every state-changing form of a
// key answers 303 to the key's page, which shows the confirmation once.
// The browser then holds a GET, so a reload repeats no POST and spends no
// code a second time.
func TestChangesRedirectWithAFlashShownOnce(t *testing.T) {
	e := webtest.New(t)
	a := newAdmin(t, e, "ann@acme.test", auth.RoleAdmin)
	id, _ := a.create(t, keyForm("Worker"))
	page := "/settings/developers/api-keys/" + id
	edit := keyForm("Worker renamed")
	edit.Del("environment")
	for _, c := range []struct {
		op, flash string
		form      url.Values
	}{
		{"disable", "The key is disabled", url.Values{}},
		{"enable", "The key is enabled", url.Values{}},
		{"", "Changes saved", edit},
		{"revoke", "The key is revoked", url.Values{"confirm_name": {"Worker renamed"}}},
	} {
		var r webtest.Response
		if c.op == "" {
			a.c.Get(page + "/edit")
			c.form.Set("code", e.NextCode(a.secret))
			r = a.c.PostForm(page, c.form)
		} else {
			r = a.op(id, c.op, c.form)
		}
		if len(r.Redirects) != 1 || r.Redirects[0] != http.StatusSeeOther || r.Path != page || r.Status != http.StatusOK {
			t.Fatalf("%s: redirects %v to %s (%d), want one 303 to %s", c.flash, r.Redirects, r.Path, r.Status, page)
		}
		if strings.Count(r.Body, c.flash) != 1 {
			t.Errorf("%s: the page after the redirect does not show the flash once", c.flash)
		}
		// A reload is a GET of the same page: no flash, no change, no code.
		before := count(t, e, `SELECT count(*) FROM audit_events`)
		reload := a.c.Get(r.Path)
		if reload.Status != http.StatusOK || strings.Contains(reload.Body, c.flash) {
			t.Errorf("%s: the reload shows the flash again (%d)", c.flash, reload.Status)
		}
		if after := count(t, e, `SELECT count(*) FROM audit_events`); after != before {
			t.Errorf("%s: the reload wrote %d audit events", c.flash, after-before)
		}
	}
	// The password form redirects to the account page the same way.
	a.c.Get("/account")
	r := a.c.PostForm("/account/password", url.Values{"current_password": {webtest.Password},
		"new_password": {"a brand new passphrase"}, "confirm_password": {"a brand new passphrase"}})
	if len(r.Redirects) != 1 || r.Redirects[0] != http.StatusSeeOther || r.Path != "/account" || !strings.Contains(r.Body, "Your password was changed") {
		t.Errorf("password change: redirects %v to %s", r.Redirects, r.Path)
	}
}

// TestFormShowsEveryErrorAndSpendsNoCode: a create form with three bad
// fields names all three, each next to its field, keeps the input, and
// leaves the code unspent, so the same code then creates the key.
func TestFormShowsEveryErrorAndSpendsNoCode(t *testing.T) {
	e := webtest.New(t)
	a := newAdmin(t, e, "ann@acme.test", auth.RoleAdmin)
	a.c.Get("/settings/developers/api-keys/new")
	code := e.NextCode(a.secret)
	f := keyForm("Worker")
	f.Set("ip_allowlist", "not-a-network")
	f.Set("rate_limit_requests", "many")
	f.Set("expires_at", "someday")
	f.Set("description", "kept as typed")
	f.Set("code", code)
	r := a.c.PostForm("/settings/developers/api-keys", f)
	if r.Status != http.StatusBadRequest {
		t.Fatalf("three bad fields: %d", r.Status)
	}
	for _, field := range []string{"ip_allowlist", "rate_limit", "expires_at"} {
		if !strings.Contains(r.Body, `id="err-`+field+`"`) || !strings.Contains(r.Body, `aria-describedby="err-`+field+`"`) {
			t.Errorf("the form does not show the %s error next to its field", field)
		}
	}
	if n := strings.Count(r.Body, `aria-invalid="true"`); n != 3 {
		t.Errorf("%d fields are marked invalid, want 3", n)
	}
	if !strings.Contains(r.Body, "kept as typed") || !strings.Contains(r.Body, "not-a-network") {
		t.Error("the form lost what was typed")
	}
	if strings.Contains(r.Body, `value="`+code+`"`) {
		t.Error("the form shows the code again")
	}
	if n := count(t, e, `SELECT count(*) FROM audit_events WHERE action LIKE 'auth.mfa.%'`); n != 0 {
		t.Errorf("a refused form counted %d code failures", n)
	}
	// The same code still works: it was not spent.
	f = keyForm("Worker")
	f.Set("code", code)
	if r := a.c.PostForm("/settings/developers/api-keys", f); r.Status != http.StatusOK || !revealRe.MatchString(r.Body) {
		t.Errorf("the unspent code was refused: %d", r.Status)
	}
}

// TestFlashWaitsForItsPage: a request to any other page between the
// redirect and the page it names (another tab, a 404, a console call)
// does not take the confirmation; the page itself then shows it, once.
func TestFlashWaitsForItsPage(t *testing.T) {
	e := webtest.New(t)
	a := newAdmin(t, e, "ann@acme.test", auth.RoleAdmin)
	id, _ := a.create(t, keyForm("Worker"))
	page := "/settings/developers/api-keys/" + id
	follow := a.c.HTTP.CheckRedirect
	a.c.HTTP.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	r := a.op(id, "disable", url.Values{})
	a.c.HTTP.CheckRedirect = follow
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != page {
		t.Fatalf("disable: %d to %q, want 303 to %s", r.Status, r.Header.Get("Location"), page)
	}
	for _, other := range []string{"/settings/developers/api-keys", "/no-such-page", "/api/v1/orgs/api-key?id=" + id} {
		if r := a.c.Get(other); strings.Contains(r.Body, "The key is disabled") {
			t.Errorf("%s showed the flash meant for the key's page", other)
		}
	}
	if r := a.c.Get(page); strings.Count(r.Body, "The key is disabled") != 1 {
		t.Error("the key's page does not show its flash after other requests")
	}
	if r := a.c.Get(page); strings.Contains(r.Body, "The key is disabled") {
		t.Error("the flash shows a second time")
	}
}

// TestSignInFormsMarkTheirFields: the sign-in, TOTP and enrolment forms
// put each problem next to its field, marked for assistive technology.
func TestSignInFormsMarkTheirFields(t *testing.T) {
	e := webtest.New(t)
	_, secret, _ := e.EnrolledUser(e.Tenant, "ann@acme.test", auth.RoleAdmin)
	c := e.Client()
	c.Get("/login")
	r := c.PostForm("/login", url.Values{"email": {" "}, "password": {""}})
	if r.Status != http.StatusBadRequest {
		t.Fatalf("empty sign-in: %d", r.Status)
	}
	for _, f := range []string{"email", "password"} {
		if !strings.Contains(r.Body, `aria-describedby="err-`+f+`"`) || !strings.Contains(r.Body, `id="err-`+f+`"`) {
			t.Errorf("empty sign-in: no message next to %s", f)
		}
	}
	c, _ = e.PasswordStep("ann@acme.test")
	r = c.PostForm("/login/totp", url.Values{"code": {wrongCode(e, secret)}})
	if r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, `aria-describedby="err-code"`) || !strings.Contains(r.Body, `aria-invalid="true"`) {
		t.Errorf("wrong TOTP code: %d, the code field is not marked", r.Status)
	}
	e.User(e.Tenant, "bob@acme.test", auth.RoleAdmin)
	b, _ := e.PasswordStep("bob@acme.test")
	b.Get("/mfa/enroll")
	r = b.PostForm("/mfa/enroll", url.Values{"code": {"000000"}})
	if r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, `aria-describedby="err-code"`) {
		t.Errorf("wrong enrolment code: %d, the code field is not marked", r.Status)
	}
}
