package ssrf

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// CheckURL validates an endpoint URL when it is registered: the scheme is
// https (or http with AllowHTTP), there is no user info, the host is
// present, the port is allowed (443 or 80 when none is given), an IP host
// is allowed, and a named host is not one that only resolves privately.
//
// Any host whose last label is a number ("2130706433", "0x7f000001",
// "0177.0.0.1", "127.1", "1.2.3.4.") is an IPv4 address read the way
// inet_aton and browsers read it: one to four dot-separated parts, each
// decimal, octal (leading 0) or hex (0x); a host that looks numeric but
// does not parse is refused. IPv6 hosts must be bracketed and carry no
// zone.
//
// A named host must be ASCII (register an internationalized name in its
// xn-- form). Unless it is in AllowHosts, it must have at least two labels
// and must not be or end in a special-use name that resolves only locally:
// localhost, localdomain, local, internal, lan, home, corp, arpa (which
// covers home.arpa), test or invalid. Names are not resolved here, as DNS
// may change; Dialer checks what they resolve to on every connection.
//
// The error wraps ErrBlocked when the policy refuses the URL and
// ErrInvalidURL when it is malformed. It never holds the URL's user info.
func (p Policy) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // ue.Err, not ue: its text holds the whole URL
			return fmt.Errorf("%w: %v", ErrInvalidURL, ue.Err)
		}
		return ErrInvalidURL
	}
	port := 443
	switch u.Scheme {
	case "https":
	case "http":
		if !p.AllowHTTP {
			return refuse(nil, "ssrf: http is not allowed, use https")
		}
		port = 80
	case "":
		return fmt.Errorf("%w: missing scheme", ErrInvalidURL)
	default:
		return refuse(nil, "ssrf: scheme %q is not allowed", u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" {
		return fmt.Errorf("%w: missing host", ErrInvalidURL)
	}
	if u.User != nil {
		return refuse(nil, "ssrf: user info in the url is not allowed")
	}
	if s := u.Port(); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%w: port out of range", ErrInvalidURL)
		}
		port = n
	}
	if !p.portAllowed(port) {
		return refuse(nil, "ssrf: port %d is not allowed", port)
	}

	host := u.Hostname()
	if strings.HasPrefix(u.Host, "[") {
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return fmt.Errorf("%w: malformed IPv6 address %q", ErrInvalidURL, host)
		}
		return p.checkIP(host, ip, nil)
	}
	if ip, numeric := hostIP(host); numeric {
		if !ip.Is4() {
			return fmt.Errorf("%w: malformed IPv4 address %q", ErrInvalidURL, host)
		}
		return p.checkIP(host, ip, nil)
	}
	return p.checkName(host)
}

// checkIP refuses ip, which the caller wrote as text, unless it is allowed.
func (p Policy) checkIP(text string, ip netip.Addr, caller error) error {
	v := p.judge(ip)
	if v.kind == "" {
		return nil
	}
	subject := ip.String()
	if text != subject {
		subject = text + " (" + subject + ")"
	}
	if v.via != "" {
		return refuse(caller, "ssrf: %s is the %s form of %s, %s", subject, v.via, v.inner, v.kind)
	}
	return refuse(caller, "ssrf: %s is %s", subject, v.kind)
}

// localNames are special-use top-level names that never resolve on the
// public internet, only through a local or internal resolver: RFC 6761
// (localhost, test, invalid), RFC 6762 (local), RFC 8375 (home.arpa; arpa
// only holds infrastructure), ICANN's private-use internal, and names
// ICANN will not delegate or that are conventionally private (localdomain,
// lan, home, corp).
var localNames = []string{"localhost", "localdomain", "local", "internal", "lan", "home", "corp", "arpa", "test", "invalid"}

