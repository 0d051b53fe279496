package webtest_test

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"

	"keyward/db/dbtest"
	"keyward/web/apikey"
	"keyward/web/auth"
	"keyward/web/webtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// TestContractCheckCatchesDrift feeds CheckExchange a real answer of the
// running application and altered copies of it: the real one passes, and
// each alteration is caught.
func TestContractCheckCatchesDrift(t *testing.T) {
	e := webtest.New(t)
	owner := e.User(e.Tenant, "owner@acme.test", auth.RoleOwner)
	_, key := e.Key(e.Tenant, owner, apikey.Config{Name: "drift", Environment: apikey.Production, Scopes: apikey.AllScopes})

	r := e.API("GET", "/api/v1/key", key, "")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `"environment":"production"`) {
		t.Fatalf("GET /api/v1/key: %d %s", r.Status, r.Body)
	}
	keyed, _ := http.NewRequest("GET", e.Server.URL+"/api/v1/key", nil)
	keyed.Header.Set("Authorization", "Bearer "+key)
	real := webtest.Exchange{Request: keyed, Status: r.Status, Header: r.Header, Body: []byte(r.Body)}
	if err := webtest.CheckExchange(real); err != nil {
		t.Fatalf("the application's own answer fails the check: %v", err)
	}

	// The same body with data.environment renamed to data.env.
	var body struct {
		Success bool           `json:"success"`
		Data    map[string]any `json:"data"`
	}
	if err := json.Unmarshal([]byte(r.Body), &body); err != nil {
		t.Fatal(err)
	}
	body.Data["env"] = body.Data["environment"]
	delete(body.Data, "environment")
	renamed := real
	renamed.Body, _ = json.Marshal(body)
	if err := webtest.CheckExchange(renamed); err == nil || !strings.Contains(err.Error(), "environment") {
		t.Errorf("a body with environment renamed to env: err = %v, want one naming environment", err)
	}

	// The real answer under a status the document does not list for it.
	teapot := real
	teapot.Status = http.StatusTeapot
	if err := webtest.CheckExchange(teapot); err == nil || !strings.Contains(err.Error(), "418") {
		t.Errorf("status 418: err = %v, want one naming the status", err)
	}

	// A redirect, which ValidateResponse alone would let through.
	moved := real
	moved.Status = http.StatusTemporaryRedirect
	if err := webtest.CheckExchange(moved); err == nil || !strings.Contains(err.Error(), "307") {
		t.Errorf("status 307: err = %v, want one naming the status", err)
	}

	// The real body, which has now passed, with a malformed rate-limit
	// header: a body that passed once is not checked again, its headers are.
	garbled := real
	garbled.Header = r.Header.Clone()
	garbled.Header.Set("X-RateLimit-Limit", "lots")
	if err := webtest.CheckExchange(garbled); err == nil || !strings.Contains(err.Error(), "X-RateLimit-Limit") {
		t.Errorf("X-RateLimit-Limit: lots: err = %v, want one naming the header", err)
	}

	// A key-less request that the server would have answered 200: the
	// request breaks the document, and a 2xx means it was accepted.
	bare, _ := http.NewRequest("GET", e.Server.URL+"/api/v1/key", nil)
	accepted := real
	accepted.Request = bare
	if err := webtest.CheckExchange(accepted); err == nil || !strings.Contains(err.Error(), "bearerAuth") {
		t.Errorf("200 to a request without a key: err = %v, want one naming the security scheme", err)
	}
	// The server's real answer to that request, 401, is the document kept.
	refused := e.API("GET", "/api/v1/key", "", "")
	if refused.Status != http.StatusUnauthorized {
		t.Fatalf("GET /api/v1/key without a key: %d %s", refused.Status, refused.Body)
	}
	if err := webtest.CheckExchange(webtest.Exchange{Request: bare, Status: refused.Status, Header: refused.Header, Body: []byte(refused.Body)}); err != nil {
		t.Errorf("the 401 to a request without a key: %v", err)
	}

	// An undocumented route must be refused in the error envelope.
	lost := e.API("GET", "/api/v1/nowhere", key, "")
	nowhere, _ := http.NewRequest("GET", e.Server.URL+"/api/v1/nowhere", nil)
	found := webtest.Exchange{Request: nowhere, Status: http.StatusOK, Header: lost.Header, Body: []byte(lost.Body)}
	if err := webtest.CheckExchange(found); err == nil || !strings.Contains(err.Error(), "200") {
		t.Errorf("a 200 on an undocumented path: err = %v, want one naming the status", err)
	}
}
