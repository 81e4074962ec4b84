package ssrf_test

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/pipecore/pipecore/core/internal/ssrf"
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func TestAllowed(t *testing.T) {
	blocked := []string{
		// IPv4, with the edges of each range.
		"0.0.0.0", "0.255.255.255",
		"10.0.0.0", "10.255.255.255",
		"100.64.0.0", "100.127.255.255",
		"127.0.0.1", "127.255.255.254",
		"169.254.0.1", "169.254.169.254",
		"172.16.0.0", "172.31.255.255",
		"192.0.0.1", "192.0.0.255",
		"192.0.2.1", "192.88.99.1",
		"192.168.0.1", "192.168.255.255",
		"198.18.0.0", "198.19.255.255",
		"198.51.100.7", "203.0.113.9",
		"224.0.0.1", "239.255.255.255",
		"240.0.0.1", "255.255.255.255",
		// IPv6.
		"::", "::1", "fe80::1", "fe80::1%eth0", "febf::1", "fec0::1",
		"fc00::1", "fd00::1", "fdff:ffff::1", "ff02::1", "ff0e::1",
		"2001:db8::1", "3fff::1", "100::1", "2001::1", "2001:1ff::1",
		"4000::1", "::127.0.0.1", "64:ff9b:1::a00:1", "5f00::1",
		// IPv6 forms embedding a blocked IPv4 address.
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
		"64:ff9b::7f00:1", "64:ff9b::a00:1", "2002:7f00:1::", "2002:c0a8:101::1",
	}
	allowed := []string{
		"1.1.1.1", "8.8.8.8", publicIP,
		"9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0",
		"172.15.255.255", "172.32.0.0", "169.253.255.255", "169.255.0.0",
		"192.0.1.1", "192.0.3.1", "192.167.255.255", "192.169.0.0",
		"198.17.255.255", "198.20.0.0", "223.255.255.255",
		"2606:4700:4700::1111", "2a00:1450:4001::1", "2001:200::1", "3fff:1000::1",
		"::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1",
	}
	for _, s := range blocked {
		if ip := netip.MustParseAddr(s); (ssrf.Policy{}).Allowed(ip) {
			t.Errorf("Allowed(%s) = true, want false", s)
		}
	}
	for _, s := range allowed {
		if ip := netip.MustParseAddr(s); !(ssrf.Policy{}).Allowed(ip) {
			t.Errorf("Allowed(%s) = false, want true", s)
		}
	}
	if (ssrf.Policy{}).Allowed(netip.Addr{}) {
		t.Error("the invalid Addr is allowed")
	}
}

func TestAllowedAllowList(t *testing.T) {
	tests := map[string]struct {
		allow []netip.Prefix
		ip    string
		want  bool
	}{
		"listed loopback":             {prefixes("127.0.0.1/32"), "127.0.0.1", true},
		"listed loopback, mapped":     {prefixes("127.0.0.1/32"), "::ffff:127.0.0.1", true},
		"unlisted loopback":           {prefixes("127.0.0.1/32"), "127.0.0.2", false},
		"IPv6 loopback not listed":    {prefixes("127.0.0.1/32"), "::1", false},
		"NAT64 of a listed address":   {prefixes("127.0.0.1/32"), "64:ff9b::7f00:1", false},
		"6to4 of a listed address":    {prefixes("127.0.0.0/8"), "2002:7f00:1::", false},
		"mapped prefix":               {prefixes("::ffff:10.0.0.0/104"), "10.9.8.7", true},
		"mapped prefix, other range":  {prefixes("::ffff:10.0.0.0/104"), "192.168.0.1", false},
		"ULA prefix":                  {prefixes("fd00::/8"), "fd12::1", true},
		"link-local prefix, zoned":    {prefixes("fe80::/10"), "fe80::1%eth0", true},
		"private prefix":              {prefixes("10.0.0.0/8"), "10.1.2.3", true},
		"private prefix, other range": {prefixes("10.0.0.0/8"), "192.168.0.1", false},
		"invalid prefix matches none": {[]netip.Prefix{{}}, "10.0.0.1", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := ssrf.Policy{Allow: tc.allow}
			if got := p.Allowed(netip.MustParseAddr(tc.ip)); got != tc.want {
				t.Errorf("Allowed(%s) = %v, want %v", tc.ip, got, tc.want)
			}
		})
	}
}

