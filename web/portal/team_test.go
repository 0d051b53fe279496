package portal_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"keyward/db"
	"keyward/web/audit"
	"keyward/web/auth"
	"keyward/web/webtest"
)

var inviteLinkRe = regexp.MustCompile(`data-testid="invite-link">([^<]+)<`)

// invite has the owner a invite email with role and returns the link.
func (a *admin) invite(t *testing.T, email, role string) string {
	t.Helper()
	a.c.Get("/settings/team")
	r := a.c.PostForm("/settings/team/invitations", url.Values{"email": {email}, "role": {role}, "code": {a.e.NextCode(a.secret)}})
	m := inviteLinkRe.FindStringSubmatch(r.Body)
	if r.Status != http.StatusOK || m == nil {
		t.Fatalf("invite %s: %d %s", email, r.Status, r.Body)
	}
	return m[1]
}

// accept opens an invitation link in a new client, sets the password and
// enrols an authenticator; it returns the signed-in client and the secret.
func accept(t *testing.T, e *webtest.Env, link string) (*webtest.Client, string) {
	t.Helper()
	path := strings.TrimPrefix(link, e.Server.URL)
	c := e.Client()
	if r := c.Get(path); r.Status != http.StatusOK || !strings.Contains(r.Body, `data-testid="invite-email"`) {
		t.Fatalf("invitation page: %d %s", r.Status, r.Body)
	}
	r := c.PostForm(path, url.Values{"password": {webtest.Password}, "confirm_password": {webtest.Password}})
	if r.Path != "/mfa/enroll" {
		t.Fatalf("after accepting: at %s (%d): %s", r.Path, r.Status, r.Body)
	}
	m := secretRe.FindStringSubmatch(r.Body)
	if m == nil {
		t.Fatal("no TOTP secret on the enrolment page")
	}
	if r := c.PostForm("/mfa/enroll", url.Values{"code": {e.NextCode(m[1])}}); r.Status != http.StatusOK || len(recoveryRe.FindAllString(r.Body, -1)) != 10 {
		t.Fatalf("enrolment after accepting: %d", r.Status)
	}
	return c, m[1]
}

func userID(t *testing.T, e *webtest.Env, email string) string {
	t.Helper()
	return strconv.Itoa(count(t, e, `SELECT id FROM users WHERE email = $1`, email))
}

// memberOp has the owner post a change of a member.
func (a *admin) memberOp(id, op string, form url.Values) webtest.Response {
	a.c.Get("/settings/team/members/" + id)
	form.Set("code", a.e.NextCode(a.secret))
	return a.c.PostForm("/settings/team/members/"+id+"/"+op, form)
}

