package portal_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"keyward/db"
	"keyward/web/audit"
	"keyward/web/auth"
	"keyward/web/webtest"
)

var (
	secretRe   = regexp.MustCompile(`data-testid="totp-secret">([A-Z2-7]+)<`)
	recoveryRe = regexp.MustCompile(`data-testid="recovery-code">([0-9a-z-]+)<`)
)

func TestEnrolment(t *testing.T) {
	e := webtest.New(t)
	e.User(e.Tenant, "ann@acme.test", auth.RoleAdmin)
	c, r := e.PasswordStep("ann@acme.test")
	if r.Path != "/mfa/enroll" {
		t.Fatalf("a user without TOTP went to %s", r.Path)
	}
	// Nothing else is reachable before enrolment.
	for _, p := range []string{"/settings/developers/api-keys", "/account", "/login/totp"} {
		if r := c.Get(p); r.Path != "/mfa/enroll" {
			t.Errorf("%s before enrolment: landed on %s", p, r.Path)
		}
	}
	r = c.Get("/mfa/enroll")
	m := secretRe.FindStringSubmatch(r.Body)
	if m == nil || !strings.Contains(r.Body, "<svg") {
		t.Fatalf("enrolment page lacks the secret or the QR code: %s", r.Body)
	}
	secret := m[1]
	// A reload shows the same secret, so a scanned QR code stays valid.
	if again := secretRe.FindStringSubmatch(c.Get("/mfa/enroll").Body); again == nil || again[1] != secret {
		t.Fatal("reloading the enrolment page changed the secret")
	}
	if r := c.PostForm("/mfa/enroll", url.Values{"code": {wrongCode(e, secret)}}); r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, secret) {
		t.Fatalf("wrong enrolment code: %d", r.Status)
	}
	r = c.PostForm("/mfa/enroll", url.Values{"code": {e.Code(secret)}})
	codes := recoveryRe.FindAllStringSubmatch(r.Body, -1)
	if r.Status != http.StatusOK || len(codes) != 10 {
		t.Fatalf("after enrolment: status %d, %d recovery codes", r.Status, len(codes))
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Error("the recovery codes page may be cached")
	}
	// Signed in now; the codes are never shown again.
	r = c.Get("/account")
	if r.Path != "/account" || strings.Contains(r.Body, codes[0][1]) || !strings.Contains(r.Body, "10 of 10") {
		t.Fatalf("account after enrolment: %s", r.Path)
	}
	if r := c.Get("/mfa/enroll"); r.Path == "/mfa/enroll" {
		t.Error("an enrolled user can reach enrolment again")
	}
	// The secret is encrypted at rest.
	var enc []byte
	e.Store.Pool.QueryRow(context.Background(), `SELECT totp_secret_enc FROM users WHERE email = 'ann@acme.test'`).Scan(&enc)
	if len(enc) == 0 || strings.Contains(string(enc), secret) {
		t.Error("the TOTP secret is not encrypted at rest")
	}
	// The enrolment code's step cannot be replayed at the next sign-in.
	c2, _ := e.PasswordStep("ann@acme.test")
	if r := c2.PostForm("/login/totp", url.Values{"code": {e.Code(secret)}}); r.Status != http.StatusUnauthorized {
		t.Errorf("the enrolment code was accepted again: %d", r.Status)
	}
	if !contains(auditActions(t, e), "auth.mfa.enrolled") {
		t.Error("no auth.mfa.enrolled event")
	}
}

