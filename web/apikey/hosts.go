package apikey

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// Hosts binds public-API host names to environments
// (KEYWARD_API_HOSTS=api.example.com=production,…). A host not in the map
// serves every environment, or, with KEYWARD_API_HOSTS_STRICT, none. Its
// keys are hosts as normalHost spells them: names in lower case without a
// final dot, IPv6 addresses in their canonical form without brackets.
type Hosts map[string]Environment

// ParseHosts reads "host=environment,…". Environments may be written in
// full or as their key token (prod, stag, dev). Blanks around either side
// and empty items are ignored; of two items for one host the last wins.
//
// A host is one of:
//   - a name, compared without case and without one final dot, whose labels
//     are not empty (".example.com" and "a..b" are refused): it has no ':',
//     '[' or ']';
//   - an IPv6 address, bare (::1) or in brackets ([::1]), without a zone,
//     matched in any of its spellings ([0:0::1] is ::1). A bare address is
//     read whole: ::1:8080 is an address, not ::1 with a port.
//
// An IPv4 address is a name: it is matched as written.
//
// A port is refused: ports are not part of the binding (For ignores the
// port a request names), so api.example.com:8443 could only mean the host
// on every port, which is better written so. Every host ParseHosts accepts
// is matched by For however a request names it: with or without a port,
// in any case, with a final dot.
func ParseHosts(s string) (Hosts, error) {
	h := Hosts{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		host, env, ok := strings.Cut(item, "=")
		e := Environment(strings.TrimSpace(env))
		for full, tok := range envTokens {
			if string(e) == tok {
				e = full
			}
		}
		if !ok || !e.Valid() {
			return nil, fmt.Errorf("KEYWARD_API_HOSTS: %q is not host=environment (production, staging or development)", item)
		}
		key, why := hostKey(strings.TrimSpace(host))
		if why != "" {
			return nil, fmt.Errorf("KEYWARD_API_HOSTS: %q: %s", item, why)
		}
		h[key] = e
	}
	return h, nil
}

// hostKey returns the key a host of KEYWARD_API_HOSTS is bound under, or
// why it cannot be bound.
func hostKey(host string) (key, why string) {
	if a, ok := ipv6(host); ok {
		return a, ""
	}
	if _, port, err := net.SplitHostPort(host); err == nil {
		why = fmt.Sprintf("leave out the port (:%s): a host is bound on every port", port)
		bare := host[:len(host)-len(port)-1] // as written: [::1] keeps its brackets
		if _, bad := hostKey(bare); bad == "" {
			why += ", so write " + bare + " alone"
		}
		return "", why
	}
	if strings.Contains(host, "%") && strings.Contains(host, ":") {
		return "", "an IPv6 address with a zone (%…) cannot be bound: write the address without it"
	}
	if strings.ContainsAny(host, ":[]") {
		return "", "the host is neither a name (no ':', '[' or ']') nor an IPv6 address"
	}
	key = normalHost(host)
	switch {
	case key == "":
		return "", "the host is missing"
	case strings.HasPrefix(key, ".") || strings.HasSuffix(key, ".") || strings.Contains(key, ".."):
		return "", "the host name has an empty label (a leading dot, two dots in a row, or two at the end)"
	}
	return key, ""
}

// ipv6 reads an IPv6 address without a zone, bare or in brackets, and
// returns its canonical form.
func ipv6(s string) (string, bool) {
	if len(s) >= 2 && s[0] == '[' && s[len(s)-1] == ']' {
		s = s[1 : len(s)-1]
	}
	if !strings.Contains(s, ":") {
		return "", false // an IPv4 address is a name here, compared as written
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return "", false
	}
	return a.String(), true
}

// normalHost is the one spelling of a host that bindings are kept under
// and requests are looked up by: a port, if any, dropped; an IPv6 address
// in its canonical form without brackets; anything else, a name, in lower
// case without one final dot. ParseHosts and For both go through it.
func normalHost(host string) string {
	if hn, _, err := net.SplitHostPort(host); err == nil {
		host = hn
	}
	if a, ok := ipv6(host); ok {
		return a
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// RequestHost is the host r was sent to, as the client wrote it: the
// authority of an absolute-form request line (GET http://api.example.com/…
// HTTP/1.1), which wins over the Host header (RFC 9112, section 3.2.2),
// else Host. Go's server already copies the former into r.Host; a request
// built in-process may carry it in r.URL alone. For normalises it.
func RequestHost(r *http.Request) string {
	if r.URL != nil && r.URL.Host != "" {
		return r.URL.Host
	}
	return r.Host
}

// For returns the environment bound to a request's host (any port, any
// letter case, with or without a final dot, an IPv6 address in any
// spelling), and whether there is one.
func (h Hosts) For(host string) (Environment, bool) {
	if len(h) == 0 {
		return "", false
	}
	e, ok := h[normalHost(host)]
	return e, ok
}

// Serving lists the hosts bound to env, sorted, as a request would name
// them (IPv6 addresses in brackets).
func (h Hosts) Serving(env Environment) []string {
	var out []string
	for host, e := range h {
		if e != env {
			continue
		}
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		out = append(out, host)
	}
	slices.Sort(out)
	return out
}
