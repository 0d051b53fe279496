package api_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"keyward/web/apikey"
	"keyward/web/webtest"
)

// BenchmarkKeyedRequest is the server's cost of GET /api/v1/key with a
// cached key, through the whole router; BenchmarkHealthz is the same for
// the unkeyed /healthz. Compare the two from one run.
func BenchmarkKeyedRequest(b *testing.B) {
	f := webtest.New(b)
	owner := f.User(f.Tenant, "owner@acme.test", "owner")
	_, full := f.Key(f.Tenant, owner, apikey.Config{Name: "bench", Environment: apikey.Production, Scopes: apikey.AllScopes,
		RateLimit: &apikey.RateLimit{Requests: 1_000_000, Window: time.Minute}})
	serve(b, f, "/api/v1/key", full)
}

// BenchmarkKeyedRequestNearExpiry is BenchmarkKeyedRequest with a key
// that expires within 7 days, whose answers carry Keyward-Key-Expires:
// the header's value and its slice are its only allocations.
func BenchmarkKeyedRequestNearExpiry(b *testing.B) {
	f := webtest.New(b)
	owner := f.User(f.Tenant, "owner@acme.test", "owner")
	soon := f.Clock.Now().Add(72 * time.Hour)
	_, full := f.Key(f.Tenant, owner, apikey.Config{Name: "bench", Environment: apikey.Production, Scopes: apikey.AllScopes,
		RateLimit: &apikey.RateLimit{Requests: 1_000_000, Window: time.Minute}, ExpiresAt: &soon})
	serve(b, f, "/api/v1/key", full)
}

func BenchmarkHealthz(b *testing.B) {
	serve(b, webtest.New(b), "/healthz", "")
}

func serve(b *testing.B, f *webtest.Env, path, key string) {
	req := httptest.NewRequest("GET", path, nil)
	req.RemoteAddr = "192.0.2.1:1234"
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		f.App.Echo.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
		}
	}
}