// TestInviteAcceptChangeDisable walks the whole life of a member: the
// owner invites, the invitee accepts and enrols, the owner changes the
// role, disables (every session ends at once), enables and resets the
// authenticator. Each change is audited.
func TestInviteAcceptChangeDisable(t *testing.T) {
	e := webtest.New(t)
	owner := newAdmin(t, e, "olga@acme.test", auth.RoleOwner)
	link := owner.invite(t, "Nina@acme.test", auth.RoleAdmin)
	token := link[strings.LastIndex(link, "/")+1:]
	if !strings.HasPrefix(link, e.Server.URL+"/invite/") || len(token) < 40 {
		t.Fatalf("link %q", link)
	}
	assertNowhere(t, e, token) // only its hash is stored
	r := owner.c.Get("/settings/team")
	if !strings.Contains(r.Body, "nina@acme.test") || !strings.Contains(r.Body, `data-testid="invitation-status">pending<`) || strings.Contains(r.Body, token) {
		t.Fatalf("team page after inviting: %s", r.Body)
	}
	// A second invitation to the same address waits for the first.
	r = owner.c.PostForm("/settings/team/invitations", url.Values{"email": {"nina@acme.test"}, "role": {"viewer"}, "code": {e.NextCode(owner.secret)}})
	if r.Status != http.StatusConflict || !strings.Contains(r.Body, "pending invitation") {
		t.Errorf("a second invitation: %d", r.Status)
	}

	// A mistyped password keeps the page, with the field marked.
	c := e.Client()
	path := "/invite/" + token
	c.Get(path)
	if r := c.PostForm(path, url.Values{"password": {"short"}, "confirm_password": {"other"}}); r.Status != http.StatusBadRequest ||
		!strings.Contains(r.Body, `aria-describedby="err-password"`) || !strings.Contains(r.Body, `aria-describedby="err-confirm_password"`) {
		t.Errorf("bad password: %d %s", r.Status, r.Body)
	}
	nina, secret := accept(t, e, link)
	id := userID(t, e, "nina@acme.test")
	if r := nina.Get("/settings/developers/api-keys/new"); r.Status != http.StatusOK {
		t.Errorf("the new admin cannot open the create form: %d", r.Status)
	}
	r = owner.c.Get("/settings/team")
	if !strings.Contains(r.Body, `data-testid="invitation-status">accepted<`) {
		t.Error("the invitation is not shown as accepted")
	}

	// Role change: the member's next request sees it.
	if r := owner.memberOp(id, "role", url.Values{"role": {"viewer"}}); r.Path != "/settings/team" || !strings.Contains(r.Body, "nina@acme.test is now viewer.") {
		t.Fatalf("role change: %d at %s", r.Status, r.Path)
	}
	if r := nina.Get("/settings/developers/api-keys/new"); r.Status != http.StatusForbidden {
		t.Errorf("a viewer opens the create form: %d", r.Status)
	}
	// Disable: the open session ends at once, and so does sign-in.
	if r := owner.memberOp(id, "disable", url.Values{}); r.Path != "/settings/team" {
		t.Fatalf("disable: %d at %s: %s", r.Status, r.Path, r.Body)
	}
	if n := count(t, e, `SELECT count(*) FROM sessions WHERE user_id = $1`, id); n != 0 {
		t.Errorf("%d sessions left after disabling", n)
	}
	if r := nina.Get("/settings/team"); r.Path != "/login" {
		t.Errorf("a disabled member's page: at %s", r.Path)
	}
	if _, r := e.PasswordStep("nina@acme.test"); r.Status != http.StatusUnauthorized {
		t.Errorf("a disabled member signs in: %d", r.Status)
	}
	// Enable, then reset the authenticator: the next sign-in enrols.
	if r := owner.memberOp(id, "enable", url.Values{}); r.Path != "/settings/team" {
		t.Fatalf("enable: %d at %s", r.Status, r.Path)
	}
	nina = e.SignIn("nina@acme.test", secret)
	if r := owner.memberOp(id, "reset-mfa", url.Values{}); r.Path != "/settings/team" {
		t.Fatalf("reset-mfa: %d at %s", r.Status, r.Path)
	}
	if r := nina.Get("/settings/team"); r.Path != "/login" {
		t.Errorf("after an authenticator reset the session goes on: at %s", r.Path)
	}
	if _, r := e.PasswordStep("nina@acme.test"); r.Path != "/mfa/enroll" {
		t.Errorf("after an authenticator reset, sign-in goes to %s", r.Path)
	}
	if n := count(t, e, `SELECT count(*) FROM recovery_codes WHERE user_id = $1`, id); n != 0 {
		t.Errorf("%d recovery codes survive the reset", n)
	}
	acts := auditActions(t, e)
	for _, want := range []string{"user.invited", "user.created", "user.role_changed", "user.disabled", "user.enabled", "user.mfa_reset"} {
		if !contains(acts, want) {
			t.Errorf("no %s event in %v", want, acts)
		}
	}
	if strings.Contains(e.Logs.String(), token) {
		t.Error("the invitation's token is in the server's log")
	}
	// The member created themselves by accepting; the owner made the rest.
	var actor string
	e.Store.Pool.QueryRow(context.Background(), `SELECT actor_id FROM audit_events WHERE action = 'user.created' AND target_id = $1`, id).Scan(&actor)
	if actor != id {
		t.Errorf("user.created by %q, want the new user %s", actor, id)
	}
}

