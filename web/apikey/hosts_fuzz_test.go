package apikey_test

import (
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"keyward/web/apikey"
)

// hostEnvs are the ways KEYWARD_API_HOSTS may write an environment.
var hostEnvs = map[string]apikey.Environment{
	"production": apikey.Production, "prod": apikey.Production,
	"staging": apikey.Staging, "stag": apikey.Staging,
	"development": apikey.Development, "dev": apikey.Development,
}

// parseHostsModel is KEYWARD_API_HOSTS as documented: comma-separated
// host=environment items, blanks around either side and empty items
// ignored, hosts as hostModel reads them, the last of two items for one
// host winning. It returns the map, or the item at fault.
func parseHostsModel(s string) (map[string]apikey.Environment, string) {
	m := map[string]apikey.Environment{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		i := strings.IndexByte(item, '=')
		if i < 0 {
			return nil, item
		}
		host, hostOK := hostModel(strings.TrimSpace(item[:i]))
		env, ok := hostEnvs[strings.TrimSpace(item[i+1:])]
		if !hostOK || !ok {
			return nil, item
		}
		m[host] = env
	}
	return m, ""
}

// hostModel is a host of KEYWARD_API_HOSTS as documented, and false if it
// is refused: an IPv6 address (bare or in brackets, no zone) in its
// canonical spelling, or else a name with no ':', '[' or ']', in lower
// case without one final dot, with no empty label. A port is refused.
func hostModel(host string) (string, bool) {
	if ip, ok := ipv6Model(host); ok {
		return ip, true
	}
	if strings.ContainsAny(host, ":[]") {
		return "", false
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if slices.Contains(strings.Split(name, "."), "") {
		return "", false
	}
	return name, true
}

// ipv6Model reads an IPv6 address, bare or in brackets, with net.ParseIP
// (which takes no zone), and spells it as RFC 5952 does.
func ipv6Model(s string) (string, bool) {
	if len(s) >= 2 && strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
	}
	ip := net.ParseIP(s)
	if ip == nil || !strings.Contains(s, ":") {
		return "", false
	}
	return netip.AddrFrom16([16]byte(ip.To16())).String(), true
}

// requestHost is how a client's Host header names host: IPv6 literals in
// brackets.
func requestHost(host string) string {
	if ip := net.ParseIP(host); ip != nil && strings.Contains(host, ":") {
		return "[" + host + "]"
	}
	return host
}

// asciiUpper upper-cases ASCII letters only, which For must undo.
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func FuzzParseHosts(f *testing.F) {
	for _, seed := range [][2]string{
		{"api.example.com=production", "api.example.com"},
		{"api.example.com=prod,staging.example.com=stag,dev.example.com=dev", "staging.example.com:8443"},
		{"a=production,b=staging,c=development", "C"},
		{" api.example.com = production , sandbox.example.com=\tdevelopment ", "sandbox.example.com"},
		{",,api.example.com=prod,, ,", "api.example.com."},
		{"", "api.example.com"},
		{" , ", ""},
		{"api.example.com=prod,api.example.com=prod", "API.EXAMPLE.COM"},
		{"api.example.com=prod,API.example.com.=dev", "api.example.com"},
		{"API.Example.COM=production", "api.example.com:443"},
		{"api.example.com.=production", "api.example.com."},
		{"ünï.example=prod", "ÜNÏ.example"},
		{"api.example.com:8443=production", "api.example.com:8443"},
		{"localhost:8080=dev", "localhost:8080"},
		{"[::1]=dev", "[::1]:8080"},
		{"::1=dev", "[::1]"},
		{"2001:db8::1=production", "[2001:db8::1]:443"},
		{"127.0.0.1=development", "127.0.0.1:8080"},
		{"api.example.com=qa", "api.example.com"},
		{"api.example.com=Production", "api.example.com"},
		{"api.example.com=PROD", "api.example.com"},
		{"api.example.com", "api.example.com"},
		{"api.example.com=", "api.example.com"},
		{"=production", ""},
		{"=", ""},
		{"==", ""},
		{"a==prod", "a"},
		{"a=prod=dev", "a"},
		{".=prod", "."},
		{"..=prod", "."},
		{"a..=prod", "a."},
		{"a b=prod", "a b"},
		{"a=prod,b", "a"},
		{"[::1]:8080=dev", "[::1]:8080"},
		{"0:0::1=dev", "[::1]"},
		{"[::FFFF:192.0.2.1]=prod", "[::ffff:c000:201]:443"},
		{"fe80::1%eth0=dev", "[fe80::1%25eth0]"},
		{"[127.0.0.1]=prod", "127.0.0.1"},
		{".example.com=prod", "a.example.com"},
		{"a.b..c=prod", "a.b..c"},
		{"a:=prod", "a"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, list, host string) {
		h, err := apikey.ParseHosts(list)
		h2, err2 := apikey.ParseHosts(list)
		if !reflect.DeepEqual(h, h2) || fmt.Sprint(err) != fmt.Sprint(err2) {
			t.Fatalf("ParseHosts(%q) is not deterministic: %v, %v then %v, %v", list, h, err, h2, err2)
		}
		want, bad := parseHostsModel(list)
		if err != nil {
			if h != nil {
				t.Fatalf("ParseHosts(%q) failed but returned %v", list, h)
			}
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatalf("ParseHosts(%q) failed without a message", list)
			}
			if want != nil {
				t.Fatalf("ParseHosts(%q) refused a valid list: %v", list, err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) {
				t.Fatalf("ParseHosts(%q): %q does not quote the item at fault, %q", list, err, bad)
			}
			return
		}
		if want == nil {
			t.Fatalf("ParseHosts(%q) accepted a list whose item %q is not host=environment: %v", list, bad, h)
		}
		if !reflect.DeepEqual(map[string]apikey.Environment(h), want) {
			t.Fatalf("ParseHosts(%q) = %v, want %v", list, h, want)
		}

		for k, e := range h {
			if !e.Valid() || k == "" {
				t.Fatalf("ParseHosts(%q) bound %q to %q", list, k, e)
			}
			// A listed host is matched however a request names it: with
			// any port, in any ASCII case, with a final dot, an IPv6
			// address in any spelling.
			rh := requestHost(k)
			qs := []string{rh, rh + ":8443", asciiUpper(rh)}
			if rh == k {
				qs = append(qs, k+".", asciiUpper(k)+".:443")
			} else {
				long := "[" + netip.MustParseAddr(k).StringExpanded() + "]"
				qs = append(qs, long, asciiUpper(long)+":80")
			}
			for _, q := range qs {
				if got, ok := h.For(q); !ok || got != e {
					t.Fatalf("ParseHosts(%q) bound %q to %s, but For(%q) = %q, %v", list, k, e, q, got, ok)
				}
			}
		}

		// For answers only for listed hosts.
		got, ok := h.For(host)
		if ok != (got != "") || (ok && !got.Valid()) {
			t.Fatalf("For(%q) = %q, %v", host, got, ok)
		}
		name := host
		if hn, _, err := net.SplitHostPort(host); err == nil {
			name = hn
		}
		if ip, ok := ipv6Model(name); ok {
			name = ip
		} else {
			name = strings.TrimSuffix(strings.ToLower(name), ".")
		}
		if w, listed := h[name]; ok != listed || got != w {
			t.Fatalf("ParseHosts(%q).For(%q) = %q, %v; the host is %q, listed: %v", list, host, got, ok, name, listed)
		}
	})
}
