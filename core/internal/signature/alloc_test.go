//go:build !race

package signature

import "testing"

// Measured with Go 1.26 on linux/amd64: almost all of these are inside
// crypto/hmac.New (the HMAC state and its two SHA-256 digests), plus the
// key conversion and the MAC buffer. A new toolchain may move them; if
// this fails, re-measure with
//
//	go test -run '^$' -bench 'BenchmarkVerify/(stripe|meta-sha256)$' ./internal/signature/
//
// and investigate any increase before raising the pin.
const (
	maxStripeAllocs = 8
	maxMetaAllocs   = 7
)

func TestVerifyAllocations(t *testing.T) {
	cases := benchCases(t)
	for name, max := range map[string]float64{"stripe": maxStripeAllocs, "meta-sha256": maxMetaAllocs} {
		c := cases[name]
		opt := c.f.options()
		var err error
		got := testing.AllocsPerRun(200, func() {
			err = Verify(c.f.scheme, c.req, c.secrets, opt)
		})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got > max {
			t.Errorf("%s: Verify allocates %.0f times per call, want at most %.0f", name, got, max)
		}
		t.Logf("%s: %.0f allocations per call", name, got)
	}
}
