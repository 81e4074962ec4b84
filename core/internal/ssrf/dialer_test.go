package ssrf_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pipecore/pipecore/core/internal/dispatch"
	"github.com/pipecore/pipecore/core/internal/ssrf"
)

var (
	// errCaller stands in for dispatch.ErrBlockedAddress.
	errCaller = errors.New("caller: blocked")
	// errNoNetwork is what the recording control hook returns, so that a
	// dial to an allowed public address stops before connect(2).
	errNoNetwork = errors.New("test: not connecting")
)

const publicIP = "93.184.215.14"

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// recorder is a control hook that records every socket address about to
// be connected and stops the connection there.
type recorder struct {
	mu     sync.Mutex
	dialed []string
}

func (r *recorder) control(_ context.Context, _, address string, _ syscall.RawConn) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dialed = append(r.dialed, address)
	return errNoNetwork
}

func (r *recorder) addresses() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.dialed)
}

// noNameDialer returns a base dialer that records instead of connecting,
// and whose own resolver fails the test if it is ever used: the guard
// must hand it IP addresses only.
func noNameDialer(t *testing.T, rec *recorder) *net.Dialer {
	t.Helper()
	return &net.Dialer{
		ControlContext: rec.control,
		Resolver: &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
			t.Error("the base dialer resolved a name")
			return nil, errors.New("no")
		}},
	}
}

func TestDialer(t *testing.T) {
	dns := newFakeDNS(t, map[string][][]netip.Addr{
		"public.test":   {addrs(publicIP)},
		"internal.test": {addrs("10.1.2.3")},
		"mixed.test":    {addrs(publicIP, "10.0.0.1")},
		"dual.test":     {addrs("2606:2800:21f:cb07:6820:80da:af6b:8b2c", "192.168.1.1")},
		"mapped.test":   {addrs("::ffff:127.0.0.1")},
		"metadata.test": {addrs("169.254.169.254")},
		"nat64.test":    {addrs("64:ff9b::7f00:1")},
		"empty.test":    {nil},
	})
	tests := map[string]struct {
		policy  ssrf.Policy
		network string // "" means tcp
		addr    string
		// wantBlocked: the error wraps ErrBlocked and errCaller, and
		// contains wantMsg; otherwise it must not wrap them.
		wantBlocked bool
		wantMsg     string
		wantNotMsg  string   // a detail the message must not give away
		wantDialed  []string // socket addresses handed to connect
		wantLookups int      // A queries for the name
		wantDNSErr  bool
	}{
		"public name": {
			addr: "public.test:443", wantDialed: []string{publicIP + ":443"}, wantLookups: 1,
		},
		"private name": {
			addr: "internal.test:443", wantBlocked: true, wantLookups: 1,
			wantMsg: "internal.test resolves to a private address", wantNotMsg: "10.1.2.3",
		},
		"public and private": {
			addr: "mixed.test:443", wantBlocked: true, wantLookups: 1,
			wantMsg: "mixed.test resolves to a private address",
		},
		"public IPv6 and private IPv4": {
			addr: "dual.test:443", wantBlocked: true, wantLookups: 1,
			wantMsg: "dual.test resolves to a private address",
		},
		"IPv4-mapped answer": {
			addr: "mapped.test:443", wantBlocked: true,
			wantMsg: "mapped.test resolves to a loopback address", wantNotMsg: "127.0.0.1",
		},
		"cloud metadata": {
			addr: "metadata.test:80", wantBlocked: true, wantLookups: 1,
			wantMsg: "metadata.test resolves to a link-local (cloud metadata) address",
		},
		"NAT64 of loopback": {
			addr: "nat64.test:443", wantBlocked: true,
			wantMsg: "nat64.test resolves to a loopback address",
		},
		"allow-listed private name": {
			policy: ssrf.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			addr:   "internal.test:443", wantDialed: []string{"10.1.2.3:443"}, wantLookups: 1,
		},
		"loopback literal": {
			addr: "127.0.0.1:80", wantBlocked: true, wantMsg: "127.0.0.1 is a loopback address",
		},
		"IPv6 loopback literal": {
			addr: "[::1]:443", wantBlocked: true, wantMsg: "::1 is a loopback address",
		},
		"hex literal": {
			addr: "0x7f000001:443", wantBlocked: true, wantMsg: "0x7f000001 (127.0.0.1) is a loopback address",
		},
		"decimal literal": {
			addr: "2130706433:443", wantBlocked: true, wantMsg: "2130706433 (127.0.0.1) is a loopback address",
		},
		"octal literal": {
			addr: "0177.0.0.1:443", wantBlocked: true, wantMsg: "0177.0.0.1 (127.0.0.1) is a loopback address",
		},
		"malformed numeric host": {
			addr: "1.2.3.999:443", wantBlocked: true, wantMsg: "malformed IP address",
		},
		"public literal": {
			addr: publicIP + ":8443", wantDialed: []string{publicIP + ":8443"},
		},
		"port not allowed": {
			policy: ssrf.Policy{Ports: []int{443}},
			addr:   "public.test:8443", wantBlocked: true, wantMsg: `port "8443" is not allowed`,
		},
		"port zero": {
			addr: "public.test:0", wantBlocked: true, wantMsg: "not allowed",
		},
		"udp": {
			network: "udp", addr: "public.test:53", wantBlocked: true, wantMsg: `network "udp" is not allowed`,
		},
		"malformed address": {
			addr: "public.test", wantBlocked: true, wantMsg: "malformed address",
		},
		"unknown name": {
			addr: "nowhere.test:443", wantDNSErr: true,
		},
		"name without addresses": {
			addr: "empty.test:443", wantDNSErr: true, wantLookups: 1,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rec := &recorder{}
			dial := tc.policy.Dialer(noNameDialer(t, rec), dns.resolver(), errCaller)
			host, _, _ := net.SplitHostPort(tc.addr)
			before := dns.lookups(host)
			network := tc.network
			if network == "" {
				network = "tcp"
			}
			conn, err := dial(context.Background(), network, tc.addr)
			if conn != nil {
				conn.Close()
				t.Fatal("dial connected; the recorder should have stopped it")
			}
			if err == nil {
				t.Fatal("dial returned neither a conn nor an error")
			}
			blocked := errors.Is(err, ssrf.ErrBlocked)
			if blocked != tc.wantBlocked || errors.Is(err, errCaller) != tc.wantBlocked {
				t.Fatalf("err = %v: wraps ErrBlocked %v, errCaller %v; want %v", err, blocked, errors.Is(err, errCaller), tc.wantBlocked)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("err = %q, want it to contain %q", err, tc.wantMsg)
			}
			if tc.wantNotMsg != "" && strings.Contains(err.Error(), tc.wantNotMsg) {
				t.Errorf("err = %q gives away %q", err, tc.wantNotMsg)
			}
			var dnsErr *net.DNSError
			if got := errors.As(err, &dnsErr) && dnsErr.IsNotFound; got != tc.wantDNSErr {
				t.Errorf("err = %v: a not-found DNS error %v, want %v", err, got, tc.wantDNSErr)
			}
			if tc.wantDialed != nil && !errors.Is(err, errNoNetwork) {
				t.Errorf("err = %v, want the recorder's", err)
			}
			if got := rec.addresses(); !slices.Equal(got, tc.wantDialed) {
				t.Errorf("dialed %q, want %q", got, tc.wantDialed)
			}
			if got := dns.lookups(host) - before; tc.wantLookups != 0 && got != tc.wantLookups {
				t.Errorf("%d lookups of %s, want %d", got, host, tc.wantLookups)
			}
		})
	}
}

