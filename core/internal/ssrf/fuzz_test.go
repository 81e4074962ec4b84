package ssrf_test

import (
	"errors"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/pipecore/pipecore/core/internal/ssrf"
)

// FuzzCheckURL: CheckURL never panics, every error it returns is
// classified, and every URL the zero Policy accepts is https, without user
// info, and has a host that is no IP address in a blocked range, however
// it is spelled. The oracle below judges addresses by netip's own
// predicates and its own parsing, not the package's.
func FuzzCheckURL(f *testing.F) {
	for _, seed := range []string{
		"https://example.com/hook", "http://127.0.0.1/", "https://[::1]/",
		"https://169.254.169.254/latest/meta-data", "https://10.0.0.5/",
		"https://[::ffff:127.0.0.1]/", "https://0x7f000001/", "https://2130706433/",
		"https://0177.0.0.1/", "https://017700000001/", "https://127.1/", "https://127.0.0.1./",
		"https://0x7f.1/", "https://0x/", "https://0/", "https://1.2.3.4.5/", "https://08/",
		"https://user:pw@example.com/", "https://evil.com@127.0.0.1/", "ftp://x/",
		"https://example.com:0/", "https://[64:ff9b::7f00:1]/", "https://[2002:a00:1::]/",
		"https://[fe80::1%25eth0]/", "https://%31%32%37.0.0.1/", "https://134744072/",
		"https://[::127.0.0.1]/", "https://[2001::1]/", "https://metadata.google.internal/",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		err := ssrf.Policy{}.CheckURL(raw)
		if err != nil {
			if !errors.Is(err, ssrf.ErrBlocked) && !errors.Is(err, ssrf.ErrInvalidURL) {
				t.Fatalf("CheckURL(%q) = %v: neither ErrBlocked nor ErrInvalidURL", raw, err)
			}
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("CheckURL accepted %q, which does not parse: %v", raw, err)
		}
		if u.Scheme != "https" || u.User != nil || u.Hostname() == "" {
			t.Fatalf("CheckURL accepted %q: scheme %q, user info %v, host %q", raw, u.Scheme, u.User != nil, u.Hostname())
		}
		host := u.Hostname()
		if ip, err := netip.ParseAddr(host); err == nil {
			if oracleBlocked(ip) {
				t.Fatalf("CheckURL accepted %q: %s is blocked", raw, ip)
			}
			return
		}
		if ip, numeric := oracleIPv4(host); numeric {
			if !ip.IsValid() {
				t.Fatalf("CheckURL accepted %q: host %q is a malformed number", raw, host)
			}
			if oracleBlocked(ip) {
				t.Fatalf("CheckURL accepted %q: host %q is %s, which is blocked", raw, host, ip)
			}
		}
	})
}

// oracleIPv4 reads host as inet_aton would, with strconv: numeric says
// whether its last label is a number; ip is invalid if it does not parse.
func oracleIPv4(host string) (ip netip.Addr, numeric bool) {
	parts := strings.Split(strings.TrimSuffix(host, "."), ".")
	last := strings.ToLower(parts[len(parts)-1])
	decimal := last != "" && strings.Trim(last, "0123456789") == ""
	hex := strings.HasPrefix(last, "0x") && strings.Trim(last[2:], "0123456789abcdef") == ""
	if !decimal && !hex {
		return netip.Addr{}, false
	}
	if len(parts) > 4 {
		return netip.Addr{}, true
	}
	var vals []uint64
	for _, p := range parts {
		lp := strings.ToLower(p)
		var v uint64
		var err error
		switch {
		case strings.HasPrefix(lp, "0x"):
			if lp != "0x" {
				v, err = strconv.ParseUint(lp[2:], 16, 32)
			}
		case len(lp) > 1 && lp[0] == '0':
			v, err = strconv.ParseUint(lp[1:], 8, 32)
		default:
			v, err = strconv.ParseUint(lp, 10, 32)
		}
		if err != nil || strings.ContainsAny(lp, "+-_") {
			return netip.Addr{}, true
		}
		vals = append(vals, v)
	}
	var sum uint64
	for i, v := range vals {
		if i < len(vals)-1 {
			if v > 255 {
				return netip.Addr{}, true
			}
			sum = sum*256 + v
			continue
		}
		width := uint(8 * (5 - len(vals)))
		if v >= 1<<width {
			return netip.Addr{}, true
		}
		sum = sum<<width | v
	}
	return netip.AddrFrom4([4]byte{byte(sum >> 24), byte(sum >> 16), byte(sum >> 8), byte(sum)}), true
}

var oracleRanges4 = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"), netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("240.0.0.0/4"),
}

// oracleBlocked reports whether ip must never be accepted by the zero
// Policy.
func oracleBlocked(ip netip.Addr) bool {
	ip = ip.WithZone("")
	if ip.Is4In6() {
		return oracleBlocked(ip.Unmap())
	}
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsMulticast() ||
		ip.IsUnspecified() || !ip.IsGlobalUnicast() {
		return true
	}
	if ip.Is4() {
		for _, r := range oracleRanges4 {
			if r.Contains(ip) {
				return true
			}
		}
		return false
	}
	b := ip.As16()
	switch {
	case netip.MustParsePrefix("64:ff9b::/96").Contains(ip):
		return oracleBlocked(netip.AddrFrom4([4]byte(b[12:])))
	case b[0] == 0x20 && b[1] == 0x02:
		return oracleBlocked(netip.AddrFrom4([4]byte(b[2:6])))
	case b[0]&0xe0 != 0x20: // outside 2000::/3
		return true
	case b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8: // documentation
		return true
	case b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x00 && b[3] == 0x00: // Teredo
		return true
	}
	return false
}