// checkName refuses a host name that is malformed or, unless in
// AllowHosts, one that can only resolve to a local or internal host.
func (p Policy) checkName(host string) error {
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if !validHostname(name) {
		return fmt.Errorf("%w: malformed host name %q (use the xn-- form of an international name)", ErrInvalidURL, host)
	}
	for _, h := range p.AllowHosts {
		if strings.EqualFold(strings.TrimSuffix(h, "."), name) {
			return nil
		}
	}
	tld := name[strings.LastIndexByte(name, '.')+1:]
	if tld == name {
		return refuse(nil, "ssrf: %s is not a fully qualified host name", name)
	}
	for _, local := range localNames {
		if tld == local {
			return refuse(nil, "ssrf: %s is a local host name", name)
		}
	}
	return nil
}

// validHostname reports whether name (lower case, no trailing dot) is an
// ASCII DNS name: at most 253 bytes of 1-63 byte labels made of letters,
// digits, '-' and '_'.
func validHostname(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	label := 0
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
			continue
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
		if label++; label > 63 {
			return false
		}
	}
	return label > 0
}

// hostIP reads host the way resolvers and browsers do before any DNS: as
// an IP literal, or, when its last label is a number (all digits, or 0x
// and hex digits), as an IPv4 address in any form inet_aton accepts.
// numeric reports whether host is meant as an address at all; if it is
// but does not parse, ip is the invalid Addr and host must be refused.
func hostIP(host string) (ip netip.Addr, numeric bool) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip, true
	}
	if !endsInNumber(host) {
		return netip.Addr{}, false
	}
	ip, _ = parseIPv4(host)
	return ip, true
}

// endsInNumber reports whether the last label of host, ignoring one
// trailing dot, is a number: all decimal digits, or 0x followed by hex
// digits (the WHATWG URL standard's test for an IPv4 host).
func endsInNumber(host string) bool {
	host = strings.TrimSuffix(host, ".")
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if strings.HasPrefix(last, "0x") || strings.HasPrefix(last, "0X") {
		last = last[2:]
		for i := 0; i < len(last); i++ {
			if digit(last[i]) >= 16 {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			return false
		}
	}
	return true
}

// parseIPv4 parses the IPv4 forms inet_aton accepts: "a.b.c.d", "a.b.c"
// (c fills 16 bits), "a.b" (b fills 24 bits) and "a" (32 bits), each part
// decimal, octal with a leading 0, or hex with 0x; one trailing dot is
// ignored.
func parseIPv4(s string) (netip.Addr, bool) {
	s = strings.TrimSuffix(s, ".")
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var v uint64
	for i, part := range parts {
		n, ok := parseIPv4Part(part)
		if !ok {
			return netip.Addr{}, false
		}
		if i < len(parts)-1 {
			if n > 0xff {
				return netip.Addr{}, false
			}
			v |= n << (8 * (3 - i))
			continue
		}
		if n >= 1<<(8*(5-len(parts))) {
			return netip.Addr{}, false
		}
		v |= n
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// parseIPv4Part parses one part of an inet_aton address; it fails on an
// empty part, a bad digit or a value above 2^32-1.
func parseIPv4Part(s string) (uint64, bool) {
	base := uint64(10)
	switch {
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X"):
		base, s = 16, s[2:] // "0x" alone is 0, as browsers read it
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	case s == "":
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		d := digit(s[i])
		if d >= base {
			return 0, false
		}
		if n = n*base + d; n > 0xffffffff {
			return 0, false
		}
	}
	return n, true
}

// digit is the value of hex digit c, or 255 if c is not one.
func digit(c byte) uint64 {
	switch {
	case c >= '0' && c <= '9':
		return uint64(c - '0')
	case c >= 'a' && c <= 'f':
		return uint64(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return uint64(c-'A') + 10
	}
	return 255
}

// refusal is a refused target. It wraps ErrBlocked and, from a Dialer, the
// caller's sentinel.
type refusal struct {
	msg    string
	caller error
}

func refuse(caller error, format string, args ...any) error {
	return &refusal{msg: fmt.Sprintf(format, args...), caller: caller}
}

func (e *refusal) Error() string { return e.msg }

func (e *refusal) Unwrap() []error {
	if e.caller == nil {
		return []error{ErrBlocked}
	}
	return []error{ErrBlocked, e.caller}
}
