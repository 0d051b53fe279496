package webhook

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// guard decides which addresses deliveries may reach. In strict mode
// (production) it refuses every address that leads into the server's own
// networks rather than to the internet: loopback, private (RFC 1918 and
// IPv6 unique-local), link-local (where cloud metadata services answer),
// carrier-grade NAT, unspecified, multicast and reserved, in every form
// (an IPv4-mapped IPv6 address reads as its IPv4 one). Networks in allow
// are reachable whatever the rules say.
//
// It is checked twice: on the URL's host when an endpoint is saved, for a
// form error an owner can act on, and on the address each delivery
// actually dials (dialControl), so a name that resolves elsewhere later
// (DNS rebinding) cannot lead a delivery inside.
type guard struct {
	strict bool
	allow  []netip.Prefix
}

var (
	cgnat    = netip.MustParsePrefix("100.64.0.0/10")
	thisNet  = netip.MustParsePrefix("0.0.0.0/8")
	reserved = netip.MustParsePrefix("240.0.0.0/4") // 255.255.255.255 included
	nat64    = netip.MustParsePrefix("64:ff9b::/96")
)

// forbidden says why ip is refused in strict mode, or "".
func forbidden(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case ip.IsLoopback():
		return "a loopback address"
	case ip.IsUnspecified() || thisNet.Contains(ip):
		return "an unspecified address"
	case ip.IsPrivate():
		return "a private address"
	case ip.IsLinkLocalUnicast():
		return "a link-local address (where cloud metadata services answer)"
	case ip.IsMulticast():
		return "a multicast address"
	case cgnat.Contains(ip):
		return "a carrier-grade NAT address"
	case reserved.Contains(ip):
		return "a reserved address"
	case nat64.Contains(ip):
		// The NAT64 form of an IPv4 address leads to that address.
		b := ip.As16()
		return forbidden(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
	}
	return ""
}

// BlockedError is a destination the rules refuse.
type BlockedError struct {
	Addr netip.Addr
	Why  string
}

func (e *BlockedError) Error() string {
	return fmt.Sprintf("Keyward does not send webhooks to %s, %s: KEYWARD_WEBHOOK_ALLOW_NETWORKS can allow its network", e.Addr.Unmap(), e.Why)
}

// check refuses ip when the rules do.
func (g guard) check(ip netip.Addr) error {
	ip = ip.Unmap().WithZone("")
	for _, p := range g.allow {
		if p.Contains(ip) {
			return nil
		}
	}
	if !g.strict {
		return nil
	}
	if why := forbidden(ip); why != "" {
		return &BlockedError{Addr: ip, Why: why}
	}
	return nil
}

// dialControl runs after the address to dial is resolved and before the
// connection is made: the address checked is the one used.
func (g guard) dialControl(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("webhook: dialling %q, which is not an address", address)
	}
	return g.check(ip)
}

// maxURL bounds an endpoint's URL.
const maxURL = 2000

// checkURL checks an endpoint's URL as an owner typed it and returns it
// trimmed, or the message to show next to the field. In strict mode the
// host is resolved and every address it has must pass the rules.
func (g guard) checkURL(ctx context.Context, raw string) (string, string) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", "Enter the URL that receives the webhooks, such as https://example.com/hooks/keyward."
	}
	if len(raw) > maxURL {
		return raw, fmt.Sprintf("The URL is too long: at most %d characters.", maxURL)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return raw, "Enter a full URL, such as https://example.com/hooks/keyward."
	}
	if msg := g.checkScheme(u); msg != "" {
		return raw, msg
	}
	if u.User != nil {
		return raw, "Leave the user name and password out of the URL: receivers check the signature instead."
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return raw, "Leave the #fragment out of the URL: it is never sent."
	}
	host := u.Hostname()
	if !g.strict {
		return raw, ""
	}
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		addrs, err = net.DefaultResolver.LookupNetIP(rctx, "ip", host)
		if err != nil || len(addrs) == 0 {
			return raw, "The host name " + host + " does not resolve: check the URL."
		}
	}
	for _, ip := range addrs {
		if err := g.check(ip); err != nil {
			return raw, "This URL leads to " + err.(*BlockedError).Addr.String() + ", " + err.(*BlockedError).Why +
				": webhooks go to addresses on the internet only, unless the server's KEYWARD_WEBHOOK_ALLOW_NETWORKS allows that network."
		}
	}
	return raw, ""
}

// checkScheme allows https, and http outside strict mode.
func (g guard) checkScheme(u *url.URL) string {
	switch strings.ToLower(u.Scheme) {
	case "https":
		return ""
	case "http":
		if !g.strict {
			return ""
		}
		return "Use an https:// URL: in production, webhooks are sent over TLS only."
	}
	return "Use an https:// URL."
}

// ParseNetworks reads KEYWARD_WEBHOOK_ALLOW_NETWORKS: CIDRs separated by
// commas, blanks ignored. A bare address is refused, so that a typing
// slip does not silently allow one host instead of a network or the
// other way round.
func ParseNetworks(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("KEYWARD_WEBHOOK_ALLOW_NETWORKS: %q is not a CIDR such as 10.20.0.0/16 or fd00:1::/48", s)
		}
		if p.Addr().Is4In6() { // ::ffff:10.0.0.0/104 is 10.0.0.0/8
			if p.Bits() < 96 {
				return nil, fmt.Errorf("KEYWARD_WEBHOOK_ALLOW_NETWORKS: %q reaches past the IPv4-mapped range: write the IPv4 network instead", s)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
