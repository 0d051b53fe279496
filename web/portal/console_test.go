package portal_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"keyward/web/apikey"
	"keyward/web/auth"
	"keyward/web/webtest"
)

type envelope struct {
	Success bool            `json:"success"`
	Data    json.RawMessage `json:"data"`
	Error   *struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
		Field     string `json:"field"`
	} `json:"error"`
}

// call sends a console request with the session cookie and the CSRF
// header; hdr overrides headers (an empty value removes one).
func call(t *testing.T, c *webtest.Client, base, method, path string, body any, hdr map[string]string) (int, envelope) {
	t.Helper()
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	return callRaw(t, c, base, method, path, string(b), hdr)
}

// callRaw is call with the body as given. It goes through the client,
// which checks the exchange against openapi.json.
func callRaw(t *testing.T, c *webtest.Client, base, method, path, body string, hdr map[string]string) (int, envelope) {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", c.CSRF)
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	r := c.Do(req)
	var env envelope
	if err := json.Unmarshal([]byte(r.Body), &env); err != nil {
		t.Fatalf("%s %s: not JSON (%d): %v", method, path, r.Status, err)
	}
	return r.Status, env
}

func TestConsoleRoutes(t *testing.T) {
	e := webtest.New(t)
	a := newAdmin(t, e, "ann@acme.test", auth.RoleAdmin)
	base := e.Server.URL
	body := map[string]any{"name": "CI deployer", "environment": "staging", "scopes": []string{"events:write"},
		"rate_limit": map[string]any{"requests": 100, "window": "1m"}, "code": e.NextCode(a.secret)}

	status, env := call(t, a.c, base, "POST", "/api/v1/orgs/api-key/generate", body, nil)
	if status != http.StatusCreated || !env.Success {
		t.Fatalf("generate: %d %+v", status, env.Error)
	}
	var v struct{ ID, Key, Status, Environment string }
	json.Unmarshal(env.Data, &v)
	p, err := apikey.Parse(v.Key)
	if err != nil || p.Env != apikey.Staging || v.Status != "active" {
		t.Fatalf("generated %+v: %v", v, err)
	}
	assertNowhere(t, e, v.Key)

	// A request carrying an API key is refused, whatever else it carries.
	for _, h := range []map[string]string{{"Authorization": "Bearer " + v.Key}, {"X-API-Key": v.Key}} {
		status, env = call(t, a.c, base, "GET", "/api/v1/orgs/api-key", nil, h)
		if status != http.StatusForbidden || env.Error == nil || env.Error.Code != "FORBIDDEN" || env.Error.Message != "API keys cannot manage API keys" || env.Error.RequestID == "" {
			t.Errorf("with an API key %v: %d %+v", h, status, env.Error)
		}
	}
	// Writes need the CSRF header and a valid code.
	body["name"], body["code"] = "Other", e.NextCode(a.secret)
	if status, _ := call(t, a.c, base, "POST", "/api/v1/orgs/api-key/generate", body, map[string]string{"X-CSRF-Token": ""}); status != http.StatusForbidden {
		t.Errorf("generate without CSRF: %d", status)
	}
	body["code"] = wrongCode(e, a.secret)
	if status, env := call(t, a.c, base, "POST", "/api/v1/orgs/api-key/generate", body, nil); status != http.StatusUnauthorized || env.Error.Code != "INVALID_CODE" {
		t.Errorf("generate with a wrong code: %d %+v", status, env.Error)
	}
	body["code"], body["environment"] = e.NextCode(a.secret), "qa"
	if status, env := call(t, a.c, base, "POST", "/api/v1/orgs/api-key/generate", body, nil); status != http.StatusBadRequest || env.Error.Field != "environment" {
		t.Errorf("bad environment: %d %+v", status, env.Error)
	}
	if status, env := call(t, a.c, base, "POST", "/api/v1/orgs/api-key/generate", body, map[string]string{"Content-Type": "text/plain"}); status != http.StatusUnsupportedMediaType || env.Error.Code != "UNSUPPORTED_MEDIA_TYPE" {
		t.Errorf("text/plain body: %d", status)
	}

	status, env = call(t, a.c, base, "GET", "/api/v1/orgs/api-key?id="+v.ID, nil, nil)
	if status != http.StatusOK || !strings.Contains(string(env.Data), `"last_used_at":null`) || strings.Contains(string(env.Data), v.Key) {
		t.Fatalf("get: %d %s", status, env.Data)
	}
	status, env = call(t, a.c, base, "POST", "/api/v1/orgs/api-key/rotate", map[string]any{"id": v.ID, "grace": "1h", "code": e.NextCode(a.secret)}, nil)
	var rotated struct {
		Key      string
		Prefixes []string
	}
	json.Unmarshal(env.Data, &rotated)
	if status != http.StatusOK || rotated.Key == "" || rotated.Key == v.Key || len(rotated.Prefixes) != 2 {
		t.Fatalf("rotate: %d %s", status, env.Data)
	}
	status, env = call(t, a.c, base, "DELETE", "/api/v1/orgs/api-key", map[string]any{"id": v.ID, "code": e.NextCode(a.secret)}, nil)
	if status != http.StatusOK || !strings.Contains(string(env.Data), `"status":"revoked"`) {
		t.Fatalf("revoke: %d %s", status, env.Data)
	}

	// Another tenant's admin cannot see or touch the key; a viewer cannot
	// write; no session gets 401.
	other := e.NewTenant("globex")
	_, gs, _ := e.EnrolledUser(other, "gus@globex.test", auth.RoleOwner)
	g := e.SignIn("gus@globex.test", gs)
	if status, env := call(t, g, base, "GET", "/api/v1/orgs/api-key?id="+v.ID, nil, nil); status != http.StatusNotFound || env.Error.Code != "NOT_FOUND" {
		t.Errorf("cross-tenant get: %d", status)
	}
	vw := newAdmin(t, e, "vic@acme.test", auth.RoleViewer)
	if status, _ := call(t, vw.c, base, "POST", "/api/v1/orgs/api-key/generate", body, nil); status != http.StatusForbidden {
		t.Errorf("viewer generate: %d", status)
	}
	if status, _ := call(t, vw.c, base, "GET", "/api/v1/orgs/api-key", nil, nil); status != http.StatusOK {
		t.Errorf("viewer list: %d", status)
	}
	if status, env := call(t, e.Client(), base, "GET", "/api/v1/orgs/api-key", nil, nil); status != http.StatusUnauthorized || env.Error.Code != "UNAUTHORIZED" {
		t.Errorf("no session: %d", status)
	}
}

