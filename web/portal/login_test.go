package portal_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"keyward/web/auth"
	"keyward/web/mfa"
	"keyward/web/session"
	"keyward/web/webtest"
)

// auditActions lists the actions recorded for the env's tenant, oldest first.
func auditActions(t *testing.T, e *webtest.Env) []string {
	t.Helper()
	rows, err := e.Store.Pool.Query(context.Background(),
		`SELECT action FROM audit_events WHERE tenant_id = $1 ORDER BY seq`, e.Tenant.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		rows.Scan(&a)
		out = append(out, a)
	}
	return out
}

func count(t *testing.T, e *webtest.Env, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := e.Store.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// wrongCode is a 6-digit code that none of the accepted steps produce.
func wrongCode(e *webtest.Env, secret string) string {
	valid := map[string]bool{}
	for _, d := range []time.Duration{-30 * time.Second, 0, 30 * time.Second} {
		c, _ := mfa.CodeFor(secret, e.Clock.Now().Add(d))
		valid[c] = true
	}
	for _, c := range []string{"000000", "111111", "222222", "333333"} {
		if !valid[c] {
			return c
		}
	}
	panic("unreachable: at most three codes are valid")
}

func TestLoginPageCarriesHooksAndHeaders(t *testing.T) {
	e := webtest.New(t)
	c := e.Client()
	r := c.Get("/login")
	if r.Status != http.StatusOK || c.CSRF == "" {
		t.Fatalf("login page: status %d, csrf %q", r.Status, c.CSRF)
	}
	for _, want := range []string{`name="email"`, `name="password"`, `name="csrf_token"`} {
		if !strings.Contains(r.Body, want) {
			t.Errorf("login page lacks %s", want)
		}
	}
	csp := r.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP = %q", csp)
	}
	if r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("Referrer-Policy") == "" {
		t.Errorf("security headers missing: %v", r.Header)
	}
	// No session row for an anonymous visitor.
	if n := count(t, e, `SELECT count(*) FROM sessions`); n != 0 {
		t.Errorf("anonymous visit created %d session rows", n)
	}
}

func TestWrongPassword(t *testing.T) {
	e := webtest.New(t)
	e.User(e.Tenant, "ann@acme.test", auth.RoleAdmin)
	c := e.Client()
	c.Get("/login")
	r := c.PostForm("/login", url.Values{"email": {"ann@acme.test"}, "password": {"not the password"}})
	if r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, "email address or password is incorrect") {
		t.Fatalf("wrong password: %d %s", r.Status, r.Body)
	}
	if !strings.Contains(r.Body, `value="ann@acme.test"`) {
		t.Error("the email was not kept in the form")
	}
	if c.SessionCookie() != "" {
		t.Error("a failed sign-in set a session cookie")
	}
	if !contains(auditActions(t, e), "auth.login.failed") {
		t.Error("no auth.login.failed event")
	}
	// An unknown email gets the same answer, and is audited outside any tenant.
	r = c.PostForm("/login", url.Values{"email": {"nobody@acme.test"}, "password": {"whatever it is"}})
	if r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, "email address or password is incorrect") {
		t.Fatalf("unknown email: %d", r.Status)
	}
	if n := count(t, e, `SELECT count(*) FROM audit_events WHERE tenant_id IS NULL AND action = 'auth.login.failed'`); n != 1 {
		t.Errorf("unknown-email failures audited: %d, want 1", n)
	}
	// Nothing secret in the log.
	if strings.Contains(e.Logs.String(), "not the password") {
		t.Error("a password reached the log")
	}
}

func TestLoginThrottledPerAccount(t *testing.T) {
	e := webtest.New(t)
	e.User(e.Tenant, "ann@acme.test", auth.RoleAdmin)
	c := e.Client()
	c.Get("/login")
	var last webtest.Response
	for i := 0; i < 7; i++ {
		last = c.PostForm("/login", url.Values{"email": {"ann@acme.test"}, "password": {"wrong password!"}})
	}
	if last.Status != http.StatusTooManyRequests || last.Header.Get("Retry-After") == "" {
		t.Fatalf("7th failure: status %d, Retry-After %q", last.Status, last.Header.Get("Retry-After"))
	}
	// Locked: even the right password is refused, without being checked.
	r := c.PostForm("/login", url.Values{"email": {"ann@acme.test"}, "password": {webtest.Password}})
	if r.Status != http.StatusTooManyRequests || !strings.Contains(r.Body, "Too many failed sign-in attempts") {
		t.Fatalf("right password while locked: %d", r.Status)
	}
	if n := count(t, e, `SELECT count(*) FROM audit_events WHERE action = 'auth.login.failed'`); n != 6 {
		t.Errorf("audited failures = %d, want 6 (the locked attempts are refused before checking)", n)
	}
	// Another account from another client is not locked by ann's failures...
	e.User(e.Tenant, "bob@acme.test", auth.RoleAdmin)
	// ...but this client's IP has 6 failures, under the per-IP allowance.
	r = c.PostForm("/login", url.Values{"email": {"bob@acme.test"}, "password": {webtest.Password}})
	if r.Path != "/mfa/enroll" {
		t.Fatalf("bob's sign-in: %d %s", r.Status, r.Path)
	}
}

