package portal_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"keyward/db"
	"keyward/web/apikey"
	"keyward/web/audit"
	"keyward/web/auth"
	"keyward/web/webtest"
)

// The callers of the role matrix, in the order of its columns.
var matrixRoles = []string{"owner", "admin", "viewer", "disabled", "signed out"}

// TestRoleMatrix sends every portal route and form, and every console
// route, as an owner, an admin, a viewer, a user disabled after signing
// in, and a visitor who never signed in, and checks each status. Forms go
// without a code (or with nothing at all), so that an allowed change is
// refused for its input (400), never made, while a refused role is 403
// and a missing session a redirect to sign-in (303) or, on the console,
// 401. Redirects are not followed.
func TestRoleMatrix(t *testing.T) {
	e := webtest.New(t)
	owner, ownerSecret, _ := e.EnrolledUser(e.Tenant, "olga@acme.test", auth.RoleOwner)
	_, adminSecret, _ := e.EnrolledUser(e.Tenant, "ann@acme.test", auth.RoleAdmin)
	_, viewerSecret, _ := e.EnrolledUser(e.Tenant, "vic@acme.test", auth.RoleViewer)
	dora, doraSecret, _ := e.EnrolledUser(e.Tenant, "dora@acme.test", auth.RoleAdmin)
	target := e.User(e.Tenant, "tess@acme.test", auth.RoleViewer)
	key, _ := e.Key(e.Tenant, owner, apikey.Config{Name: "Matrix", Environment: apikey.Staging, Scopes: []string{apikey.ScopeEventsRead}})
	olga := &admin{e: e, c: e.SignIn("olga@acme.test", ownerSecret), secret: ownerSecret}
	link := olga.invite(t, "ivy@acme.test", auth.RoleViewer)
	invitePath := strings.TrimPrefix(link, e.Server.URL)
	invID := strconv.Itoa(count(t, e, `SELECT id FROM invitations WHERE email = 'ivy@acme.test'`))
	hookID, _ := olga.registerWebhook(t, "http://127.0.0.1:9/h", "api_key.revoked")

	clients := []*webtest.Client{
		olga.c,
		e.SignIn("ann@acme.test", adminSecret),
		e.SignIn("vic@acme.test", viewerSecret),
		e.SignIn("dora@acme.test", doraSecret),
		e.Client(),
	}
	clients[3].Get("/account") // a CSRF token from before the end
	clients[4].Get("/login")
	err := e.Store.InTx(context.Background(), func(q *db.Queries) error {
		_, err := auth.SetDisabled(context.Background(), q, e.App.Audit, e.Tenant.ID, dora.ID, true, audit.Actor{Type: audit.ActorSystem, ID: "test"}, e.Clock.Now())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	k, member := "/settings/developers/api-keys/"+key.ID, "/settings/team/members/"+strconv.FormatInt(target.ID, 10)
	hook := "/settings/developers/webhooks/" + hookID
	const json = "json"
	// status per caller: owner, admin, viewer, disabled, signed out.
	rows := []struct {
		method, path, body string
		want               [5]int
	}{
		{"GET", "/", "", [5]int{303, 303, 303, 303, 303}},
		{"GET", "/login", "", [5]int{303, 303, 303, 200, 200}},
		{"POST", "/login", "", [5]int{400, 400, 400, 400, 400}},
		{"GET", "/login/totp", "", [5]int{303, 303, 303, 303, 303}},
		{"POST", "/login/totp", "", [5]int{303, 303, 303, 303, 303}},
		{"GET", "/mfa/enroll", "", [5]int{303, 303, 303, 303, 303}},
		{"POST", "/mfa/enroll", "", [5]int{303, 303, 303, 303, 303}},
		{"GET", invitePath, "", [5]int{200, 200, 200, 200, 200}},
		{"POST", invitePath, "", [5]int{400, 400, 400, 400, 400}},
		{"GET", "/invite/unknown", "", [5]int{404, 404, 404, 404, 404}},
		{"GET", "/account", "", [5]int{200, 200, 200, 303, 303}},
		{"POST", "/account/password", "", [5]int{400, 400, 400, 303, 303}},
		{"POST", "/account/sessions/others", "", [5]int{303, 303, 303, 303, 303}},
		{"POST", "/account/recovery-codes", "", [5]int{400, 400, 400, 303, 303}},
		{"GET", "/account/authenticator", "", [5]int{200, 200, 200, 303, 303}},
		{"POST", "/account/authenticator", "", [5]int{400, 400, 400, 303, 303}},
		{"POST", "/account/authenticator/confirm", "", [5]int{303, 303, 303, 303, 303}},
		{"GET", "/settings", "", [5]int{200, 200, 200, 303, 303}},
		{"GET", "/settings/developers", "", [5]int{200, 200, 200, 303, 303}},
		{"GET", "/settings/developers/api-keys", "", [5]int{200, 200, 200, 303, 303}},
		{"GET", "/settings/developers/api-keys/new", "", [5]int{200, 200, 403, 303, 303}},
		{"POST", "/settings/developers/api-keys", "", [5]int{400, 400, 403, 303, 303}},
		{"GET", k, "", [5]int{200, 200, 200, 303, 303}},
		{"GET", k + "/edit", "", [5]int{200, 200, 403, 303, 303}},
		{"POST", k, "", [5]int{400, 400, 403, 303, 303}},
		{"POST", k + "/rotate", "", [5]int{400, 400, 403, 303, 303}},
		{"POST", k + "/disable", "", [5]int{400, 400, 403, 303, 303}},
		{"POST", k + "/enable", "", [5]int{400, 400, 403, 303, 303}},
		{"POST", k + "/revoke", "", [5]int{400, 400, 403, 303, 303}},
		{"POST", k + "/end-grace", "", [5]int{409, 409, 403, 303, 303}}, // no secret in a grace window
		{"GET", "/settings/developers/api-logs", "", [5]int{200, 200, 200, 303, 303}},
		{"GET", "/settings/developers/audit-log", "", [5]int{200, 200, 200, 303, 303}},
		{"GET", "/settings/developers/audit-log?format=jsonl", "", [5]int{200, 200, 200, 303, 303}},
		{"GET", "/settings/developers/api-logs/no-such-request", "", [5]int{404, 404, 404, 303, 303}},
		{"GET", "/settings/team", "", [5]int{200, 200, 200, 303, 303}},
		{"POST", "/settings/team/invitations", "", [5]int{400, 403, 403, 303, 303}},
		{"POST", "/settings/team/invitations/" + invID + "/revoke", "", [5]int{400, 403, 403, 303, 303}},
		{"GET", member, "", [5]int{200, 403, 403, 303, 303}},
		{"POST", member + "/role", "", [5]int{400, 403, 403, 303, 303}},
		{"POST", member + "/disable", "", [5]int{400, 403, 403, 303, 303}},
		{"POST", member + "/enable", "", [5]int{400, 403, 403, 303, 303}},
		{"POST", member + "/reset-mfa", "", [5]int{400, 403, 403, 303, 303}},
		{"GET", "/settings/organization", "", [5]int{200, 403, 403, 303, 303}},
		{"POST", "/settings/organization", "", [5]int{400, 403, 403, 303, 303}},
		{"GET", "/settings/developers/webhooks", "", [5]int{200, 403, 403, 303, 303}},
		{"POST", "/settings/developers/webhooks", "", [5]int{400, 403, 403, 303, 303}},
		{"GET", hook, "", [5]int{200, 403, 403, 303, 303}},
		{"POST", hook, "", [5]int{400, 403, 403, 303, 303}},
		{"POST", hook + "/delete", "", [5]int{400, 403, 403, 303, 303}},
		{"POST", hook + "/test", "", [5]int{303, 403, 403, 303, 303}}, // no code: it changes nothing
		{"GET", "/api/v1/orgs/api-key", json, [5]int{200, 200, 200, 401, 401}},
		{"POST", "/api/v1/orgs/api-key/generate", json, [5]int{400, 400, 403, 401, 401}},
		{"POST", "/api/v1/orgs/api-key/rotate", json, [5]int{400, 400, 403, 401, 401}},
		{"DELETE", "/api/v1/orgs/api-key", json, [5]int{404, 404, 403, 401, 401}},
		// Last: it ends the session.
		{"POST", "/logout", "", [5]int{303, 303, 303, 303, 303}},
	}
	for _, row := range rows {
		for i, c := range clients {
			var req *http.Request
			if row.body == json {
				body := "{}"
				if row.method == "GET" {
					body = ""
				}
				req, _ = http.NewRequest(row.method, e.Server.URL+row.path, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-CSRF-Token", c.CSRF)
			} else {
				var form url.Values
				if row.method == "POST" {
					form = url.Values{"csrf_token": {c.CSRF}}
				}
				req, _ = http.NewRequest(row.method, e.Server.URL+row.path, strings.NewReader(form.Encode()))
				if row.method == "POST" {
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
			}
			got := send(t, c, req)
			if got != row.want[i] {
				t.Errorf("%s %s as %s: %d, want %d", row.method, row.path, matrixRoles[i], got, row.want[i])
			}
		}
	}
	// Every portal and console route of the router is in the table.
	covered := map[string]bool{}
	for _, row := range rows {
		p := row.path
		for _, id := range []string{key.ID, hookID, strconv.FormatInt(target.ID, 10), invID} {
			p = strings.Replace(p, "/"+id, "/:id", 1)
		}
		if strings.HasPrefix(p, "/invite/") {
			p = "/invite/:token"
		}
		p = strings.Replace(p, "/api-logs/no-such-request", "/api-logs/:rid", 1)
		covered[row.method+" "+p] = true
	}
	for _, r := range e.App.Echo.Routes() {
		public := strings.HasPrefix(r.Path, "/api/") && !strings.HasPrefix(r.Path, "/api/v1/orgs")
		if r.Method == http.MethodHead || r.Method == echo.RouteNotFound || public || contains([]string{"/healthz", "/readyz", "/metrics", "/static/*"}, r.Path) {
			continue
		}
		if !covered[r.Method+" "+r.Path] {
			t.Errorf("%s %s is not in the role matrix", r.Method, r.Path)
		}
	}
	if n := count(t, e, `SELECT count(*) FROM users WHERE email = 'ivy@acme.test'`); n != 0 {
		t.Error("the matrix accepted the invitation")
	}
}

// send sends req with c's cookies and returns the status, following no
// redirect. Console requests go through the client, which checks them
// against the OpenAPI document and never follows a redirect there.
func send(t *testing.T, c *webtest.Client, req *http.Request) int {
	t.Helper()
	if strings.HasPrefix(req.URL.Path, "/api/") {
		return c.Do(req).Status
	}
	hc := *c.HTTP
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}
