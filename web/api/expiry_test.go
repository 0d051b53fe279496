package api_test

import (
	"testing"
	"time"

	"keyward/web/api"
	"keyward/web/apikey"
	"keyward/web/webtest"
)

// TestKeyExpiresHeader: every answer to a request with a key that expires
// within 7 days carries Keyward-Key-Expires, its expiry in RFC 3339 UTC:
// a 200, a 403 for a missing scope, a 429, but not a 403 IP_NOT_ALLOWED,
// which would tell a client outside the allowlist of the key. A key
// expiring in 30 days gets none until the clock is 6 days from its expiry;
// a request with no key, or an expired one, gets a 401 without it.
func TestKeyExpiresHeader(t *testing.T) {
	f := newFixture(t, webtest.Options{})
	now := f.Clock.Now()
	in3, in30 := now.Add(3*24*time.Hour+17*time.Second), now.Add(30*24*time.Hour)
	_, near := f.key(apikey.Config{ExpiresAt: &in3, Scopes: []string{apikey.ScopeEventsRead}})
	_, limited := f.key(apikey.Config{ExpiresAt: &in3, RateLimit: &apikey.RateLimit{Requests: 1, Window: time.Hour}})
	_, far := f.key(apikey.Config{ExpiresAt: &in30})
	_, never := f.key(apikey.Config{})
	_, outside := f.key(apikey.Config{ExpiresAt: &in3, IPAllowlist: []string{"203.0.113.0/24"}})
	want3 := in3.UTC().Format(time.RFC3339)

	header := func(r webtest.Response) string { return r.Header.Get(api.HeaderKeyExpires) }
	if r := f.API("GET", "/api/v1/key", near, ""); r.Status != 200 || header(r) != want3 {
		t.Errorf("200 with a key expiring in 3 days: %d, header %q, want %q", r.Status, header(r), want3)
	}
	r := f.API("POST", "/api/v1/events", near, event, "Idempotency-Key", "x1")
	wantError(t, r, 403, "FORBIDDEN")
	if header(r) != want3 {
		t.Errorf("403 for the scope: header %q, want %q", header(r), want3)
	}
	f.API("GET", "/api/v1/key", limited, "")
	r = f.API("GET", "/api/v1/key", limited, "")
	wantError(t, r, 429, "RATE_LIMITED")
	if header(r) != want3 {
		t.Errorf("429: header %q, want %q", header(r), want3)
	}
	// Outside the key's allowlist the client learns nothing of the key.
	r = f.API("GET", "/api/v1/key", outside, "")
	wantError(t, r, 403, "IP_NOT_ALLOWED")
	if header(r) != "" {
		t.Errorf("403 IP_NOT_ALLOWED: header %q, want none", header(r))
	}
	for name, key := range map[string]string{"30 days": far, "never": never} {
		if r := f.API("GET", "/api/v1/key", key, ""); r.Status != 200 || header(r) != "" {
			t.Errorf("a key expiring %s: %d, header %q, want none", name, r.Status, header(r))
		}
	}
	r = f.API("GET", "/api/v1/key", "", "")
	wantError(t, r, 401, "UNAUTHORIZED")
	if header(r) != "" {
		t.Errorf("401 without a key: header %q", header(r))
	}

	// 24 days on, the 30-day key has 6 left, and the 3-day key expired.
	f.Clock.Advance(24 * 24 * time.Hour)
	if r := f.API("GET", "/api/v1/key", far, ""); r.Status != 200 || header(r) != in30.UTC().Format(time.RFC3339) {
		t.Errorf("the 30-day key 6 days before its expiry: %d, header %q", r.Status, header(r))
	}
	r = f.API("GET", "/api/v1/key", near, "")
	wantError(t, r, 401, "KEY_EXPIRED")
	if header(r) != "" {
		t.Errorf("401 for an expired key: header %q", header(r))
	}
}
