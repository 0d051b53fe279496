package portal_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"keyward/web/apikey"
	"keyward/web/auth"
	"keyward/web/webtest"
)

// savePolicy has the owner save the organisation form.
func (a *admin) saveOrg(t *testing.T, form url.Values) webtest.Response {
	t.Helper()
	a.c.Get("/settings/organization")
	form.Set("code", a.e.NextCode(a.secret))
	return a.c.PostForm("/settings/organization", form)
}

// TestKeyPolicies: each policy refuses a key that breaks it, through the
// create form, the edit form and the console, naming the policy at the
// field; keys made before the policy are listed, not changed; the create
// form offers the default expiry.
func TestKeyPolicies(t *testing.T) {
	e := webtest.New(t)
	owner := newAdmin(t, e, "olga@acme.test", auth.RoleOwner)
	ann := newAdmin(t, e, "ann@acme.test", auth.RoleAdmin)
	oldID, _ := ann.create(t, url.Values{"name": {"Old open"}, "environment": {"production"}, "preset": {"read_only"}})

	// Refused input is kept, every problem at once.
	r := owner.saveOrg(t, url.Values{"name": {""}, "max_lifetime_days": {"abc"}, "default_expiry_days": {"5000"}})
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, `aria-describedby="err-max_lifetime_days"`) {
		t.Fatalf("bad organisation form: %d", r.Status)
	}
	r = owner.saveOrg(t, url.Values{"name": {"Acme Ltd"}, "max_lifetime_days": {"30"}, "require_prod_allowlist": {"on"},
		"default_expiry_days": {"14"}})
	if r.Path != "/settings/organization" || !strings.Contains(r.Body, "Settings saved") {
		t.Fatalf("save: %d at %s: %s", r.Status, r.Path, r.Body)
	}
	// The old key breaks both policies: listed with a link, unchanged.
	if !strings.Contains(r.Body, `href="/settings/developers/api-keys/`+oldID+`"`) ||
		!strings.Contains(r.Body, apikey.PolicyMaxLifetime+" and "+apikey.PolicyProdAllowlist) {
		t.Errorf("the old key is not listed as breaking both policies: %s", r.Body)
	}
	if n := count(t, e, `SELECT count(*) FROM api_keys WHERE id = $1 AND expires_at IS NULL AND disabled_at IS NULL`, oldID); n != 1 {
		t.Error("the policy changed an existing key")
	}
	if r := owner.c.Get("/settings/organization"); !strings.Contains(r.Body, `value="Acme Ltd"`) || !strings.Contains(r.Body, "team: 2,000 requests per hour") {
		t.Error("the organisation page does not show the saved name and the plan's limit")
	}

	// The create form offers the default expiry.
	want := e.Clock.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 14).Format(time.DateOnly)
	if r := ann.c.Get("/settings/developers/api-keys/new"); !strings.Contains(r.Body, `name="expires_at" value="`+want+`"`) {
		t.Errorf("the create form does not offer %s", want)
	}

	// Through the form: no expiry, and a production key without allowlist.
	ann.c.Get("/settings/developers/api-keys/new")
	r = ann.c.PostForm("/settings/developers/api-keys", url.Values{"name": {"New"}, "environment": {"production"}, "preset": {"read_only"},
		"code": {e.NextCode(ann.secret)}})
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, `aria-describedby="err-expires_at"`) ||
		!strings.Contains(r.Body, `aria-describedby="err-ip_allowlist"`) || !strings.Contains(r.Body, "“"+apikey.PolicyMaxLifetime+"”") ||
		!strings.Contains(r.Body, "“"+apikey.PolicyProdAllowlist+"”") {
		t.Errorf("a key that breaks both policies: %d %s", r.Status, r.Body)
	}
	tooLate := e.Clock.Now().AddDate(0, 0, 40).Format(time.DateOnly)
	r = ann.c.PostForm("/settings/developers/api-keys", url.Values{"name": {"New"}, "environment": {"staging"}, "preset": {"read_only"},
		"expires_at": {tooLate}, "code": {e.NextCode(ann.secret)}})
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "within 30 days") {
		t.Errorf("an expiry past the lifetime: %d", r.Status)
	}
	// A key that follows them is made.
	ann.create(t, url.Values{"name": {"Compliant"}, "environment": {"production"}, "preset": {"read_only"}, "ip_allowlist": {"203.0.113.0/24"},
		"expires_at": {e.Clock.Now().AddDate(0, 0, 20).Format(time.DateOnly)}})

	// Editing the old key must bring it in line.
	ann.c.Get("/settings/developers/api-keys/" + oldID + "/edit")
	r = ann.c.PostForm("/settings/developers/api-keys/"+oldID, url.Values{"name": {"Old open, renamed"}, "preset": {"read_only"}, "code": {e.NextCode(ann.secret)}})
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, `aria-describedby="err-expires_at"`) || !strings.Contains(r.Body, `aria-describedby="err-ip_allowlist"`) {
		t.Errorf("editing a key that breaks the policies: %d", r.Status)
	}

	// Through the console: the field named in the envelope.
	ann.c.Get("/settings/developers/api-keys")
	status, env := call(t, ann.c, e.Server.URL, http.MethodPost, "/api/v1/orgs/api-key/generate", map[string]any{
		"name": "Console", "environment": "staging", "scopes": []string{"events:read"}, "code": e.NextCode(ann.secret)}, nil)
	if status != http.StatusBadRequest || env.Error.Field != "expires_at" || !strings.Contains(env.Error.Message, apikey.PolicyMaxLifetime) {
		t.Errorf("console, no expiry: %d %+v", status, env.Error)
	}
	soon := e.Clock.Now().AddDate(0, 0, 10)
	status, env = call(t, ann.c, e.Server.URL, http.MethodPost, "/api/v1/orgs/api-key/generate", map[string]any{
		"name": "Console", "environment": "production", "scopes": []string{"events:read"}, "expires_at": soon, "code": e.NextCode(ann.secret)}, nil)
	if status != http.StatusBadRequest || env.Error.Field != "ip_allowlist" || !strings.Contains(env.Error.Message, apikey.PolicyProdAllowlist) {
		t.Errorf("console, production without allowlist: %d %+v", status, env.Error)
	}
	status, _ = call(t, ann.c, e.Server.URL, http.MethodPost, "/api/v1/orgs/api-key/generate", map[string]any{
		"name": "Console", "environment": "production", "scopes": []string{"events:read"}, "expires_at": soon,
		"ip_allowlist": []string{"198.51.100.7"}, "code": e.NextCode(ann.secret)}, nil)
	if status != http.StatusCreated {
		t.Errorf("console, a compliant key: %d", status)
	}
	if !contains(auditActions(t, e), "tenant.updated") {
		t.Error("no tenant.updated event")
	}
	// Admins cannot open the organisation page.
	if r := ann.c.Get("/settings/organization"); r.Status != http.StatusForbidden {
		t.Errorf("an admin opens the organisation page: %d", r.Status)
	}
}

