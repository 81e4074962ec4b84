// Package ssrf keeps requests to tenant-supplied URLs off internal networks
// (server-side request forgery).
//
// A URL is checked twice. CheckURL runs when a tenant registers an
// endpoint: it refuses other schemes than https, user info, ports outside
// the policy, IP literals in a blocked range (in every spelling a resolver
// or browser accepts, such as 0x7f000001 or 2130706433) and host names
// that can only resolve inside a private network ("localhost",
// "*.internal", single-label names). It does not resolve names: DNS can
// change after registration.
//
// Dialer runs on every connection. It resolves the host itself, refuses
// unless every resolved address is allowed, and connects only to an
// address it has checked, never to the name again, so a name that
// re-resolves to an internal address between check and connect (DNS
// rebinding) gets nowhere. A net.Dialer control hook then re-checks the
// socket address the kernel is about to connect to.
//
// Blocked, unless in Policy.Allow:
//
//   - IPv4: 0.0.0.0/8 (unspecified), 10/8, 172.16/12 and 192.168/16
//     (private), 100.64/10 (shared, CGNAT), 127/8 (loopback), 169.254/16
//     (link-local, including the cloud metadata address 169.254.169.254),
//     192.0.0/24 and 192.88.99/24 (reserved), 192.0.2/24, 198.51.100/24 and
//     203.0.113/24 (documentation), 198.18/15 (benchmarking), 224/4
//     (multicast), 240/4 (reserved) and 255.255.255.255 (broadcast).
//   - IPv6: everything outside the global unicast block 2000::/3, except
//     the forms below that embed an IPv4 address; and within it 2001::/32
//     (Teredo), the rest of 2001::/23 (IETF protocol assignments),
//     2001:db8::/32 and 3fff::/20 (documentation). Outside 2000::/3 that
//     covers :: (unspecified), ::1 (loopback), fc00::/7 (private, unique
//     local), fe80::/10 (link-local), fec0::/10 (site-local), ff00::/8
//     (multicast), 100::/64 (discard-only), ::/96 (IPv4-compatible) and
//     64:ff9b:1::/48 (local-use NAT64).
//   - IPv6 forms that embed an IPv4 address are judged by that address:
//     ::ffff:0:0/96 (IPv4-mapped), 64:ff9b::/96 (NAT64) and 2002::/16
//     (6to4). So 64:ff9b::808:808 (8.8.8.8 through a NAT64 gateway) is
//     allowed and 64:ff9b::a00:1 (10.0.0.1) is not.
//
// A NAT64 gateway on a network-specific prefix cannot be told from any
// other address; production egress should still go through a dedicated
// subnet or filtering proxy. Neither check follows redirects: the HTTP
// client must not either (dispatch.Sender never does), and it must not use
// a proxy, or the dialer would check the proxy's address instead of the
// tenant's.
//
// Refusals wrap ErrBlocked (and, from Dialer, the caller's own sentinel);
// malformed URLs wrap ErrInvalidURL. Error texts say what was refused and
// why. They never hold user info, and a refused name's resolved address is
// not named, only its kind ("internal.test resolves to a private
// address"), so a tenant cannot map the internal network through them.
package ssrf

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

var (
	// ErrBlocked is wrapped by every refusal: an address, port, scheme,
	// user info or host name the policy does not allow.
	ErrBlocked = errors.New("ssrf: address not allowed")
	// ErrInvalidURL is wrapped when CheckURL cannot make sense of a URL: it
	// does not parse, has no host, a malformed host or port.
	ErrInvalidURL = errors.New("ssrf: invalid url")
	// ErrInvalidPolicy is wrapped by ParsePolicy and Validate.
	ErrInvalidPolicy = errors.New("ssrf: invalid policy")
)

