package portal_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"keyward/web/apikey"
	"keyward/web/audit"
	"keyward/web/auth"
	"keyward/web/webtest"
)

// specEvents are the events the product promises in its audit trail, as
// docs/audit-events.md lists them.
var specEvents = []string{
	"api_key.created", "api_key.rotated", "api_key.updated", "api_key.disabled", "api_key.enabled", "api_key.revoked",
	"api_key.expired", "api_key.used_from_new_ip",
	"auth.login.succeeded", "auth.login.failed", "auth.mfa.enrolled", "auth.mfa.failed", "auth.mfa.replayed", "auth.logout",
	"api_key.leaked", "api_key.expiring",
	"user.invited", "user.created", "user.role_changed", "user.disabled", "user.enabled", "user.mfa_reset",
	"webhook.created", "webhook.updated", "webhook.deleted", "webhook.disabled",
	"audit.checkpoint",
}

// TestEverySpecEventIsWritten walks one organisation through everything
// the audit trail promises to record, each through the path a person, an
// API client or the server's jobs take (the portal's forms, the public
// API, the work functions the River jobs run), and then checks that the
// organisation's chain holds every promised event, that each reads as a
// sentence (audit.ActionName knows it) and that the chain verifies.
func TestEverySpecEventIsWritten(t *testing.T) {
	e := webtest.New(t)
	ctx := context.Background()
	must := func(what string, r webtest.Response, status int) webtest.Response {
		t.Helper()
		if r.Status != status {
			t.Fatalf("%s: %d at %s, want %d: %s", what, r.Status, r.Path, status, r.Body)
		}
		return r
	}

	// Sign-in (auth.login.succeeded), a team member's life.
	olga := newAdmin(t, e, "olga@acme.test", auth.RoleOwner)
	link := olga.invite(t, "nina@acme.test", auth.RoleAdmin) // user.invited
	accept(t, e, link)                                       // user.created, auth.mfa.enrolled
	nina := userID(t, e, "nina@acme.test")
	must("role", olga.memberOp(nina, "role", url.Values{"role": {auth.RoleViewer}}), http.StatusOK)
	must("disable member", olga.memberOp(nina, "disable", url.Values{}), http.StatusOK)
	must("enable member", olga.memberOp(nina, "enable", url.Values{}), http.StatusOK)
	must("reset member MFA", olga.memberOp(nina, "reset-mfa", url.Values{}), http.StatusOK)

	// Sign-in failures, a sign-out and a replayed code.
	c := e.Client()
	c.Get("/login")
	must("wrong password", c.PostForm("/login", url.Values{"email": {"olga@acme.test"}, "password": {"not the password"}}), http.StatusUnauthorized)
	c, _ = e.PasswordStep("olga@acme.test")
	must("wrong code", c.PostForm("/login/totp", url.Values{"code": {wrongCode(e, olga.secret)}}), http.StatusUnauthorized)
	code := e.NextCode(olga.secret)
	must("right code", c.PostForm("/login/totp", url.Values{"code": {code}}), http.StatusOK)
	must("sign out", c.PostForm("/logout", url.Values{}), http.StatusOK)
	c, _ = e.PasswordStep("olga@acme.test")
	must("replayed code", c.PostForm("/login/totp", url.Values{"code": {code}}), http.StatusUnauthorized)

	// A webhook endpoint's life.
	rcv := webtest.NewReceiver(t, false)
	hook, _ := olga.registerWebhook(t, rcv.Server.URL+"/hook", "api_key.revoked")
	hookPath := "/settings/developers/webhooks/" + hook
	olga.c.Get(hookPath)
	must("webhook edit", olga.c.PostForm(hookPath, url.Values{"url": {rcv.Server.URL + "/hook"}, "actions": {"api_key.revoked", "api_key.leaked"},
		"enabled": {"on"}, "code": {e.NextCode(olga.secret)}}), http.StatusOK)
	must("webhook off", olga.c.PostForm(hookPath, url.Values{"url": {rcv.Server.URL + "/hook"}, "actions": {"api_key.revoked"},
		"code": {e.NextCode(olga.secret)}}), http.StatusOK)
	must("webhook delete", olga.c.PostForm(hookPath+"/delete", url.Values{"code": {e.NextCode(olga.secret)}}), http.StatusOK)

	// A key's life, and its use from an address it has not seen.
	form := keyForm("Coverage")
	form.Del("ip_allowlist")
	id, full := olga.create(t, form)
	must("first use", e.API(http.MethodGet, "/api/v1/key", full, ""), http.StatusOK)
	e.App.Usage.Flush(ctx) // api_key.used_from_new_ip is written by the flush
	olga.c.Get("/settings/developers/api-keys/" + id + "/edit")
	must("edit", olga.c.PostForm("/settings/developers/api-keys/"+id, url.Values{"name": {"Coverage renamed"}, "preset": {"read_only"},
		"code": {e.NextCode(olga.secret)}}), http.StatusOK)
	must("rotate", olga.op(id, "rotate", url.Values{"grace": {"0"}}), http.StatusOK)
	must("disable", olga.op(id, "disable", url.Values{}), http.StatusOK)
	must("enable", olga.op(id, "enable", url.Values{}), http.StatusOK)
	must("revoke", olga.op(id, "revoke", url.Values{"confirm_name": {"Coverage renamed"}}), http.StatusOK)

	// A key found leaked, reported by anyone.
	_, leaked := olga.create(t, keyForm("Leaked"))
	must("report", e.API(http.MethodPost, "/api/v1/keys/report", "", `{"keys":["`+leaked+`"]}`, "Content-Type", "application/json"), http.StatusAccepted)

	// A key that expires: its notice a day ahead, then its expiry, as the
	// key_expiry job records them.
	expiresAt := e.Clock.Now().UTC().AddDate(0, 0, 10).Truncate(24 * time.Hour) // the form's dates are midnight UTC
	expiring := keyForm("Expiring")
	expiring.Set("expires_in", "custom")
	expiring.Set("expires_at", expiresAt.Format(time.DateOnly))
	olga.create(t, expiring)
	for _, at := range []time.Time{expiresAt.Add(-12 * time.Hour), expiresAt.Add(time.Hour)} {
		e.Clock.Set(at)
		if _, err := apikey.RecordExpiries(ctx, e.Store, e.App.Audit, e.Clock.Now()); err != nil {
			t.Fatal(err)
		}
	}

	// The checkpoint job's signed checkpoint.
	if _, err := audit.TakeCheckpoints(ctx, e.Store, e.App.Audit, e.Clock.Now()); err != nil {
		t.Fatal(err)
	}

	written := map[string]bool{}
	rows, err := e.Store.Pool.Query(ctx, `SELECT DISTINCT action FROM audit_events WHERE tenant_id = $1`, e.Tenant.ID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			t.Fatal(err)
		}
		written[a] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, a := range specEvents {
		if !written[a] {
			t.Errorf("%s was not written", a)
		}
		if !slices.Contains(audit.Actions(), a) {
			t.Errorf("%s has no name on the audit pages", a)
		}
	}
	report, err := audit.Verify(ctx, e.Store.Queries, e.App.Audit)
	if err != nil || report.Broken != nil {
		t.Fatalf("the chain does not verify: %v %+v", err, report)
	}
}
