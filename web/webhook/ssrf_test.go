package webhook

import (
	"context"
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"keyward/db"
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
		"192.0.0.1", "192.0.0.255", "198.18.0.1", "198.19.255.255", "192.88.99.1", "255.255.255.255", "240.0.0.0",
		"2002:a00:1::1", "2002:7f00:1::", "2002:a9fe:a9fe::1", // 6to4 of 10.0.0.1, 127.0.0.1, 169.254.169.254
		"2001::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2", // Teredo
		"64:ff9b:1::a00:1", "64:ff9b:1::7f00:1", "64:ff9b:1:ff::808:808", // local-use NAT64: 10.0.0.1, 127.0.0.1, an unread layout
		"::a00:1", "::808:808", "::2", // IPv4-compatible
		"fec0::1", "feff::1", "100::1", "100::ffff:ffff:ffff:ffff", "2001:db8::1", "2001:db8:ffff::1",
	}
	allowed := []string{"203.0.113.7", "8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.1", "172.32.0.1",
		"2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "64:ff9b:1::808:808", "2002:808:808::1",
		"192.0.1.1", "198.17.255.255", "198.20.0.1", "192.88.98.1", "100:0:0:1::1", "2001:1::1", "2001:db9::1"}
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
		"https://[::ffff:10.0.0.1]:8443":                     "This URL leads to 10.0.0.1, a private address",
		"https://[2002:a00:1::1]/h":                          "a private address",
		"https://203.0.113.7:8443/h?t=1":                     "",
	} {
		_, msg := guard{strict: true}.checkURL(ctx, raw, true)
		if want == "" && msg != "" || want != "" && !strings.Contains(msg, want) {
			t.Errorf("checkURL(%.40q) = %q, want it to say %q", raw, msg, want)
		}
	}
	if _, msg := (guard{}).checkURL(ctx, "http://localhost:8080/h", true); msg != "" {
		t.Errorf("development refuses http on localhost: %s", msg)
	}
	// A host name is not resolved when the URL is the one stored (resolve
	// unset): the syntax is still checked.
	if _, msg := (guard{strict: true}).checkURL(ctx, "https://gone.invalid/h", false); msg != "" {
		t.Errorf("an unchanged URL was resolved: %s", msg)
	}
	if _, msg := (guard{strict: true}).checkURL(ctx, "http://gone.invalid/h", false); !strings.Contains(msg, "https://") {
		t.Errorf("an unchanged URL's syntax was not checked: %q", msg)
	}
	// Of a host name, the form never says which address it resolves to.
	_, msg := guard{strict: true}.checkURL(ctx, "https://localhost/h", true)
	if !strings.Contains(msg, "resolves to an address Keyward may not reach") || strings.Contains(msg, "127.0.0.1") || strings.Contains(msg, "::1") ||
		strings.Contains(msg, "KEYWARD_") {
		t.Errorf("localhost: %q", msg)
	}
	if err := (&BlockedError{Addr: netip.MustParseAddr("10.9.8.7"), Why: "a private address"}).Error(); strings.Contains(err, "10.9.8.7") || strings.Contains(err, "KEYWARD_") {
		t.Errorf("an attempt's error names the address or the setting: %s", err)
	}
}

// TestURLRef: the audit trail's form of a URL keeps its scheme, host and
// port and none of its path or query, where receivers keep their tokens;
// its fingerprint is keyed, so another installation's, or a plain hash,
// differs.
func TestURLRef(t *testing.T) {
	s := &Service{fpKey: []byte("installation one")}
	const zap = "https://hooks.zapier.com/hooks/catch/123/abcsecret/"
	r := s.ref(zap)
	if r.Origin != "https://hooks.zapier.com" || len(r.Fingerprint) != 8 || strings.Contains(r.String(), "abcsecret") || strings.Contains(r.String(), "123") {
		t.Errorf("ref(%s) = %+v", zap, r)
	}
	if s.ref(zap) != r || s.ref(zap+"x").Fingerprint == r.Fingerprint {
		t.Error("the fingerprint is not the URL's")
	}
	if (&Service{fpKey: []byte("installation two")}).ref(zap).Fingerprint == r.Fingerprint {
		t.Error("the fingerprint is not keyed")
	}
	if got := s.ref("HTTPS://h.example:8443/a?token=x").Origin; got != "https://h.example:8443" {
		t.Errorf("origin with a port: %s", got)
	}
}

// TestUnsubscribableActionsCostNothing: an event no endpoint may subscribe
// to returns before any query (a nil q would fail one).
func TestUnsubscribableActionsCostNothing(t *testing.T) {
	tenant := int64(1)
	for _, action := range []string{"auth.login.succeeded", "auth.login.failed", "user.password_reset"} {
		if err := (&Enqueuer{}).EventRecorded(context.Background(), nil, db.AuditEvent{TenantID: &tenant, Action: action}); err != nil {
			t.Errorf("%s: %v", action, err)
		}
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
		u, msg := guard{}.checkURL(context.Background(), raw, true)
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
