package ssrf

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// minAttempt is the least time one address of several gets to connect,
// when the deadline leaves that much.
const minAttempt = 2 * time.Second

// lookupNetworks maps the networks Dialer serves to the lookup for them.
var lookupNetworks = map[string]string{"tcp": "ip", "tcp4": "ip4", "tcp6": "ip6"}

// Dialer returns a DialContext func for an http.Transport (or
// dispatch.SenderConfig.Dialer) that connects only to allowed addresses.
// It serves the networks tcp, tcp4 and tcp6 and refuses any other.
//
// For each call it checks the port, then reads the host as an IP literal
// (in any form CheckURL reads) or resolves it with resolver (nil means
// net.DefaultResolver). It refuses the call if any resolved address is
// blocked, even when others are allowed: an answer mixing public and
// internal addresses is treated as an attack, not a choice. Otherwise it
// dials the checked addresses, in the resolver's order, until one
// connects; it never hands the name to the net.Dialer, so a second lookup
// (DNS rebinding) cannot change where it connects. When there are several
// addresses each gets an equal share of the time left (at least
// minAttempt), as net.Dialer does.
//
// base is copied (nil means a zero net.Dialer). Its Timeout and Deadline
// bound the whole call, resolution included. Its ControlContext (or
// Control) still runs, after a control hook of Dialer's own that re-checks
// the socket address and port right before the kernel connects: a second
// line of defence should an unchecked address ever reach the socket.
// ControlContext is used rather than Control because it takes precedence.
//
// Refusals wrap ErrBlocked and blocked (pass dispatch.ErrBlockedAddress;
// nil wraps ErrBlocked only). For a resolved name they say what kind of
// address it resolved to, never the address. DNS failures are returned as
// the resolver's *net.DNSError. The returned func uses a copy of p and is
// safe for concurrent use. AllowHosts plays no part here: only addresses
// are checked.
func (p Policy) Dialer(base *net.Dialer, resolver *net.Resolver, blocked error) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	p.Allow = slices.Clone(p.Allow)
	p.AllowHosts = slices.Clone(p.AllowHosts)
	p.Ports = slices.Clone(p.Ports)

	g := &guard{p: p, resolver: resolver, blocked: blocked}
	if base != nil {
		g.d = *base
	}
	g.timeout, g.deadline = g.d.Timeout, g.d.Deadline
	g.d.Timeout, g.d.Deadline = 0, time.Time{}
	next, legacy := g.d.ControlContext, g.d.Control
	g.d.Control = nil
	g.d.ControlContext = func(ctx context.Context, network, address string, c syscall.RawConn) error {
		if err := p.checkSocket(address, blocked); err != nil {
			return err
		}
		if next != nil {
			return next(ctx, network, address, c)
		}
		if legacy != nil {
			return legacy(network, address, c)
		}
		return nil
	}
	return g.dial
}

// guard is one Dialer's state; it is not modified after Dialer returns.
type guard struct {
	p        Policy
	d        net.Dialer
	resolver *net.Resolver
	blocked  error
	timeout  time.Duration
	deadline time.Time
}

func (g *guard) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	lookupNet, ok := lookupNetworks[network]
	if !ok {
		return nil, refuse(g.blocked, "ssrf: network %q is not allowed", network)
	}
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, refuse(g.blocked, "ssrf: malformed address")
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || !g.p.portAllowed(int(port)) {
		return nil, refuse(g.blocked, "ssrf: port %q is not allowed", portText)
	}

	if g.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.timeout)
		defer cancel()
	}
	if !g.deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, g.deadline)
		defer cancel()
	}

	ips, err := g.resolve(ctx, lookupNet, host)
	if err != nil {
		return nil, err
	}
	var first error
	for i, ip := range ips {
		if err := ctx.Err(); err != nil {
			if first == nil {
				first = &net.OpError{Op: "dial", Net: network, Err: err}
			}
			break
		}
		attemptCtx, cancel := attemptContext(ctx, len(ips)-i)
		conn, err := g.d.DialContext(attemptCtx, network, netip.AddrPortFrom(ip, uint16(port)).String())
		cancel()
		if err == nil {
			return conn, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

// resolve returns the addresses to dial for host, every one of them
// allowed, or why there are none.
func (g *guard) resolve(ctx context.Context, lookupNet, host string) ([]netip.Addr, error) {
	if ip, numeric := hostIP(host); numeric {
		if !ip.IsValid() {
			return nil, refuse(g.blocked, "ssrf: malformed IP address %q", host)
		}
		if err := g.p.checkIP(host, ip, g.blocked); err != nil {
			return nil, err
		}
		return []netip.Addr{ip.Unmap()}, nil
	}
	ips, err := g.resolver.LookupNetIP(ctx, lookupNet, host)
	if err != nil {
		return nil, err
	}
	if len(ips) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	for i, ip := range ips {
		ip = ip.Unmap()
		if v := g.p.judge(ip); v.kind != "" {
			return nil, refuse(g.blocked, "ssrf: %s resolves to %s", host, v.kind)
		}
		ips[i] = ip
	}
	return ips, nil
}

// attemptContext bounds one of remaining connection attempts to an equal
// share of ctx's time left, but at least minAttempt (or all of it if less
// is left). The last attempt gets all that is left.
func attemptContext(ctx context.Context, remaining int) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok || remaining <= 1 {
		return ctx, func() {}
	}
	left := time.Until(deadline)
	share := max(left/time.Duration(remaining), min(left, minAttempt))
	return context.WithTimeout(ctx, share)
}

// checkSocket re-checks the "ip:port" a socket is about to connect to.
func (p Policy) checkSocket(address string, blocked error) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return refuse(blocked, "ssrf: unexpected socket address")
	}
	if !p.portAllowed(int(ap.Port())) {
		return refuse(blocked, "ssrf: port %d is not allowed", ap.Port())
	}
	if v := p.judge(ap.Addr()); v.kind != "" {
		return refuse(blocked, "ssrf: socket address is %s", v.kind)
	}
	return nil
}