// Policy decides which outbound targets are allowed. The zero Policy allows
// only https to public unicast addresses (see the package doc), on any
// port.
//
// A Policy is a plain value, safe for concurrent use while nobody modifies
// it; Dialer keeps its own copy. CheckURL, Dialer and Allowed never fail
// open on an invalid Policy (an invalid prefix or port matches nothing),
// but Validate says what is wrong with one.
type Policy struct {
	// AllowHTTP also allows plain http URLs (development only).
	AllowHTTP bool
	// Allow lists addresses that are allowed although they are in a
	// blocked range, e.g. 127.0.0.1/32 for local development. It is
	// matched against the address actually dialled; an IPv4-mapped IPv6
	// address matches as its IPv4 address, and an IPv4-mapped prefix as
	// its IPv4 prefix. The IPv4 address inside a NAT64 or 6to4 address is
	// never matched against it: that connection goes to a gateway, not to
	// the allowed host.
	Allow []netip.Prefix
	// AllowHosts lists host names that CheckURL accepts although the name
	// alone would be refused (a single label such as "localhost", or a
	// special-use suffix such as ".internal" or ".test"). Matching is exact
	// and case-insensitive, and a trailing dot is ignored. It exempts the
	// name only: Dialer still requires every address it resolves to to be
	// public or in Allow. For "localhost" in development, allow both
	// 127.0.0.1/32 and ::1/128, as it usually resolves to both.
	AllowHosts []string
	// Ports lists the allowed ports; empty means any port 1-65535. It
	// applies to allow-listed addresses too.
	Ports []int
}

// ParsePolicy builds a Policy from configuration text. Each allow entry is
// an IP address ("127.0.0.1", "::1") or a CIDR prefix ("10.0.0.0/8"); a
// prefix with host bits set ("10.0.0.1/8") is refused as a likely typo, and
// IPv4-mapped forms are stored as IPv4. Ports must be 1-65535. Set
// AllowHosts on the result if needed. Errors wrap ErrInvalidPolicy.
func ParsePolicy(allowHTTP bool, allow []string, ports []int) (Policy, error) {
	p := Policy{AllowHTTP: allowHTTP, Ports: slices.Clone(ports)}
	for _, s := range allow {
		pfx, err := parseAllow(strings.TrimSpace(s))
		if err != nil {
			return Policy{}, err
		}
		p.Allow = append(p.Allow, pfx)
	}
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

func parseAllow(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%w: allow %q is not an IP address or CIDR prefix", ErrInvalidPolicy, s)
		}
		if m := pfx.Masked(); m != pfx {
			return netip.Prefix{}, fmt.Errorf("%w: allow %q has host bits set (did you mean %s?)", ErrInvalidPolicy, s, m)
		}
		return unmapPrefix(pfx), nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%w: allow %q is not an IP address or CIDR prefix", ErrInvalidPolicy, s)
	}
	ip = ip.Unmap()
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}

// unmapPrefix turns an IPv4-mapped prefix (::ffff:10.0.0.0/104) into its
// IPv4 form (10.0.0.0/8); other prefixes are returned as they are.
func unmapPrefix(pfx netip.Prefix) netip.Prefix {
	if pfx.Addr().Is4In6() && pfx.Bits() >= 96 {
		return netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96)
	}
	return pfx
}

// Validate reports the first problem with p: an invalid Allow prefix, a
// port outside 1-65535, or an AllowHosts entry that is not a host name (IP
// addresses belong in Allow). Errors wrap ErrInvalidPolicy.
func (p Policy) Validate() error {
	for _, pfx := range p.Allow {
		if !pfx.IsValid() {
			return fmt.Errorf("%w: invalid allow prefix %q", ErrInvalidPolicy, pfx)
		}
	}
	for _, port := range p.Ports {
		if port < 1 || port > 65535 {
			return fmt.Errorf("%w: port %d out of range", ErrInvalidPolicy, port)
		}
	}
	for _, h := range p.AllowHosts {
		name := strings.TrimSuffix(h, ".")
		if _, numeric := hostIP(name); numeric || strings.Contains(name, ":") {
			return fmt.Errorf("%w: allowed host %q looks like an IP address (addresses go in Allow)", ErrInvalidPolicy, h)
		}
		if !validHostname(strings.ToLower(name)) {
			return fmt.Errorf("%w: allowed host %q is not a host name", ErrInvalidPolicy, h)
		}
	}
	return nil
}

// Allowed reports whether a connection to ip is allowed: ip is in Allow,
// or outside every blocked range. An IPv6 zone is ignored; the invalid
// Addr is never allowed.
func (p Policy) Allowed(ip netip.Addr) bool { return p.judge(ip).kind == "" }

// verdict is why an address is blocked; the zero verdict allows it.
type verdict struct {
	// kind is what the address is, "a loopback address"; empty when allowed.
	kind string
	// via names the IPv6 form ("IPv4-mapped", "NAT64", "6to4") when the
	// verdict is about inner, the IPv4 address it embeds.
	via   string
	inner netip.Addr
}