// TestInvitationLinksThatNoLongerWork: unknown, expired, revoked and used
// links each get a page that says so, with a 404, on GET and POST alike.
func TestInvitationLinksThatNoLongerWork(t *testing.T) {
	e := webtest.New(t)
	owner := newAdmin(t, e, "olga@acme.test", auth.RoleOwner)
	expired := owner.invite(t, "exp@acme.test", auth.RoleViewer)
	revoked := owner.invite(t, "rev@acme.test", auth.RoleViewer)
	used := owner.invite(t, "used@acme.test", auth.RoleViewer)
	accept(t, e, used)

	// Revoke one, with a code; a wrong code revokes nothing.
	invID := strconv.Itoa(count(t, e, `SELECT id FROM invitations WHERE email = 'rev@acme.test'`))
	owner.c.Get("/settings/team")
	if r := owner.c.PostForm("/settings/team/invitations/"+invID+"/revoke", url.Values{"code": {wrongCode(e, owner.secret)}}); r.Status != http.StatusUnauthorized ||
		!strings.Contains(r.Body, `aria-describedby="err-revoke-`+invID+`-code"`) {
		t.Errorf("revoke with a wrong code: %d", r.Status)
	}
	if r := owner.c.PostForm("/settings/team/invitations/"+invID+"/revoke", url.Values{"code": {e.NextCode(owner.secret)}}); r.Path != "/settings/team" ||
		!strings.Contains(r.Body, `data-testid="invitation-status">revoked<`) {
		t.Fatalf("revoke: %d at %s", r.Status, r.Path)
	}
	e.Clock.Advance(auth.InvitationTTL - time.Hour)
	// Still valid an hour before the end.
	if r := e.Client().Get(strings.TrimPrefix(expired, e.Server.URL)); r.Status != http.StatusOK {
		t.Errorf("an invitation an hour from its end: %d", r.Status)
	}
	e.Clock.Advance(time.Hour)
	for _, tc := range []struct{ link, title string }{
		{expired, "Invitation expired"},
		{revoked, "Invitation revoked"},
		{used, "Invitation already used"},
		{e.Server.URL + "/invite/not-a-token", "Invitation not found"},
	} {
		c := e.Client()
		path := strings.TrimPrefix(tc.link, e.Server.URL)
		r := c.Get(path)
		if r.Status != http.StatusNotFound || !strings.Contains(r.Body, tc.title) {
			t.Errorf("GET %s: %d, want 404 %q", tc.title, r.Status, tc.title)
		}
		c.Get("/login") // a CSRF token for the POST
		r = c.PostForm(path, url.Values{"password": {webtest.Password}, "confirm_password": {webtest.Password}})
		if r.Status != http.StatusNotFound || !strings.Contains(r.Body, tc.title) {
			t.Errorf("POST %s: %d, want 404 %q", tc.title, r.Status, tc.title)
		}
	}
	if n := count(t, e, `SELECT count(*) FROM users WHERE email IN ('exp@acme.test', 'rev@acme.test')`); n != 0 {
		t.Errorf("%d users made from dead invitations", n)
	}
	// Refused, the links' secrets stay out of the log all the same.
	for _, link := range []string{expired, revoked, used} {
		if token := link[strings.LastIndex(link, "/")+1:]; strings.Contains(e.Logs.String(), token) {
			t.Errorf("the token of %s is in the server's log", link)
		}
	}
}