func TestLoginThrottledPerIP(t *testing.T) {
	e := webtest.New(t)
	c := e.Client()
	c.Get("/login")
	var last webtest.Response
	// Different accounts each time, so only the per-IP counter can trip.
	for i := 0; i < 22; i++ {
		last = c.PostForm("/login", url.Values{"email": {"user" + string(rune('a'+i)) + "@acme.test"}, "password": {"wrong password!"}})
	}
	if last.Status != http.StatusTooManyRequests {
		t.Fatalf("22 failures from one IP: status %d", last.Status)
	}
}

func TestWrongAndReplayedTOTP(t *testing.T) {
	e := webtest.New(t)
	_, secret, _ := e.EnrolledUser(e.Tenant, "ann@acme.test", auth.RoleAdmin)
	c, _ := e.PasswordStep("ann@acme.test")

	r := c.PostForm("/login/totp", url.Values{"code": {wrongCode(e, secret)}})
	if r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, "That code is not valid") {
		t.Fatalf("wrong code: %d", r.Status)
	}
	code := e.NextCode(secret)
	r = c.PostForm("/login/totp", url.Values{"code": {code}})
	if r.Path != "/settings/developers/api-keys" {
		t.Fatalf("right code: %d %s", r.Status, r.Path)
	}
	c.PostForm("/logout", url.Values{})

	// The same code again, in the same 30-second step: a replay.
	c2, _ := e.PasswordStep("ann@acme.test")
	r = c2.PostForm("/login/totp", url.Values{"code": {code}})
	if r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, "already used") {
		t.Fatalf("replayed code: %d %s", r.Status, r.Body)
	}
	acts := auditActions(t, e)
	for _, want := range []string{"auth.mfa.failed", "auth.login.succeeded", "auth.logout", "auth.mfa.replayed"} {
		if !contains(acts, want) {
			t.Errorf("audit lacks %s: %v", want, acts)
		}
	}
	// The still-unfinished session cannot reach the portal.
	if r := c2.Get("/settings/developers/api-keys"); r.Path != "/login/totp" {
		t.Errorf("half-signed-in session reached %s", r.Path)
	}
}

func TestTOTPFailuresThrottled(t *testing.T) {
	e := webtest.New(t)
	e.EnrolledUser(e.Tenant, "ann@acme.test", auth.RoleAdmin)
	c, _ := e.PasswordStep("ann@acme.test")
	var last webtest.Response
	for i := 0; i < 7; i++ {
		last = c.PostForm("/login/totp", url.Values{"code": {"12345x"}})
	}
	if last.Status != http.StatusTooManyRequests {
		t.Fatalf("7 wrong codes: status %d", last.Status)
	}
}

func TestRecoveryCodeUsableOnce(t *testing.T) {
	e := webtest.New(t)
	_, _, codes := e.EnrolledUser(e.Tenant, "ann@acme.test", auth.RoleAdmin)
	signIn := func(code string) webtest.Response {
		c, _ := e.PasswordStep("ann@acme.test")
		return c.PostForm("/login/totp", url.Values{"code": {code}})
	}
	// Typed in upper case with a space: still the same code.
	typed := strings.ToUpper(strings.Replace(codes[3], "-", " ", 1))
	if r := signIn(typed); r.Path != "/settings/developers/api-keys" {
		t.Fatalf("first use of a recovery code: %d %s", r.Status, r.Path)
	}
	if r := signIn(codes[3]); r.Status != http.StatusUnauthorized {
		t.Fatalf("second use of a recovery code: %d %s", r.Status, r.Path)
	}
	if n := count(t, e, `SELECT count(*) FROM recovery_codes WHERE used_at IS NULL`); n != 9 {
		t.Errorf("unused recovery codes = %d, want 9", n)
	}
	// Codes are stored as HMACs, never as text.
	if n := count(t, e, `SELECT count(*) FROM recovery_codes WHERE position(convert_to($1, 'UTF8') in code_hash) > 0`, codes[0]); n != 0 {
		t.Error("a recovery code is stored in clear")
	}
}

