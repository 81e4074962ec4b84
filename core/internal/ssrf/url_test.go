package ssrf_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/pipecore/pipecore/core/internal/ssrf"
)

func TestCheckURL(t *testing.T) {
	dev := ssrf.Policy{AllowHTTP: true, Allow: prefixes("127.0.0.1/32")}
	devHosts := dev
	devHosts.AllowHosts = []string{"LocalHost", "hooks.internal."}
	only443 := ssrf.Policy{Ports: []int{443}}

	tests := map[string]struct {
		policy  ssrf.Policy
		url     string
		wantErr error  // nil, ssrf.ErrBlocked or ssrf.ErrInvalidURL
		wantMsg string // what the error text must contain
	}{
		// Refused addresses.
		"http loopback":            {url: "http://127.0.0.1/", wantErr: ssrf.ErrBlocked, wantMsg: "http is not allowed"},
		"http loopback, http on":   {policy: ssrf.Policy{AllowHTTP: true}, url: "http://127.0.0.1/", wantErr: ssrf.ErrBlocked, wantMsg: "127.0.0.1 is a loopback address"},
		"IPv6 loopback":            {url: "https://[::1]/", wantErr: ssrf.ErrBlocked, wantMsg: "::1 is a loopback address"},
		"cloud metadata":           {url: "https://169.254.169.254/latest/meta-data", wantErr: ssrf.ErrBlocked, wantMsg: "169.254.169.254 is a link-local (cloud metadata) address"},
		"private":                  {url: "https://10.0.0.5/", wantErr: ssrf.ErrBlocked, wantMsg: "10.0.0.5 is a private address"},
		"IPv4-mapped loopback":     {url: "https://[::ffff:127.0.0.1]/", wantErr: ssrf.ErrBlocked, wantMsg: "::ffff:127.0.0.1 is the IPv4-mapped form of 127.0.0.1, a loopback address"},
		"IPv4-mapped, hex words":   {url: "https://[::FFFF:7F00:1]/", wantErr: ssrf.ErrBlocked, wantMsg: "::FFFF:7F00:1 (::ffff:127.0.0.1) is the IPv4-mapped form of 127.0.0.1"},
		"hex":                      {url: "https://0x7f000001/", wantErr: ssrf.ErrBlocked, wantMsg: "0x7f000001 (127.0.0.1) is a loopback address"},
		"decimal":                  {url: "https://2130706433/", wantErr: ssrf.ErrBlocked, wantMsg: "2130706433 (127.0.0.1) is a loopback address"},
		"octal dotted":             {url: "https://0177.0.0.1/", wantErr: ssrf.ErrBlocked, wantMsg: "0177.0.0.1 (127.0.0.1) is a loopback address"},
		"octal whole":              {url: "http://017700000001/", policy: ssrf.Policy{AllowHTTP: true}, wantErr: ssrf.ErrBlocked, wantMsg: "(127.0.0.1) is a loopback address"},
		"short form":               {url: "https://127.1/", wantErr: ssrf.ErrBlocked, wantMsg: "127.1 (127.0.0.1) is a loopback address"},
		"mixed radix":              {url: "https://0x7f.0.0x0.01/", wantErr: ssrf.ErrBlocked, wantMsg: "(127.0.0.1) is a loopback address"},
		"upper-case hex prefix":    {url: "https://0X0A000001/", wantErr: ssrf.ErrBlocked, wantMsg: "(10.0.0.1) is a private address"},
		"trailing dot":             {url: "https://127.0.0.1./", wantErr: ssrf.ErrBlocked, wantMsg: "127.0.0.1. (127.0.0.1) is a loopback address"},
		"zero":                     {url: "https://0/", wantErr: ssrf.ErrBlocked, wantMsg: "0 (0.0.0.0) is an unspecified address"},
		"ULA":                      {url: "https://[fd00::1]/", wantErr: ssrf.ErrBlocked, wantMsg: "fd00::1 is a private address"},
		"CGNAT":                    {url: "https://100.64.0.1/", wantErr: ssrf.ErrBlocked, wantMsg: "100.64.0.1 is a shared (CGNAT) address"},
		"NAT64 of private":         {url: "https://[64:ff9b::a00:1]/", wantErr: ssrf.ErrBlocked, wantMsg: "64:ff9b::a00:1 is the NAT64 form of 10.0.0.1, a private address"},
		"6to4 of loopback":         {url: "https://[2002:7f00:1::]/", wantErr: ssrf.ErrBlocked, wantMsg: "2002:7f00:1:: is the 6to4 form of 127.0.0.1, a loopback address"},
		"Teredo":                   {url: "https://[2001::1]/", wantErr: ssrf.ErrBlocked, wantMsg: "2001::1 is a Teredo address"},
		"multicast":                {url: "https://224.0.0.1/", wantErr: ssrf.ErrBlocked, wantMsg: "224.0.0.1 is a multicast address"},
		"broadcast":                {url: "https://255.255.255.255/", wantErr: ssrf.ErrBlocked, wantMsg: "255.255.255.255 is a broadcast address"},
		"documentation":            {url: "https://192.0.2.1/", wantErr: ssrf.ErrBlocked, wantMsg: "192.0.2.1 is a documentation address"},
		"unlisted loopback in dev": {policy: dev, url: "http://127.0.0.2:8080/", wantErr: ssrf.ErrBlocked, wantMsg: "127.0.0.2 is a loopback address"},

		// Refused names.
		"localhost":           {url: "https://localhost/", wantErr: ssrf.ErrBlocked, wantMsg: "localhost is not a fully qualified host name"},
		"single label":        {url: "https://intranet/", wantErr: ssrf.ErrBlocked, wantMsg: "intranet is not a fully qualified host name"},
		"sub.localhost":       {url: "https://api.LOCALHOST./", wantErr: ssrf.ErrBlocked, wantMsg: "api.localhost is a local host name"},
		"GCP metadata":        {url: "https://metadata.google.internal/", wantErr: ssrf.ErrBlocked, wantMsg: "metadata.google.internal is a local host name"},
		"mDNS":                {url: "https://printer.local/", wantErr: ssrf.ErrBlocked, wantMsg: "is a local host name"},
		"home.arpa":           {url: "https://nas.home.arpa/", wantErr: ssrf.ErrBlocked, wantMsg: "is a local host name"},
		"localhost in dev":    {policy: dev, url: "http://localhost:8080/", wantErr: ssrf.ErrBlocked, wantMsg: "not a fully qualified host name"},
		"other internal name": {policy: devHosts, url: "https://db.internal/", wantErr: ssrf.ErrBlocked, wantMsg: "db.internal is a local host name"},

		// Refused URLs.
		"user info":           {url: "https://user:pw@example.com/", wantErr: ssrf.ErrBlocked, wantMsg: "user info"},
		"user info before IP": {url: "https://evil.com@127.0.0.1/", wantErr: ssrf.ErrBlocked, wantMsg: "user info"},
		"empty user info":     {url: "https://@example.com/", wantErr: ssrf.ErrBlocked, wantMsg: "user info"},
		"ftp":                 {url: "ftp://x/", wantErr: ssrf.ErrBlocked, wantMsg: `scheme "ftp" is not allowed`},
		"file":                {url: "file:///etc/passwd", wantErr: ssrf.ErrBlocked, wantMsg: `scheme "file" is not allowed`},
		"gopher":              {url: "gopher://example.com:70/_x", wantErr: ssrf.ErrBlocked, wantMsg: `scheme "gopher" is not allowed`},
		"http":                {url: "http://example.com/", wantErr: ssrf.ErrBlocked, wantMsg: "http is not allowed, use https"},
		"port not allowed":    {policy: only443, url: "https://example.com:8443/", wantErr: ssrf.ErrBlocked, wantMsg: "port 8443 is not allowed"},
		"default http port":   {policy: ssrf.Policy{AllowHTTP: true, Ports: []int{443}}, url: "http://example.com/", wantErr: ssrf.ErrBlocked, wantMsg: "port 80 is not allowed"},
		"port zero":           {url: "https://example.com:0/", wantErr: ssrf.ErrInvalidURL, wantMsg: "port out of range"},
		"port too high":       {url: "https://example.com:65536/", wantErr: ssrf.ErrInvalidURL, wantMsg: "port out of range"},
		"port not a number":   {url: "https://example.com:https/", wantErr: ssrf.ErrInvalidURL, wantMsg: "invalid port"},
		"empty":               {url: "", wantErr: ssrf.ErrInvalidURL, wantMsg: "missing scheme"},
		"no scheme":           {url: "example.com/hook", wantErr: ssrf.ErrInvalidURL, wantMsg: "missing scheme"},
		"opaque":              {url: "https:example.com", wantErr: ssrf.ErrInvalidURL, wantMsg: "missing host"},
		"no host":             {url: "https:///hook", wantErr: ssrf.ErrInvalidURL, wantMsg: "missing host"},
		"unparsable":          {url: "://example.com", wantErr: ssrf.ErrInvalidURL},
		"space in host":       {url: "https://exa mple.com/", wantErr: ssrf.ErrInvalidURL},
		"odd host character":  {url: "https://exa$mple.com/", wantErr: ssrf.ErrInvalidURL, wantMsg: "malformed host name"},
		"non-ASCII host":      {url: "https://b\u00fccher.example/", wantErr: ssrf.ErrInvalidURL},
		"fullwidth digits":    {url: "https://\uff11\uff12\uff17.0.0.1/", wantErr: ssrf.ErrInvalidURL},
		"empty label":         {url: "https://example..com/", wantErr: ssrf.ErrInvalidURL, wantMsg: "malformed host name"},
		"octet too big":       {url: "https://1.2.3.999/", wantErr: ssrf.ErrInvalidURL, wantMsg: "malformed IPv4 address"},
		"five parts":          {url: "https://1.2.3.4.5/", wantErr: ssrf.ErrInvalidURL, wantMsg: "malformed IPv4 address"},
		"bad octal":           {url: "https://08.0.0.1/", wantErr: ssrf.ErrInvalidURL, wantMsg: "malformed IPv4 address"},
		"number after a name": {url: "https://example.123/", wantErr: ssrf.ErrInvalidURL, wantMsg: "malformed IPv4 address"},
		"too big":             {url: "https://4294967296/", wantErr: ssrf.ErrInvalidURL, wantMsg: "malformed IPv4 address"},
		"zone":                {url: "https://[fe80::1%25eth0]/", wantErr: ssrf.ErrInvalidURL, wantMsg: "malformed IPv6 address"},
		"bracketed IPv4":      {url: "https://[127.0.0.1]/", wantErr: ssrf.ErrInvalidURL},

		// Accepted.
		"https name":           {url: "https://example.com/hook"},
		"upper case, FQDN":     {url: "HTTPS://Example.COM./hook?x=1#f"},
		"any port":             {url: "https://example.com:8443/hook"},
		"allowed port":         {policy: only443, url: "https://example.com:443/hook"},
		"allowed default port": {policy: only443, url: "https://example.com/hook"},
		"public IPv4":          {url: "https://" + publicIP + "/hook"},
		"public IPv6":          {url: "https://[2606:4700:4700::1111]/hook"},
		"public decimal":       {url: "https://134744072/"}, // 8.8.8.8
		"NAT64 of public":      {url: "https://[64:ff9b::808:808]/"},
		"name with digits":     {url: "https://123.example.com/"},
		"hex-looking label":    {url: "https://0x7f000001.example.com/"},
		"underscore label":     {url: "https://_hooks.example.com/"},
		"dev loopback":         {policy: dev, url: "http://127.0.0.1:8080/x"},
		"dev loopback, mapped": {policy: dev, url: "http://[::ffff:127.0.0.1]:8080/x"},
		"dev localhost":        {policy: devHosts, url: "http://localhost:8080/x"},
		"dev internal name":    {policy: devHosts, url: "https://HOOKS.internal/x"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.policy.CheckURL(tc.url)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("CheckURL(%q) = %v, want nil", tc.url, err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("CheckURL(%q) = %v, want %v", tc.url, err, tc.wantErr)
			}
			other := ssrf.ErrInvalidURL
			if tc.wantErr == ssrf.ErrInvalidURL {
				other = ssrf.ErrBlocked
			}
			if errors.Is(err, other) {
				t.Errorf("CheckURL(%q) = %v, also wraps %v", tc.url, err, other)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("CheckURL(%q) = %q, want it to contain %q", tc.url, err, tc.wantMsg)
			}
			if strings.Contains(err.Error(), "pw") || strings.Contains(err.Error(), "evil") {
				t.Errorf("CheckURL(%q) = %q gives away the user info", tc.url, err)
			}
		})
	}
}

// TestCheckURLAllowListed: an address in any spelling is matched against
// Allow by its value.
func TestCheckURLAllowListed(t *testing.T) {
	p := ssrf.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	if err := p.CheckURL("https://0x0a010203/"); err != nil {
		t.Errorf("allow-listed hex address: %v", err)
	}
	if err := p.CheckURL("https://192.168.0.1/"); !errors.Is(err, ssrf.ErrBlocked) {
		t.Errorf("unlisted private address: %v, want ErrBlocked", err)
	}
}