// TestLastOwnerAndOwnerOnly: the last active owner can be neither demoted
// nor disabled, whoever tries; admins and viewers read the team page and
// change nothing.
func TestLastOwnerAndOwnerOnly(t *testing.T) {
	e := webtest.New(t)
	olga := newAdmin(t, e, "olga@acme.test", auth.RoleOwner)
	oscar := newAdmin(t, e, "oscar@acme.test", auth.RoleOwner)
	ann := newAdmin(t, e, "ann@acme.test", auth.RoleAdmin)
	olgaID, oscarID := userID(t, e, "olga@acme.test"), userID(t, e, "oscar@acme.test")

	if r := olga.memberOp(oscarID, "role", url.Values{"role": {"admin"}}); r.Path != "/settings/team" {
		t.Fatalf("demoting the other owner: %d at %s", r.Status, r.Path)
	}
	// Olga is the last owner now: not by her own hand, and not through the
	// command line's functions either.
	if r := olga.memberOp(olgaID, "role", url.Values{"role": {"admin"}}); r.Status != http.StatusConflict || !strings.Contains(r.Body, "last active owner") {
		t.Errorf("the last owner demotes herself: %d", r.Status)
	}
	err := e.Store.InTx(context.Background(), func(q *db.Queries) error {
		id, _ := strconv.ParseInt(olgaID, 10, 64)
		_, err := auth.SetDisabled(context.Background(), q, e.App.Audit, e.Tenant.ID, id, true, audit.Actor{Type: audit.ActorSystem, ID: "cli"}, e.Clock.Now())
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "last active owner") {
		t.Errorf("disabling the last owner: %v", err)
	}
	if r := olga.memberOp(olgaID, "disable", url.Values{}); r.Status != http.StatusBadRequest {
		t.Errorf("an owner disables herself: %d", r.Status)
	}
	// Oscar, an admin now, reads the team and changes nothing.
	if r := oscar.c.Get("/settings/team"); r.Status != http.StatusOK || strings.Contains(r.Body, `data-testid="invite-form"`) {
		t.Errorf("an admin's team page: %d", r.Status)
	}
	for _, c := range []*webtest.Client{oscar.c, ann.c} {
		c.Get("/settings/team")
		if r := c.PostForm("/settings/team/invitations", url.Values{"email": {"x@acme.test"}, "role": {"owner"}, "code": {"123456"}}); r.Status != http.StatusForbidden {
			t.Errorf("a non-owner invites: %d", r.Status)
		}
		if r := c.PostForm("/settings/team/members/"+olgaID+"/disable", url.Values{"code": {"123456"}}); r.Status != http.StatusForbidden {
			t.Errorf("a non-owner disables an owner: %d", r.Status)
		}
	}
	// Another tenant's member is not found.
	other := e.NewTenant("globex")
	stranger := e.User(other, "sam@globex.test", auth.RoleViewer)
	if r := olga.memberOp(strconv.FormatInt(stranger.ID, 10), "disable", url.Values{}); r.Status != http.StatusNotFound {
		t.Errorf("disabling another tenant's user: %d", r.Status)
	}
}

// TestInvitationsSayNothingWithoutACodeAndDieWithTheirOwner: whether an
// address has an account anywhere is told only after the code was checked;
// an invitation whose owner was since disabled no longer works.
func TestInvitationsSayNothingWithoutACodeAndDieWithTheirOwner(t *testing.T) {
	e := webtest.New(t)
	o := newAdmin(t, e, "olga@acme.test", auth.RoleOwner)
	other := e.NewTenant("globex")
	e.User(other, "taken@globex.test", auth.RoleViewer)
	o.c.Get("/settings/team")
	r := o.c.PostForm("/settings/team/invitations", url.Values{"email": {"taken@globex.test"}, "role": {"viewer"}, "code": {wrongCode(e, o.secret)}})
	if r.Status != http.StatusUnauthorized || strings.Contains(r.Body, "already has a Keyward account") {
		t.Errorf("an invitation with a wrong code: %d, and it told whether the address has an account", r.Status)
	}

	// A second owner invites, then is disabled: the link dies with them.
	second := newAdmin(t, e, "sam@acme.test", auth.RoleOwner)
	link := second.invite(t, "ivy@acme.test", auth.RoleOwner)
	sam, _ := e.Store.GetUserByEmail(context.Background(), "sam@acme.test")
	err := e.Store.InTx(context.Background(), func(q *db.Queries) error {
		_, err := auth.SetDisabled(context.Background(), q, e.App.Audit, e.Tenant.ID, sam.ID, true, audit.Actor{Type: audit.ActorSystem, ID: "test"}, e.Clock.Now())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	c := e.Client()
	path := strings.TrimPrefix(link, e.Server.URL)
	c.Get(path)
	r = c.PostForm(path, url.Values{"password": {webtest.Password}, "confirm_password": {webtest.Password}})
	if r.Status != http.StatusNotFound {
		t.Errorf("an invitation of a disabled owner was accepted: %d at %s", r.Status, r.Path)
	}
	if n := count(t, e, `SELECT count(*) FROM users WHERE email = 'ivy@acme.test'`); n != 0 {
		t.Error("a user was made from a dead owner's invitation")
	}
}