func TestParsePolicy(t *testing.T) {
	tests := map[string]struct {
		allowHTTP bool
		allow     []string
		ports     []int
		want      ssrf.Policy
		wantErr   bool
	}{
		"zero": {want: ssrf.Policy{}},
		"addresses and prefixes": {
			allowHTTP: true,
			allow:     []string{"127.0.0.1", " ::1 ", "10.0.0.0/8", "fd00::/8"},
			ports:     []int{443, 8443},
			want: ssrf.Policy{
				AllowHTTP: true,
				Allow:     prefixes("127.0.0.1/32", "::1/128", "10.0.0.0/8", "fd00::/8"),
				Ports:     []int{443, 8443},
			},
		},
		"mapped forms": {
			allow: []string{"::ffff:127.0.0.1", "::ffff:10.0.0.0/104"},
			want:  ssrf.Policy{Allow: prefixes("127.0.0.1/32", "10.0.0.0/8")},
		},
		"host bits set":  {allow: []string{"10.0.0.1/8"}, wantErr: true},
		"not an address": {allow: []string{"localhost"}, wantErr: true},
		"empty entry":    {allow: []string{""}, wantErr: true},
		"zone":           {allow: []string{"fe80::1%eth0"}, wantErr: true},
		"hex address":    {allow: []string{"0x7f000001"}, wantErr: true},
		"bad prefix":     {allow: []string{"10.0.0.0/33"}, wantErr: true},
		"port zero":      {ports: []int{0}, wantErr: true},
		"port too high":  {ports: []int{65536}, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ssrf.ParsePolicy(tc.allowHTTP, tc.allow, tc.ports)
			if tc.wantErr {
				if !errors.Is(err, ssrf.ErrInvalidPolicy) {
					t.Fatalf("err = %v, want ErrInvalidPolicy", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if got.AllowHTTP != tc.want.AllowHTTP || !slices.Equal(got.Allow, tc.want.Allow) ||
				!slices.Equal(got.Ports, tc.want.Ports) || got.AllowHosts != nil {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := map[string]struct {
		policy  ssrf.Policy
		wantErr bool
	}{
		"zero":                 {policy: ssrf.Policy{}},
		"dev":                  {policy: ssrf.Policy{AllowHTTP: true, Allow: prefixes("127.0.0.1/32", "::1/128"), AllowHosts: []string{"localhost", "Hooks.Internal."}, Ports: []int{8080}}},
		"invalid prefix":       {policy: ssrf.Policy{Allow: []netip.Prefix{{}}}, wantErr: true},
		"bad port":             {policy: ssrf.Policy{Ports: []int{-1}}, wantErr: true},
		"IP in AllowHosts":     {policy: ssrf.Policy{AllowHosts: []string{"127.0.0.1"}}, wantErr: true},
		"hex IP in AllowHosts": {policy: ssrf.Policy{AllowHosts: []string{"0x7f000001"}}, wantErr: true},
		"IPv6 in AllowHosts":   {policy: ssrf.Policy{AllowHosts: []string{"::1"}}, wantErr: true},
		"bad host name":        {policy: ssrf.Policy{AllowHosts: []string{"bad host"}}, wantErr: true},
		"empty host name":      {policy: ssrf.Policy{AllowHosts: []string{""}}, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.policy.Validate()
			if tc.wantErr != errors.Is(err, ssrf.ErrInvalidPolicy) || (!tc.wantErr && err != nil) {
				t.Errorf("Validate() = %v, want error %v", err, tc.wantErr)
			}
		})
	}
}