// TestDialerRebinding: the name first resolves to a public address, then
// to loopback. Each dial resolves once and connects to the very address
// it checked, so the loopback answer is refused, never connected to.
func TestDialerRebinding(t *testing.T) {
	dns := newFakeDNS(t, map[string][][]netip.Addr{
		"rebind.test": {addrs(publicIP), addrs("127.0.0.1")},
	})
	var mu sync.Mutex
	var dialed []string
	base := &net.Dialer{
		// The legacy Control hook must be chained too.
		Control: func(_, address string, _ syscall.RawConn) error {
			mu.Lock()
			defer mu.Unlock()
			dialed = append(dialed, address)
			return errNoNetwork
		},
	}
	dial := ssrf.Policy{}.Dialer(base, dns.resolver(), errCaller)

	_, err := dial(context.Background(), "tcp", "rebind.test:443")
	if !errors.Is(err, errNoNetwork) {
		t.Fatalf("first dial: err = %v, want the control hook's", err)
	}
	if got := dns.lookups("rebind.test"); got != 1 {
		t.Fatalf("first dial: %d lookups, want 1", got)
	}
	if want := []string{publicIP + ":443"}; !slices.Equal(dialed, want) {
		t.Fatalf("first dial connected to %q, want %q", dialed, want)
	}

	_, err = dial(context.Background(), "tcp", "rebind.test:443")
	if !errors.Is(err, ssrf.ErrBlocked) || !errors.Is(err, errCaller) {
		t.Fatalf("second dial: err = %v, want a refusal", err)
	}
	if got := dns.lookups("rebind.test"); got != 2 {
		t.Fatalf("second dial: %d lookups in all, want 2", got)
	}
	if want := []string{publicIP + ":443"}; !slices.Equal(dialed, want) {
		t.Fatalf("after the second dial the sockets went to %q, want only %q", dialed, want)
	}
}

