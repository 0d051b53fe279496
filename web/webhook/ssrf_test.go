package webhook

import (
	"context"
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// TestAddressRules: which addresses strict mode refuses, in every form,
// and what the allow list lets through; outside strict mode everything
// passes.
func TestAddressRules(t *testing.T) {
	refused := []string{
		"127.0.0.1", "127.8.9.10", "::1", "0.0.0.0", "0.1.2.3", "::",
		"10.0.0.1", "172.16.5.4", "172.31.255.255", "192.168.1.1", "fc00::1", "fd12:3456::1",
		"169.254.169.254", "169.254.0.1", "fe80::1", "fe80::1%eth0",
		"100.64.0.1", "100.127.255.254", "224.0.0.1", "239.1.2.3", "ff02::1", "255.255.255.255", "240.0.0.1",
		"::ffff:127.0.0.1", "::ffff:10.1.2.3", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1",
	}
	allowed := []string{"203.0.113.7", "8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.1", "172.32.0.1",
		"2001:db8::1", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"}
	strict := guard{strict: true}
	for _, s := range refused {
		err := strict.check(netip.MustParseAddr(s))
		var b *BlockedError
		if !errors.As(err, &b) {
			t.Errorf("%s: allowed in strict mode", s)
		}
		if (guard{}).check(netip.MustParseAddr(s)) != nil {
			t.Errorf("%s: refused outside strict mode", s)
		}
		if err := strict.dialControl("tcp", netip.AddrPortFrom(netip.MustParseAddr(s), 443).String(), nil); err == nil {
			t.Errorf("%s: the dialer's check lets it through", s)
		}
	}
	for _, s := range allowed {
		if err := strict.check(netip.MustParseAddr(s)); err != nil {
			t.Errorf("%s: refused: %v", s, err)
		}
	}
	allow := guard{strict: true, allow: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16"), netip.MustParsePrefix("::1/128")}}
	for s, ok := range map[string]bool{"10.20.3.4": true, "::ffff:10.20.3.4": true, "10.21.0.1": false, "::1": true, "127.0.0.1": false} {
		if err := allow.check(netip.MustParseAddr(s)); (err == nil) != ok {
			t.Errorf("allow list, %s: %v, want allowed %v", s, err, ok)
		}
	}
}

// TestCheckURL: what the form says about URLs; in strict mode without the
// network (no lookups for literal addresses).
func TestCheckURL(t *testing.T) {
	ctx := context.Background()
	for raw, want := range map[string]string{
		"":                              "Enter the URL",
		"example.com/hook":              "full URL",
		"ftp://example.com/":            "https://",
		"https://user:pw@203.0.113.7/h": "user name and password",
		"https://203.0.113.7/h#frag":    "fragment",
		"https://203.0.113.7/" + strings.Repeat("a", maxURL): "too long",
		"http://203.0.113.7/h":                               "https://",
		"https://[::ffff:10.0.0.1]:8443":                     "private",
		"https://203.0.113.7:8443/h?t=1":                     "",
	} {
		_, msg := guard{strict: true}.checkURL(ctx, raw)
		if want == "" && msg != "" || want != "" && !strings.Contains(msg, want) {
			t.Errorf("checkURL(%.40q) = %q, want it to say %q", raw, msg, want)
		}
	}
	if _, msg := (guard{}).checkURL(ctx, "http://localhost:8080/h"); msg != "" {
		t.Errorf("development refuses http on localhost: %s", msg)
	}
}

// FuzzCheckURL: whatever an owner types, checking it never panics, and a
// URL it accepts is an absolute http(s) URL with a host, no credentials
// and no fragment, within the length bound. (Development rules: strict
// mode would resolve every host name the fuzzer makes up.)
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"https://example.com/h", "http://[::1]:8080/x?y=1", "https://user@x/", "https://x/#f", "//x", "https:", " https://a.b ", "https://%zz/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, msg := guard{}.checkURL(context.Background(), raw)
		if msg != "" {
			return
		}
		p, err := url.Parse(u)
		if err != nil || p.Host == "" || p.User != nil || p.Fragment != "" || len(u) > maxURL ||
			!strings.EqualFold(p.Scheme, "https") && !strings.EqualFold(p.Scheme, "http") {
			t.Errorf("accepted %q (%v)", u, err)
		}
	})
}