func TestCSRFMissing(t *testing.T) {
	e := webtest.New(t)
	e.User(e.Tenant, "ann@acme.test", auth.RoleAdmin)
	c := e.Client()
	c.Get("/login")
	r := c.PostFormRaw("/login", url.Values{"email": {"ann@acme.test"}, "password": {webtest.Password}})
	if r.Status != http.StatusForbidden || !strings.Contains(r.Body, "Reload the page") {
		t.Fatalf("POST without CSRF token: %d %s", r.Status, r.Body)
	}
	r = c.PostFormRaw("/login", url.Values{"email": {"ann@acme.test"}, "password": {webtest.Password}, "csrf_token": {"forged"}})
	if r.Status != http.StatusForbidden {
		t.Fatalf("POST with a wrong CSRF token: %d", r.Status)
	}
	if c.SessionCookie() != "" || count(t, e, `SELECT count(*) FROM sessions`) != 0 {
		t.Error("a request without a CSRF token signed in")
	}
	// A browser marking the request cross-site is refused even with a token.
	form := url.Values{"email": {"ann@acme.test"}, "password": {webtest.Password}, "csrf_token": {c.CSRF}}
	req, _ := http.NewRequest(http.MethodPost, e.Server.URL+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if r := c.Do(req); r.Status != http.StatusForbidden {
		t.Fatalf("cross-site POST: %d", r.Status)
	}
	// Logout is a state change too.
	_, secret, _ := e.EnrolledUser(e.Tenant, "bob@acme.test", auth.RoleAdmin)
	s := e.SignIn("bob@acme.test", secret)
	if r := s.PostFormRaw("/logout", url.Values{}); r.Status != http.StatusForbidden {
		t.Fatalf("logout without token: %d", r.Status)
	}
	if r := s.Get("/account"); r.Path != "/account" {
		t.Error("a logout without CSRF token ended the session")
	}
}

func TestSessionFixation(t *testing.T) {
	e := webtest.New(t)
	_, secret, _ := e.EnrolledUser(e.Tenant, "ann@acme.test", auth.RoleAdmin)
	c := e.Client()
	c.SetCookie(session.CookieName, "planted-by-an-attacker")
	c.Get("/login")
	c.PostForm("/login", url.Values{"email": {"ann@acme.test"}, "password": {webtest.Password}})
	afterPassword := c.SessionCookie()
	tokenBefore := c.CSRF
	if afterPassword == "" || afterPassword == "planted-by-an-attacker" {
		t.Fatalf("session cookie after the password step: %q", afterPassword)
	}
	r := c.PostForm("/login/totp", url.Values{"code": {e.NextCode(secret)}})
	if r.Path != "/settings/developers/api-keys" {
		t.Fatalf("sign-in: %s", r.Path)
	}
	afterMFA := c.SessionCookie()
	if afterMFA == afterPassword {
		t.Fatal("the session id did not change when sign-in completed")
	}
	if c.CSRF == "" || c.CSRF == tokenBefore {
		t.Errorf("the CSRF token did not change at sign-in (%q)", c.CSRF)
	}
	// The pre-MFA id is dead server-side.
	old := e.Client()
	old.SetCookie(session.CookieName, afterPassword)
	if r := old.Get("/login/totp"); r.Path != "/login" {
		t.Errorf("the pre-sign-in session id still works: %s", r.Path)
	}
	if n := count(t, e, `SELECT count(*) FROM sessions`); n != 1 {
		t.Errorf("sessions = %d, want 1", n)
	}
}

func TestIdleAndAbsoluteExpiry(t *testing.T) {
	e := webtest.New(t)
	_, secret, _ := e.EnrolledUser(e.Tenant, "ann@acme.test", auth.RoleAdmin)
	c := e.SignIn("ann@acme.test", secret)
	// The application's clock moves; no row is edited, nothing sleeps.
	// 29 minutes idle: still signed in (and the visit counts as activity).
	e.Clock.Advance(29 * time.Minute)
	if r := c.Get("/account"); r.Path != "/account" {
		t.Fatalf("after 29 idle minutes: %s", r.Path)
	}
	e.Clock.Advance(31 * time.Minute)
	if r := c.Get("/account"); r.Path != "/login" {
		t.Fatalf("after 31 idle minutes: %s", r.Path)
	}
	if n := count(t, e, `SELECT count(*) FROM sessions`); n != 0 {
		t.Errorf("the idle session row is still there")
	}

	// Active every 20 minutes, the session still ends 12 hours after it
	// began.
	c = e.SignIn("ann@acme.test", secret)
	for range 12*3 - 1 {
		e.Clock.Advance(20 * time.Minute)
		if r := c.Get("/account"); r.Path != "/account" {
			t.Fatalf("an active session ended early, at %s: %s", e.Clock.Now(), r.Path)
		}
	}
	e.Clock.Advance(20*time.Minute + time.Second)
	if r := c.Get("/account"); r.Path != "/login" {
		t.Fatalf("past the absolute lifetime: %s", r.Path)
	}
	e.SignIn("ann@acme.test", secret)
	if secs := count(t, e, `SELECT max(extract(epoch FROM expires_at - created_at))::int FROM sessions`); secs != 12*3600 {
		t.Errorf("absolute lifetime = %ds, want 12h", secs)
	}
}

func TestLogoutEndsServerSideSession(t *testing.T) {
	e := webtest.New(t)
	_, secret, _ := e.EnrolledUser(e.Tenant, "ann@acme.test", auth.RoleAdmin)
	c := e.SignIn("ann@acme.test", secret)
	stolen := c.SessionCookie()
	r := c.PostForm("/logout", url.Values{})
	if r.Path != "/login" {
		t.Fatalf("logout landed on %s", r.Path)
	}
	if n := count(t, e, `SELECT count(*) FROM sessions`); n != 0 {
		t.Errorf("session rows after logout: %d", n)
	}
	replay := e.Client()
	replay.SetCookie(session.CookieName, stolen)
	if r := replay.Get("/settings/developers/api-keys"); r.Path != "/login" {
		t.Errorf("a copied cookie works after logout: %s", r.Path)
	}
}

func TestDisabledUserSessionEnds(t *testing.T) {
	e := webtest.New(t)
	u, secret, _ := e.EnrolledUser(e.Tenant, "ann@acme.test", auth.RoleAdmin)
	c := e.SignIn("ann@acme.test", secret)
	e.Store.Pool.Exec(context.Background(), `UPDATE users SET disabled_at = now() WHERE id = $1`, u.ID)
	if r := c.Get("/account"); r.Path != "/login" {
		t.Fatalf("a disabled user's session still works: %s", r.Path)
	}
	c.Get("/login")
	r := c.PostForm("/login", url.Values{"email": {"ann@acme.test"}, "password": {webtest.Password}})
	if r.Status != http.StatusUnauthorized {
		t.Fatalf("a disabled user signed in: %d", r.Status)
	}
}

func TestCleanupRemovesOnlyEndedState(t *testing.T) {
	e := webtest.New(t)
	_, secret, _ := e.EnrolledUser(e.Tenant, "ann@acme.test", auth.RoleAdmin)
	ctx := context.Background()
	// On the application's clock: one session past its lifetime, one idle
	// too long, one live.
	e.SignIn("ann@acme.test", secret)
	e.Clock.Advance(11*time.Hour + 30*time.Minute)
	e.SignIn("ann@acme.test", secret)
	e.Clock.Advance(40 * time.Minute)
	live := e.SignIn("ann@acme.test", secret)
	if n, err := e.App.Sessions.DeleteExpired(ctx); err != nil || n != 2 {
		t.Fatalf("DeleteExpired = %d, %v; want 2", n, err)
	}
	if r := live.Get("/account"); r.Path != "/account" {
		t.Fatalf("cleanup ended the live session: %s", r.Path)
	}
	e.Store.Pool.Exec(ctx, `INSERT INTO auth_throttle (key, failures, window_start, locked_until) VALUES
		('old', 3, now() - interval '2 hours', NULL),
		('locked', 30, now() - interval '2 hours', now() + interval '5 minutes'),
		('fresh', 1, now(), NULL)`)
	if n, err := e.Store.DeleteStaleThrottles(ctx); err != nil || n != 1 {
		t.Fatalf("DeleteStaleThrottles = %d, %v; want 1", n, err)
	}
}

// Parallel wrong codes are checked one after another: no burst slips past
// the lock that the sixth failure sets.
func TestParallelTOTPGuessesAreThrottled(t *testing.T) {
	e := webtest.New(t)
	_, secret, _ := e.EnrolledUser(e.Tenant, "ann@acme.test", auth.RoleAdmin)
	c, _ := e.PasswordStep("ann@acme.test")
	wrong := wrongCode(e, secret)
	statuses := make(chan int, 30)
	var wg sync.WaitGroup
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			form := url.Values{"code": {wrong}, "csrf_token": {c.CSRF}}
			req, _ := http.NewRequest(http.MethodPost, e.Server.URL+"/login/totp", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			res, err := c.HTTP.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			statuses <- res.StatusCode
		}()
	}
	wg.Wait()
	close(statuses)
	checked := 0
	for s := range statuses {
		if s == http.StatusUnauthorized {
			checked++
		} else if s != http.StatusTooManyRequests {
			t.Errorf("status %d", s)
		}
	}
	if checked > 6 {
		t.Fatalf("%d of 30 parallel guesses were checked; the lock allows 6", checked)
	}
}