// countingServer is an httptest server that counts accepted connections.
func countingServer(t *testing.T, h http.HandlerFunc) (srv *httptest.Server, port string, conns *atomic.Int32) {
	t.Helper()
	conns = new(atomic.Int32)
	srv = httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return srv, port, conns
}

func client(dial func(context.Context, string, string) (net.Conn, error)) *http.Client {
	return &http.Client{
		Transport: &http.Transport{DialContext: dial, Proxy: nil, DisableKeepAlives: true},
		Timeout:   10 * time.Second,
	}
}

// TestDialerAllowed: with 127.0.0.1/32 allowed, a name resolving to
// 127.0.0.1 reaches a real server, registered through AllowHosts.
func TestDialerAllowed(t *testing.T) {
	var gotHost atomic.Value
	_, port, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		gotHost.Store(r.Host)
		io.WriteString(w, "hello")
	})
	dns := newFakeDNS(t, map[string][][]netip.Addr{"dev.test": {addrs("127.0.0.1")}})
	p, err := ssrf.ParsePolicy(true, []string{"127.0.0.1/32"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.AllowHosts = []string{"dev.test"}
	target := "http://dev.test:" + port + "/x"
	if err := p.CheckURL(target); err != nil {
		t.Fatalf("CheckURL(%q) = %v", target, err)
	}

	resp, err := client(p.Dialer(nil, dns.resolver(), errCaller)).Get(target)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "hello" {
		t.Errorf("got %d %q, want 200 \"hello\"", resp.StatusCode, body)
	}
	if got, want := gotHost.Load(), "dev.test:"+port; got != want {
		t.Errorf("server saw Host %v, want %q", got, want)
	}
	if got := dns.lookups("dev.test"); got != 1 {
		t.Errorf("%d lookups, want 1", got)
	}
	if got := conns.Load(); got != 1 {
		t.Errorf("%d connections, want 1", got)
	}
}

// TestDialerNoBytesReachInternal: with the zero Policy, a request to a
// name resolving to loopback fails and the listener there never sees a
// connection.
func TestDialerNoBytesReachInternal(t *testing.T) {
	_, port, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		t.Error("request reached the internal server")
	})
	dns := newFakeDNS(t, map[string][][]netip.Addr{"sneaky.test": {addrs("127.0.0.1")}})
	c := client(ssrf.Policy{}.Dialer(nil, dns.resolver(), errCaller))

	for _, target := range []string{"http://sneaky.test:" + port + "/", "http://127.0.0.1:" + port + "/", "http://0x7f000001:" + port + "/"} {
		resp, err := c.Get(target)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("GET %s succeeded", target)
		}
		if !errors.Is(err, ssrf.ErrBlocked) || !errors.Is(err, errCaller) {
			t.Errorf("GET %s: err = %v, want a refusal", target, err)
		}
	}
	if got := conns.Load(); got != 0 {
		t.Errorf("the internal server saw %d connections, want 0", got)
	}
}

// TestDispatchSender plugs the guard into dispatch.Sender, as core does.
func TestDispatchSender(t *testing.T) {
	_, port, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	dns := newFakeDNS(t, map[string][][]netip.Addr{"tenant.test": {addrs("127.0.0.1")}})
	secret, err := dispatch.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	target := dispatch.Target{URL: "http://tenant.test:" + port + "/hook", Secrets: []string{secret}}
	msg := dispatch.Message{ID: "msg_1", Body: []byte(`{}`)}

	tests := map[string]struct {
		allow     []string
		want      dispatch.Outcome
		wantErr   string
		wantConns int32
	}{
		"blocked":      {want: dispatch.Retry, wantErr: "address not allowed"},
		"allow-listed": {allow: []string{"127.0.0.1"}, want: dispatch.Delivered, wantConns: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := ssrf.ParsePolicy(true, tc.allow, nil)
			if err != nil {
				t.Fatal(err)
			}
			s := dispatch.NewSender(dispatch.SenderConfig{Dialer: p.Dialer(nil, dns.resolver(), dispatch.ErrBlockedAddress)})
			defer s.Close()
			before := conns.Load()
			res := s.Send(context.Background(), target, msg)
			if res.Outcome != tc.want || res.Error != tc.wantErr {
				t.Errorf("Send = %v %q, want %v %q", res.Outcome, res.Error, tc.want, tc.wantErr)
			}
			if got := conns.Load() - before; got != tc.wantConns {
				t.Errorf("%d connections, want %d", got, tc.wantConns)
			}
		})
	}
}