// TestLeakPolicySetting: the organisation page offers the leak policy,
// revoke by default; the owner's change is confirmed with a code, kept,
// and audited as tenant.updated with what it was and became; a value that
// is not offered is refused at its field.
func TestLeakPolicySetting(t *testing.T) {
	e := webtest.New(t)
	owner := newAdmin(t, e, "olga@acme.test", auth.RoleOwner)
	page := owner.c.Get("/settings/organization")
	if !strings.Contains(page.Body, `name="leak_action" value="revoke" checked`) || !strings.Contains(page.Body, "When a key is reported leaked") {
		t.Fatalf("the page does not offer the leak policy, revoke chosen: %s", page.Body)
	}
	r := owner.saveOrg(t, url.Values{"name": {"Acme Inc."}, "leak_action": {"explode"}})
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, `aria-describedby="err-leak_action"`) {
		t.Fatalf("an unknown leak action: %d", r.Status)
	}
	r = owner.saveOrg(t, url.Values{"name": {"Acme Inc."}, "leak_action": {"disable"}})
	if r.Path != "/settings/organization" || !strings.Contains(r.Body, "Settings saved") ||
		!strings.Contains(r.Body, `name="leak_action" value="disable" checked`) {
		t.Fatalf("save: %d at %s: %s", r.Status, r.Path, r.Body)
	}
	if n := count(t, e, `SELECT count(*) FROM key_policies WHERE tenant_id = $1 AND leak_action = 'disable'`, e.Tenant.ID); n != 1 {
		t.Error("the policy was not stored")
	}
	if n := count(t, e, `SELECT count(*) FROM audit_events WHERE action = 'tenant.updated'
		AND (diff::jsonb)->'leak_action' = '{"from":"revoke","to":"disable"}'::jsonb`); n != 1 {
		t.Error("tenant.updated does not record the leak policy's change")
	}
}
