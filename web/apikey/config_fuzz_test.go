package apikey_test

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"keyward/web/apikey"
	"keyward/web/errs"
)

// FuzzParseWindow: a rate-limit window is one of the offered windows or a
// field error on rate_limit, never anything else.
func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{"1m", "1h", "24h", "60m", "3600s", "1d", "", "0", "-1h", "1h0m0s", " 1h ", "9999999999h", "1e3h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := apikey.ParseWindow(s)
		if err == nil {
			if !slices.Contains(apikey.Windows, d) {
				t.Fatalf("%q read as %s, which is not an offered window", s, d)
			}
			if parsed, perr := time.ParseDuration(strings.TrimSpace(s)); perr != nil || parsed != d {
				t.Fatalf("%q read as %s, but it says %s", s, d, parsed)
			}
			return
		}
		if e, ok := errs.As(err); !ok || e.Kind != errs.Invalid || e.Field() != "rate_limit" || e.Message == "" {
			t.Fatalf("%q: refusal %v is not a rate_limit field error", s, err)
		}
	})
}

// FuzzParseCIDRs: an IP allowlist comes back as canonical, masked,
// distinct networks that mean exactly what was typed, or as a field error
// on ip_allowlist.
func FuzzParseCIDRs(f *testing.F) {
	for _, s := range []string{
		"203.0.113.0/24\n198.51.100.7", "10.0.0.1/8", "::1", "2001:db8::/32", "fe80::1%eth0", "0.0.0.0/0",
		"::ffff:1.2.3.4", "1.2.3.4/33", "a.b.c.d", "", " , ,", "10.0.0.0/8,10.0.0.0/8", "[::1]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		list := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' })
		got, err := apikey.ParseCIDRs(list)
		if err != nil {
			if e, ok := errs.As(err); !ok || e.Kind != errs.Invalid || e.Field() != "ip_allowlist" || e.Message == "" {
				t.Fatalf("%q: refusal %v is not an ip_allowlist field error", s, err)
			}
			return
		}
		if len(got) > 100 {
			t.Fatalf("accepted %d networks, more than 100", len(got))
		}
		seen := map[string]bool{}
		for _, n := range got {
			p, err := netip.ParsePrefix(n)
			if err != nil || p.Masked() != p || p.String() != n || seen[n] {
				t.Fatalf("%q gave %q: not a canonical, masked, distinct network", s, n)
			}
			seen[n] = true
		}
		// Every non-blank entry is one of the networks (an address as its
		// own /32 or /128).
		for _, in := range list {
			if in = strings.TrimSpace(in); in == "" {
				continue
			}
			p, err := netip.ParsePrefix(in)
			if err != nil {
				a, _ := netip.ParseAddr(in)
				p = netip.PrefixFrom(a, a.BitLen())
			}
			if !seen[p.String()] {
				t.Fatalf("%q: entry %q is not among %v", s, in, got)
			}
		}
		if again, err := apikey.ParseCIDRs(got); err != nil || !slices.Equal(again, got) {
			t.Fatalf("%v does not parse to itself: %v %v", got, again, err)
		}
	})
}