func TestOneTimePasswordMustBeChanged(t *testing.T) {
	e := webtest.New(t)
	var u db.User
	e.Store.InTx(context.Background(), func(q *db.Queries) error {
		var err error
		u, err = auth.CreateUser(context.Background(), q, e.App.Audit, e.Tenant.ID, "ann@acme.test", auth.RoleOwner, webtest.Password, true, audit.Actor{}, time.Now())
		return err
	})
	en, _ := e.App.MFA.NewEnrolment(u.Email)
	e.Store.InTx(context.Background(), func(q *db.Queries) error {
		_, err := e.App.MFA.Confirm(context.Background(), q, u.ID, en.Secret, 0)
		return err
	})
	c, _ := e.PasswordStep(u.Email)
	r := c.PostForm("/login/totp", url.Values{"code": {e.Code(en.Secret)}})
	if r.Path != "/account" || !strings.Contains(r.Body, "one-time password") {
		t.Fatalf("after sign-in with a one-time password: %s", r.Path)
	}
	if r := c.Get("/settings/developers/api-keys"); r.Path != "/account" {
		t.Fatalf("reached %s before changing the one-time password", r.Path)
	}
	// Mismatch, policy and wrong current password: clear 400s.
	cases := []struct{ cur, next, confirm, want string }{
		{webtest.Password, "a brand new passphrase", "a different passphrase", "do not match"},
		{webtest.Password, "short", "short", "at least 12 characters"},
		{"not my password", "a brand new passphrase", "a brand new passphrase", "current password is incorrect"},
	}
	for _, tc := range cases {
		r := c.PostForm("/account/password", url.Values{"current_password": {tc.cur}, "new_password": {tc.next}, "confirm_password": {tc.confirm}})
		if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, tc.want) {
			t.Errorf("change %q: status %d, want 400 with %q", tc.next, r.Status, tc.want)
		}
	}
	other := e.Client() // a second session of the same user
	other.Get("/login")
	other.PostForm("/login", url.Values{"email": {u.Email}, "password": {webtest.Password}})

	r = c.PostForm("/account/password", url.Values{"current_password": {webtest.Password}, "new_password": {"a brand new passphrase"}, "confirm_password": {"a brand new passphrase"}})
	if r.Status != http.StatusOK || !strings.Contains(r.Body, "Your password was changed") {
		t.Fatalf("password change: %d", r.Status)
	}
	if r := c.Get("/settings/developers/api-keys"); r.Path != "/settings/developers/api-keys" {
		t.Fatalf("after the change: %s", r.Path)
	}
	if r := other.Get("/login/totp"); r.Path != "/login" {
		t.Errorf("the other session survived the password change: %s", r.Path)
	}
	fresh := e.Client()
	fresh.Get("/login")
	if r := fresh.PostForm("/login", url.Values{"email": {u.Email}, "password": {webtest.Password}}); r.Status != http.StatusUnauthorized {
		t.Errorf("the old password still works: %d", r.Status)
	}
	if r := fresh.PostForm("/login", url.Values{"email": {u.Email}, "password": {"a brand new passphrase"}}); r.Path != "/login/totp" {
		t.Errorf("the new password does not work: %s", r.Path)
	}
}

// A password change gives the session a new id but not a new lifetime:
// it still ends 12 hours after sign-in.
func TestPasswordChangeKeepsTheSessionLifetime(t *testing.T) {
	e := webtest.New(t)
	_, secret, _ := e.EnrolledUser(e.Tenant, "ann@acme.test", auth.RoleAdmin)
	c := e.SignIn("ann@acme.test", secret)
	var signedIn time.Time
	e.Store.Pool.QueryRow(context.Background(), `SELECT created_at FROM sessions`).Scan(&signedIn)
	// Active every 20 minutes for 11 hours, then the password changes.
	for range 11 * 3 {
		e.Clock.Advance(20 * time.Minute)
		if r := c.Get("/account"); r.Path != "/account" {
			t.Fatalf("an active session ended early, at %s: %s", e.Clock.Now(), r.Path)
		}
	}
	before := c.SessionCookie()
	r := c.PostForm("/account/password", url.Values{"current_password": {webtest.Password},
		"new_password": {"a brand new passphrase"}, "confirm_password": {"a brand new passphrase"}})
	if r.Path != "/account" || !strings.Contains(r.Body, "Your password was changed") {
		t.Fatalf("password change: %d %s", r.Status, r.Path)
	}
	if c.SessionCookie() == before || c.SessionCookie() == "" {
		t.Fatal("the session id did not change with the password")
	}
	var created, expires time.Time
	e.Store.Pool.QueryRow(context.Background(), `SELECT created_at, expires_at FROM sessions`).Scan(&created, &expires)
	if !created.Equal(signedIn) || expires.Sub(created) != 12*time.Hour {
		t.Errorf("after the change the session was created %s and ends %s; want created at sign-in, %s, and 12 h after", created, expires, signedIn)
	}
	for range 2 {
		e.Clock.Advance(20 * time.Minute)
		if r := c.Get("/account"); r.Path != "/account" {
			t.Fatalf("the session ended before its 12 hours, at %s: %s", e.Clock.Now(), r.Path)
		}
	}
	e.Clock.Advance(20*time.Minute + time.Second)
	if r := c.Get("/account"); r.Path != "/login" {
		t.Fatalf("12 hours after sign-in, with the password changed at 11: %s", r.Path)
	}
}
