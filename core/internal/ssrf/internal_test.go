package ssrf

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseIPv4(t *testing.T) {
	tests := map[string]struct {
		in   string
		want string // "" means it must not parse
	}{
		"dotted":             {"1.2.3.4", "1.2.3.4"},
		"trailing dot":       {"1.2.3.4.", "1.2.3.4"},
		"one part":           {"2130706433", "127.0.0.1"},
		"one part max":       {"4294967295", "255.255.255.255"},
		"one part hex":       {"0x7f000001", "127.0.0.1"},
		"one part octal":     {"017700000001", "127.0.0.1"},
		"two parts":          {"127.1", "127.0.0.1"},
		"two parts, 24 bits": {"1.16777215", "1.255.255.255"},
		"three parts":        {"10.1.258", "10.1.1.2"},
		"octal part":         {"0177.0.0.1", "127.0.0.1"},
		"hex parts":          {"0x7f.0X0.0x00.0x1", "127.0.0.1"},
		"bare 0x":            {"0x", "0.0.0.0"},
		"zero":               {"0", "0.0.0.0"},
		"leading zeros":      {"00000000000000000000001.2.3.4", "1.2.3.4"},
		"empty":              {"", ""},
		"only a dot":         {".", ""},
		"empty part":         {"1..2", ""},
		"five parts":         {"1.2.3.4.5", ""},
		"octet too big":      {"1.2.3.256", ""},
		"first part too big": {"256.1", ""},
		"24 bits overflow":   {"1.16777216", ""},
		"32 bits overflow":   {"4294967296", ""},
		"huge":               {"99999999999999999999999999", ""},
		"bad octal":          {"08", ""},
		"bad hex":            {"0x1g", ""},
		"sign":               {"+1", ""},
		"letters":            {"a.b.c.d", ""},
		"two trailing dots":  {"1.2.3.4..", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := parseIPv4(tc.in)
			if tc.want == "" {
				if ok {
					t.Errorf("parseIPv4(%q) = %s, want failure", tc.in, got)
				}
				return
			}
			if !ok || got != netip.MustParseAddr(tc.want) {
				t.Errorf("parseIPv4(%q) = %s, %v; want %s", tc.in, got, ok, tc.want)
			}
		})
	}
}

func TestEndsInNumber(t *testing.T) {
	tests := map[string]bool{
		"1.2.3.4": true, "1.2.3.4.": true, "2130706433": true, "0x7f000001": true, "0X": true,
		"example.123": true, "a.0xff": true,
		"example.com": false, "0x7f000001.com": false, "1.2.3.4..": false, "": false, ".": false,
		"0xg": false, "12a": false, "a.": false,
	}
	for host, want := range tests {
		if got := endsInNumber(host); got != want {
			t.Errorf("endsInNumber(%q) = %v, want %v", host, got, want)
		}
	}
}

// TestCheckSocket exercises the control hook on its own: Dialer only
// dials addresses it checked, so through Dialer this line of defence
// never fires.
func TestCheckSocket(t *testing.T) {
	errCaller := errors.New("caller: blocked")
	tests := map[string]struct {
		policy  Policy
		address string
		wantMsg string // "" means allowed
	}{
		"public":             {address: "93.184.215.14:443"},
		"public IPv6":        {address: "[2606:4700:4700::1111]:443"},
		"loopback":           {address: "127.0.0.1:80", wantMsg: "socket address is a loopback address"},
		"IPv6 loopback":      {address: "[::1]:443", wantMsg: "socket address is a loopback address"},
		"mapped loopback":    {address: "[::ffff:127.0.0.1]:443", wantMsg: "socket address is a loopback address"},
		"link-local, zoned":  {address: "[fe80::1%eth0]:443", wantMsg: "socket address is a link-local address"},
		"allow-listed":       {policy: Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, address: "127.0.0.1:8080"},
		"port not allowed":   {policy: Policy{Ports: []int{443}}, address: "93.184.215.14:80", wantMsg: "port 80 is not allowed"},
		"port zero":          {address: "93.184.215.14:0", wantMsg: "port 0 is not allowed"},
		"not an ip and port": {address: "example.com:443", wantMsg: "unexpected socket address"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.policy.checkSocket(tc.address, errCaller)
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("checkSocket(%q) = %v, want nil", tc.address, err)
				}
				return
			}
			if !errors.Is(err, ErrBlocked) || !errors.Is(err, errCaller) {
				t.Fatalf("checkSocket(%q) = %v, want it to wrap ErrBlocked and the caller's error", tc.address, err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("checkSocket(%q) = %q, want it to contain %q", tc.address, err, tc.wantMsg)
			}
		})
	}
}

func TestAttemptContext(t *testing.T) {
	tests := map[string]struct {
		left      time.Duration // 0 means no deadline
		remaining int
		wantMin   time.Duration
		wantMax   time.Duration // 0 means no deadline expected
	}{
		"no deadline":         {remaining: 3},
		"last attempt":        {left: 10 * time.Second, remaining: 1, wantMin: 9 * time.Second, wantMax: 10 * time.Second},
		"equal share":         {left: 30 * time.Second, remaining: 3, wantMin: 9 * time.Second, wantMax: 10 * time.Second},
		"at least minAttempt": {left: 5 * time.Second, remaining: 5, wantMin: minAttempt - time.Second, wantMax: minAttempt},
		"all that is left":    {left: time.Second, remaining: 5, wantMin: 500 * time.Millisecond, wantMax: time.Second},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			if tc.left > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.left)
				defer cancel()
			}
			actx, cancel := attemptContext(ctx, tc.remaining)
			defer cancel()
			deadline, ok := actx.Deadline()
			if ok != (tc.wantMax > 0) {
				t.Fatalf("deadline set %v, want %v", ok, tc.wantMax > 0)
			}
			if !ok {
				return
			}
			if got := time.Until(deadline); got < tc.wantMin || got > tc.wantMax {
				t.Errorf("attempt gets %v, want %v to %v", got, tc.wantMin, tc.wantMax)
			}
		})
	}
}