func (p Policy) judge(ip netip.Addr) verdict {
	if !ip.IsValid() {
		return verdict{kind: "an invalid address"}
	}
	ip = ip.WithZone("")
	if p.allowListed(ip) {
		return verdict{}
	}
	if ip.Is4() {
		return verdict{kind: kind4(ip)}
	}
	var inner netip.Addr
	var via string
	b := ip.As16()
	switch {
	case ip.Is4In6():
		inner, via = ip.Unmap(), "IPv4-mapped"
	case nat64.Contains(ip):
		inner, via = netip.AddrFrom4([4]byte(b[12:16])), "NAT64"
	case sixToFour.Contains(ip):
		inner, via = netip.AddrFrom4([4]byte(b[2:6])), "6to4"
	default:
		return verdict{kind: kind6(ip)}
	}
	if k := kind4(inner); k != "" {
		return verdict{kind: k, via: via, inner: inner}
	}
	return verdict{}
}

func (p Policy) allowListed(ip netip.Addr) bool {
	unmapped := ip.Unmap()
	for _, pfx := range p.Allow {
		pfx = unmapPrefix(pfx)
		if pfx.Contains(ip) || pfx.Contains(unmapped) {
			return true
		}
	}
	return false
}

func (p Policy) portAllowed(port int) bool {
	if port < 1 || port > 65535 {
		return false
	}
	return len(p.Ports) == 0 || slices.Contains(p.Ports, port)
}

// blockedRange is a blocked prefix and what an address in it is.
type blockedRange struct {
	prefix netip.Prefix
	kind   string
}

func ranges(kinds ...string) []blockedRange {
	out := make([]blockedRange, 0, len(kinds)/2)
	for i := 0; i < len(kinds); i += 2 {
		out = append(out, blockedRange{netip.MustParsePrefix(kinds[i]), kinds[i+1]})
	}
	return out
}

// blocked4 lists the blocked IPv4 ranges, the more specific of two
// overlapping ranges first.
var blocked4 = ranges(
	"0.0.0.0/8", "an unspecified address",
	"10.0.0.0/8", "a private address",
	"100.64.0.0/10", "a shared (CGNAT) address",
	"127.0.0.0/8", "a loopback address",
	"169.254.169.254/32", "a link-local (cloud metadata) address",
	"169.254.0.0/16", "a link-local address",
	"172.16.0.0/12", "a private address",
	"192.0.0.0/24", "a reserved address",
	"192.0.2.0/24", "a documentation address",
	"192.88.99.0/24", "a reserved address",
	"192.168.0.0/16", "a private address",
	"198.18.0.0/15", "a benchmarking address",
	"198.51.100.0/24", "a documentation address",
	"203.0.113.0/24", "a documentation address",
	"224.0.0.0/4", "a multicast address",
	"255.255.255.255/32", "a broadcast address",
	"240.0.0.0/4", "a reserved address",
)

// blocked6 lists the named blocked IPv6 ranges, the more specific of two
// overlapping ranges first. Anything else outside globalUnicast is blocked
// as reserved.
var blocked6 = ranges(
	"::/128", "an unspecified address",
	"::1/128", "a loopback address",
	"fc00::/7", "a private address",
	"fe80::/10", "a link-local address",
	"fec0::/10", "a site-local address",
	"ff00::/8", "a multicast address",
	"100::/64", "a discard-only address",
	"2001::/32", "a Teredo address",
	"2001::/23", "a reserved address",
	"2001:db8::/32", "a documentation address",
	"3fff::/20", "a documentation address",
)

var (
	globalUnicast = netip.MustParsePrefix("2000::/3")
	nat64         = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour     = netip.MustParsePrefix("2002::/16")
)

// kind4 says what a blocked IPv4 address is; "" if it is allowed.
func kind4(ip netip.Addr) string {
	for _, r := range blocked4 {
		if r.prefix.Contains(ip) {
			return r.kind
		}
	}
	return ""
}

// kind6 says what a blocked IPv6 address (not one embedding an IPv4
// address) is; "" if it is allowed.
func kind6(ip netip.Addr) string {
	for _, r := range blocked6 {
		if r.prefix.Contains(ip) {
			return r.kind
		}
	}
	if !globalUnicast.Contains(ip) {
		return "a reserved address"
	}
	return ""
}
