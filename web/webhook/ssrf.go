package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/idna"
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
	logger *slog.Logger
}

func (g guard) log() *slog.Logger {
	if g.logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return g.logger
}

// Ranges the rules refuse besides those netip classifies, each with what
// the form says of it.
var refusedRanges = []struct {
	p   netip.Prefix
	why string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "an unspecified address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a carrier-grade NAT address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "a reserved address (IETF protocol assignments)"},
	{netip.MustParsePrefix("192.88.99.0/24"), "a reserved address (6to4 relays)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a reserved address (benchmarking)"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"}, // 255.255.255.255 included
	{netip.MustParsePrefix("::/96"), "an IPv4-compatible address (deprecated)"},
	{netip.MustParsePrefix("100::/64"), "a discard-only address"},
	{netip.MustParsePrefix("2001::/32"), "a Teredo tunnel address"},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
	{netip.MustParsePrefix("fec0::/10"), "a site-local address"},
}

var (
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour  = netip.MustParsePrefix("2002::/16")
)

// forbidden says why ip is refused in strict mode, or "". Addresses that
// embed an IPv4 one and lead to it (IPv4-mapped, NAT64, 6to4) are judged
// by the IPv4 address.
func forbidden(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case ip.IsLoopback():
		return "a loopback address"
	case ip.IsUnspecified():
		return "an unspecified address"
	case ip.IsPrivate():
		return "a private address"
	case ip.IsLinkLocalUnicast():
		return "a link-local address (where cloud metadata services answer)"
	case ip.IsMulticast():
		return "a multicast address"
	case nat64.Contains(ip):
		b := ip.As16()
		return forbidden(netip.AddrFrom4([4]byte(b[12:16])))
	case nat64Local.Contains(ip):
		// Read in its /96 form, the IPv4 address in the last 32 bits;
		// the other RFC 6052 layouts spread it over bits Keyward does not
		// read, so they are refused.
		b := ip.As16()
		if [6]byte(b[6:12]) != [6]byte{} {
			return "a NAT64 address in a layout Keyward does not read"
		}
		return forbidden(netip.AddrFrom4([4]byte(b[12:16])))
	case sixToFour.Contains(ip):
		b := ip.As16()
		return forbidden(netip.AddrFrom4([4]byte(b[2:6])))
	}
	for _, r := range refusedRanges {
		if r.p.Contains(ip) {
			return r.why
		}
	}
	return ""
}

// BlockedError is a destination the rules refuse. Its message names
// neither the address nor why, since owners read it on their pages and a
// host name's address is the server's network's business: Detail, for
// the server's log, does.
type BlockedError struct {
	Addr netip.Addr
	Why  string
}

// blockedMsg is what owners are told of a host name whose address the
// rules refuse.
const blockedMsg = "an address Keyward may not reach (loopback, private, link-local or other internal ranges)"

func (e *BlockedError) Error() string {
	return "the receiver's host resolves to " + blockedMsg
}

// Detail names the address and why it is refused, for the server's log.
func (e *BlockedError) Detail() string {
	return fmt.Sprintf("%s is %s", e.Addr.Unmap(), e.Why)
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
// trimmed, or the message to show next to the field. In strict mode, when
// resolve is set, the host is resolved and every address it has must pass
// the rules; an address is named only when the URL holds it, so that the
// form tells nobody what a host name resolves to inside the server's
// network (the log does).
func (g guard) checkURL(ctx context.Context, raw string, resolve bool) (string, string) {
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
	if !g.strict || !resolve {
		return raw, ""
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if err := g.check(ip); err != nil {
			b := err.(*BlockedError)
			return raw, "This URL leads to " + b.Addr.String() + ", " + b.Why + ": webhooks go to addresses on the internet only, unless the server's operator allows that network."
		}
		return raw, ""
	}
	// An internationalised name is looked up in its ASCII (punycode) form,
	// as the delivery's dialer will.
	ascii, err := idna.Lookup.ToASCII(host)
	if err != nil {
		return raw, "The host name " + host + " is not a valid domain name: check the URL."
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(rctx, "ip", ascii)
	if err != nil || len(addrs) == 0 {
		return raw, "The host name " + host + " does not resolve: check the URL."
	}
	for _, ip := range addrs {
		if err := g.check(ip); err != nil {
			g.log().Info("webhook URL refused", "host", ascii, "detail", err.(*BlockedError).Detail())
			return raw, "The host name " + host + " resolves to " + blockedMsg +
				": webhooks go to addresses on the internet only, unless the server's operator allows that network."
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
// commas, blanks ignored. A bare address is refused, and so is a prefix
// with host bits set (10.1.2.3/8), so that a typing slip does not
// silently allow one host instead of a network or the other way round; a
// network broader than /8 (IPv4) or /32 (IPv6), 0.0.0.0/0 and ::/0
// included, is refused too: it would switch the rules off rather than let
// deliveries reach one internal network.
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
		if p.Addr().Is4() && p.Bits() < 8 || p.Addr().Is6() && p.Bits() < 32 {
			return nil, fmt.Errorf("KEYWARD_WEBHOOK_ALLOW_NETWORKS: %q is too broad: allow networks of at most /8 (IPv4) or /32 (IPv6), the internal ones deliveries must reach", s)
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("KEYWARD_WEBHOOK_ALLOW_NETWORKS: %q has host bits set: write the network as %s (or the /%d of the host you meant)", s, p.Masked(), p.Addr().BitLen())
		}
		out = append(out, p)
	}
	return out, nil
}
