package ssrf_test

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// DNS wire constants (RFC 1035, RFC 3596).
const (
	typeA    = 1
	typeAAAA = 28
	classIN  = 1
)

// fakeDNS is a tiny DNS server on 127.0.0.1 UDP. A *net.Resolver from
// resolver() sends it every query, so the resolver tests run offline
// through Go's own DNS client. It answers A and AAAA queries from a table
// and counts them.
type fakeDNS struct {
	conn net.PacketConn

	mu sync.Mutex
	// zone maps a lower-case name (no trailing dot) to its answers: the
	// n-th A query gets the IPv4 addresses of zone[name][n], the n-th AAAA
	// query the IPv6 ones, the last entry repeating. Other names are
	// NXDOMAIN.
	zone    map[string][][]netip.Addr
	queries map[query]int
}

type query struct {
	name  string
	qtype uint16
}

func newFakeDNS(tb testing.TB, zone map[string][][]netip.Addr) *fakeDNS {
	tb.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	s := &fakeDNS{conn: conn, zone: zone, queries: map[query]int{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serve(tb)
	}()
	tb.Cleanup(func() {
		conn.Close()
		<-done
	})
	return s
}

// resolver returns a pure-Go resolver whose every DNS exchange goes to s.
// It still reads /etc/hosts first, so tests use names under .test.
func (s *fakeDNS) resolver() *net.Resolver {
	addr := s.conn.LocalAddr().String()
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", addr)
		},
	}
}

// lookups is how many A queries s answered for name: one per lookup of it
// over "ip" or "ip4".
func (s *fakeDNS) lookups(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[query{name, typeA}]
}

func (s *fakeDNS) serve(tb testing.TB) {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				tb.Errorf("fake dns: read: %v", err)
			}
			return
		}
		resp, err := s.answer(buf[:n])
		if err != nil {
			tb.Errorf("fake dns: %v", err)
			continue
		}
		if _, err := s.conn.WriteTo(resp, from); err != nil {
			tb.Errorf("fake dns: write: %v", err)
		}
	}
}

// answer builds the response to one query message: the header, the
// question echoed, and one answer record per address.
func (s *fakeDNS) answer(msg []byte) ([]byte, error) {
	if len(msg) < 12 || binary.BigEndian.Uint16(msg[4:6]) != 1 {
		return nil, errors.New("want a query with one question")
	}
	var labels []string
	off := 12
	for {
		if off >= len(msg) {
			return nil, errors.New("truncated question")
		}
		l := int(msg[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 || off+l > len(msg) {
			return nil, errors.New("bad label")
		}
		labels = append(labels, string(msg[off:off+l]))
		off += l
	}
	if off+4 > len(msg) {
		return nil, errors.New("truncated question")
	}
	q := query{strings.ToLower(strings.Join(labels, ".")), binary.BigEndian.Uint16(msg[off:])}
	question := msg[12 : off+4]

	s.mu.Lock()
	n := s.queries[q]
	s.queries[q]++
	sets, known := s.zone[q.name]
	s.mu.Unlock()

	var addrs []netip.Addr
	if known && binary.BigEndian.Uint16(msg[off+2:]) == classIN {
		for _, a := range sets[min(n, len(sets)-1)] {
			if (q.qtype == typeA && a.Is4()) || (q.qtype == typeAAAA && a.Is6()) {
				addrs = append(addrs, a)
			}
		}
	}

	resp := make([]byte, 12, 512)
	copy(resp, msg[:2])                                      // id
	binary.BigEndian.PutUint16(resp[2:], 0x8180)             // response, recursion desired and available
	binary.BigEndian.PutUint16(resp[4:], 1)                  // questions
	binary.BigEndian.PutUint16(resp[6:], uint16(len(addrs))) // answers
	if !known {
		resp[3] |= 3 // NXDOMAIN
	}
	resp = append(resp, question...)
	for _, a := range addrs {
		rdata := a.AsSlice()
		rtype := uint16(typeA)
		if a.Is6() {
			rtype = typeAAAA
		}
		resp = append(resp, 0xc0, 12) // the name: a pointer to the question's
		resp = binary.BigEndian.AppendUint16(resp, rtype)
		resp = binary.BigEndian.AppendUint16(resp, classIN)
		resp = binary.BigEndian.AppendUint32(resp, 0) // TTL
		resp = binary.BigEndian.AppendUint16(resp, uint16(len(rdata)))
		resp = append(resp, rdata...)
	}
	return resp, nil
}