// TestConsoleRefusals drives the console's refusals that TestConsoleRoutes
// does not, each checked against openapi.json by the client: a revoked key
// cannot be changed (409), an unknown id is 404, a body that is not the
// route's JSON or holds a bad value is 400, an oversized one is 413, and a
// write the browser marks cross-site is 403.
func TestConsoleRefusals(t *testing.T) {
	e := webtest.New(t)
	a := newAdmin(t, e, "ann@acme.test", auth.RoleAdmin)
	base := e.Server.URL
	status, env := call(t, a.c, base, "POST", "/api/v1/orgs/api-key/generate", map[string]any{
		"name": "Short-lived", "environment": "production", "scopes": []string{"events:read"}, "code": e.NextCode(a.secret)}, nil)
	var k struct{ ID string }
	if json.Unmarshal(env.Data, &k); status != http.StatusCreated || k.ID == "" {
		t.Fatalf("generate: %d %+v", status, env.Error)
	}

	if status, env := call(t, a.c, base, "POST", "/api/v1/orgs/api-key/rotate", map[string]any{"id": k.ID, "grace": "2h", "code": e.NextCode(a.secret)}, nil); status != http.StatusBadRequest || env.Error.Field != "grace" {
		t.Errorf("rotate with a 2h grace: %d %+v", status, env.Error)
	}
	if status, env := call(t, a.c, base, "POST", "/api/v1/orgs/api-key/rotate", map[string]any{"id": "5b0e9c1a-3f47-4d2e-8a61-0c9b7d3e2f14", "grace": "0", "code": e.NextCode(a.secret)}, nil); status != http.StatusNotFound || env.Error.Code != "NOT_FOUND" {
		t.Errorf("rotate an unknown key: %d %+v", status, env.Error)
	}
	if status, env := callRaw(t, a.c, base, "DELETE", "/api/v1/orgs/api-key", `{"id": "`+k.ID+`", "code": `, nil); status != http.StatusBadRequest || env.Error.Code != "VALIDATION_ERROR" {
		t.Errorf("revoke with a cut-off body: %d %+v", status, env.Error)
	}
	if status, env := call(t, a.c, base, "DELETE", "/api/v1/orgs/api-key", map[string]any{"id": k.ID, "code": e.NextCode(a.secret), "colour": "red"}, nil); status != http.StatusBadRequest || env.Error.Code != "VALIDATION_ERROR" {
		t.Errorf("revoke with an unknown field: %d %+v", status, env.Error)
	}
	if status, env := call(t, a.c, base, "DELETE", "/api/v1/orgs/api-key", map[string]any{"id": k.ID, "code": e.NextCode(a.secret)}, map[string]string{"Sec-Fetch-Site": "cross-site"}); status != http.StatusForbidden || env.Error.Code != "FORBIDDEN" {
		t.Errorf("revoke marked cross-site: %d %+v", status, env.Error)
	}
	big := `{"name": "` + strings.Repeat("x", 70<<10) + `"}`
	if status, env := callRaw(t, a.c, base, "POST", "/api/v1/orgs/api-key/generate", big, nil); status != http.StatusRequestEntityTooLarge || env.Error.Code != "PAYLOAD_TOO_LARGE" {
		t.Errorf("a 70 KiB body: %d %+v", status, env.Error)
	}

	if status, env := call(t, a.c, base, "DELETE", "/api/v1/orgs/api-key", map[string]any{"id": k.ID, "code": e.NextCode(a.secret)}, nil); status != http.StatusOK || !strings.Contains(string(env.Data), `"status":"revoked"`) {
		t.Fatalf("revoke: %d %+v", status, env.Error)
	}
	if status, env := call(t, a.c, base, "DELETE", "/api/v1/orgs/api-key", map[string]any{"id": k.ID, "code": e.NextCode(a.secret)}, nil); status != http.StatusConflict || env.Error.Code != "CONFLICT" {
		t.Errorf("revoke a revoked key: %d %+v", status, env.Error)
	}
	if status, env := call(t, a.c, base, "POST", "/api/v1/orgs/api-key/rotate", map[string]any{"id": k.ID, "grace": "0", "code": e.NextCode(a.secret)}, nil); status != http.StatusConflict || env.Error.Code != "CONFLICT" {
		t.Errorf("rotate a revoked key: %d %+v", status, env.Error)
	}
}
