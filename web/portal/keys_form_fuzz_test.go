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
		"name=x&environment=production&preset=read_only&expires_in=30",
		"name=x&environment=staging&preset=full_access&expires_in=custom&expires_at=2027-02-28",
		"name=x&environment=staging&preset=full_access&expires_in=custom",
		"name=x&environment=development&preset=read_only&expires_in=none&expires_at=2020-01-01",
		"name=x&environment=development&preset=read_only&expires_in=365&expires_at=tomorrow",
		"name=x&environment=production&preset=ingest_only&expires_in=7&expires_in=none",
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
		form, cfg := parseKeyForm(vals, now)
		switch days, preset := presetDays(vals.Get("expires_in")); {
		case preset && (cfg.ExpiresAt == nil || cfg.ExpiresAt.Sub(now) < time.Duration(days)*24*time.Hour || cfg.ExpiresAt.Sub(now) > time.Duration(days+1)*24*time.Hour):
			t.Fatalf("a %d-day preset gave expiry %v", days, cfg.ExpiresAt)
		case vals.Get("expires_in") == "none" && cfg.ExpiresAt != nil:
			t.Fatalf("no expiry was chosen, yet the key expires at %s", cfg.ExpiresAt)
		}
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

// TestParseKeyFormExpiry pins what each expiry choice means: a preset ends
// with the UTC day that is its number of days away, a date means 00:00 UTC
// on it, "none" ignores any date, and a form without expires_in (a script)
// means its date, or no expiry.
func TestParseKeyFormExpiry(t *testing.T) {
	now := time.Date(2026, 11, 30, 23, 59, 59, 0, time.UTC)
	day := func(s string) *time.Time { d, _ := time.Parse(time.DateOnly, s); return &d }
	for _, tc := range []struct {
		in, at  string
		want    *time.Time
		problem bool
	}{
		{in: "7", want: day("2026-12-08")},
		{in: "30", at: "2030-01-01", want: day("2026-12-31")},
		{in: "60", want: day("2027-01-30")},
		{in: "90", want: day("2027-03-01")},
		{in: "custom", at: "2027-01-31", want: day("2027-01-31")},
		{in: "", at: "2027-01-31", want: day("2027-01-31")},
		{in: "", at: ""},
		{in: "none", at: "2027-01-31"},
		{in: "custom", at: "", problem: true},
		{in: "custom", at: "31/01/2027", problem: true},
		{in: "365", problem: true},
	} {
		vals := url.Values{"expires_in": {tc.in}, "expires_at": {tc.at}}
		form, cfg := parseKeyForm(vals, now)
		got := cfg.ExpiresAt
		if (got == nil) != (tc.want == nil) || got != nil && !got.Equal(*tc.want) || cfg.Unreadable.Has("expires_at") != tc.problem {
			t.Errorf("expires_in=%q expires_at=%q: expiry %v, problem %v; want %v, %v", tc.in, tc.at, got, cfg.Unreadable, tc.want, tc.problem)
		}
		if form.ExpiresAt != tc.at || tc.in != "" && form.ExpiresIn != tc.in {
			t.Errorf("expires_in=%q expires_at=%q: the form shows %q %q again", tc.in, tc.at, form.ExpiresIn, form.ExpiresAt)
		}
	}
}