// Odd bytes in headers or fields get a 4xx and are still counted and
// audited: they must not make the failure's transaction roll back.
func TestHostileInputIsCountedNotFatal(t *testing.T) {
	e := webtest.New(t)
	e.User(e.Tenant, "ann@acme.test", auth.RoleAdmin)
	c := e.Client()
	c.Get("/login")
	for _, tc := range []struct{ email, ua string }{
		{"ann@acme.test", "bad \xff\xfe agent " + strings.Repeat("é", 400)},
		{"ann\x00@acme.test", "ok"},
		{"\xc3(@acme.test", "ok"},
	} {
		form := url.Values{"email": {tc.email}, "password": {"wrong password!"}, "csrf_token": {c.CSRF}}
		req, _ := http.NewRequest(http.MethodPost, e.Server.URL+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("User-Agent", tc.ua)
		if r := c.Do(req); r.Status != http.StatusUnauthorized {
			t.Errorf("email %q, UA %q: status %d", tc.email, tc.ua[:5], r.Status)
		}
	}
	if n := count(t, e, `SELECT count(*) FROM audit_events WHERE action = 'auth.login.failed'`); n != 3 {
		t.Errorf("audited failures = %d, want 3", n)
	}
	if n := count(t, e, `SELECT failures FROM auth_throttle WHERE key LIKE 'login:ip:%'`); n != 3 {
		t.Errorf("counted IP failures = %d, want 3", n)
	}
	// An unknown email is not written to the trail: it may be a pasted password.
	if n := count(t, e, `SELECT count(*) FROM audit_events WHERE diff::text LIKE '%acme.test%' AND tenant_id IS NULL`); n != 0 {
		t.Error("an unknown typed email was stored in the audit trail")
	}
}

// A right code does not reset the count of wrong ones: someone who knows
// the password gets no fresh guesses from the real user's sign-ins. The
// count decays with the throttle's hourly window instead.
func TestRightCodeKeepsTheMFAFailureCount(t *testing.T) {
	e := webtest.New(t)
	_, secret, _ := e.EnrolledUser(e.Tenant, "ann@acme.test", auth.RoleAdmin)
	guess := func(c *webtest.Client) int {
		return c.PostForm("/login/totp", url.Values{"code": {wrongCode(e, secret)}}).Status
	}
	attacker, _ := e.PasswordStep("ann@acme.test")
	for i := range 5 {
		if s := guess(attacker); s != http.StatusUnauthorized {
			t.Fatalf("free wrong code %d: %d", i+1, s)
		}
	}
	// The real user signs in, with a right code.
	e.SignIn("ann@acme.test", secret)
	// The attacker's next guess is still the sixth failure of the hour,
	// which locks.
	if s := guess(attacker); s != http.StatusUnauthorized {
		t.Fatalf("sixth wrong code: %d", s)
	}
	if s := guess(attacker); s != http.StatusTooManyRequests {
		t.Fatalf("a wrong code after the sixth: %d, want 429: the right code reset the count", s)
	}
	// An hour on, the window is over and the count starts again.
	e.Clock.Advance(61 * time.Minute)
	attacker, _ = e.PasswordStep("ann@acme.test")
	for i := range 5 {
		if s := guess(attacker); s != http.StatusUnauthorized {
			t.Fatalf("wrong code %d of the next hour: %d", i+1, s)
		}
	}
	if n := count(t, e, `SELECT failures FROM auth_throttle WHERE key LIKE 'mfa:user:%'`); n != 5 {
		t.Errorf("failures counted in the new window = %d, want 5", n)
	}
}
