package portal

import (
	"net/url"
	"slices"
	"testing"
	"time"

	"keyward/web/apikey"
	"keyward/web/errs"
)

// FuzzParseKeyForm feeds the create/edit form parser any form body. It
// must never panic; what it reads must be kept as typed (a refused form
// shows the input again); everything it could not read must be named as a
// field problem; and validation must then either accept a configuration
// that obeys every rule or name only known fields.
func FuzzParseKeyForm(f *testing.F) {
	for _, seed := range []string{
		"name=Worker&environment=production&preset=full_access&ip_allowlist=203.0.113.0%2F24%0A198.51.100.7&rate_limit_requests=500&rate_limit_window=1h",
		"name=&environment=moon&preset=custom&scopes=events%3Aread&scopes=events%3Aadmin",
		"name=x&environment=staging&preset=bogus&rate_limit_requests=many&rate_limit_window=1y&expires_at=someday",
		"name=x&environment=development&preset=read_only&rate_limit_requests=-5&rate_limit_window=24h&expires_at=2030-01-31",
		"name=x&environment=development&preset=read_only&ip_allowlist=10.0.0.1%2F8%2Cfe80%3A%3A1%25eth0%2C%3A%3A1&sources=a%2C%2C%21bad",
		"name=%00&description=%FF%FE&environment=production&preset=ingest_only&rate_limit_requests=99999999999999999999",
		"%zz=1&name=a;b",
		"",
	} {
		f.Add(seed)
	}
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	known := []string{"name", "description", "environment", "scopes", "sources", "ip_allowlist", "rate_limit", "expires_at"}
	f.Fuzz(func(t *testing.T, body string) {
		vals, err := url.ParseQuery(body)
		if err != nil {
			vals = url.Values{}
		}
		form, cfg := parseKeyForm(vals)
		if form.Name != vals.Get("name") || form.Description != vals.Get("description") || form.IPAllowlist != vals.Get("ip_allowlist") {
			t.Fatalf("the form did not keep what was typed: %+v", form)
		}
		for _, u := range cfg.Unreadable {
			if !slices.Contains(known, u.Name) || u.Message == "" {
				t.Fatalf("unreadable field %q with message %q", u.Name, u.Message)
			}
		}
		if cfg.RateLimit != nil && cfg.Unreadable.Has("rate_limit") {
			t.Fatal("an unreadable rate limit was still read")
		}
		err = cfg.Normalize(now)
		if err == nil {
			if cfg.Name == "" || !cfg.Environment.Valid() || len(cfg.Scopes) == 0 || len(cfg.Unreadable) > 0 {
				t.Fatalf("accepted an invalid configuration: %+v", cfg)
			}
			if cfg.RateLimit != nil && (cfg.RateLimit.Requests < 1 || !slices.Contains(apikey.Windows, cfg.RateLimit.Window)) {
				t.Fatalf("accepted rate limit %+v", cfg.RateLimit)
			}
			if cfg.ExpiresAt != nil && !cfg.ExpiresAt.After(now) {
				t.Fatalf("accepted a past expiry %s", cfg.ExpiresAt)
			}
			if _, err := apikey.ParseCIDRs(cfg.IPAllowlist); err != nil {
				t.Fatalf("accepted allowlist %v does not parse again: %v", cfg.IPAllowlist, err)
			}
			return
		}
		ee, ok := errs.As(err)
		if !ok || ee.Kind != errs.Invalid || len(ee.Fields) == 0 {
			t.Fatalf("a refusal that names no field: %v", err)
		}
		e := ee.Fields
		for _, fe := range e {
			if !slices.Contains(known, fe.Name) || fe.Message == "" {
				t.Fatalf("refusal names field %q with message %q", fe.Name, fe.Message)
			}
		}
		for _, u := range cfg.Unreadable {
			if !slices.ContainsFunc(e, func(x errs.Field) bool { return x.Name == u.Name }) {
				t.Fatalf("the unreadable %s is missing from the refusal %v", u.Name, e)
			}
		}
	})
}
