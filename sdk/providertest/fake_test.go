package providertest_test

import (
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/providertest"
)

// The kit runs against its own fake, so the suite itself is exercised.
func TestRunPaymentsOnFake(t *testing.T) {
	fake := &providertest.FakePayments{}
	bad := providertest.Tenant("acme", nil, map[string]string{"api_key": "bad"})
	providertest.RunPayments(t, fake, providertest.PaymentsConfig{
		Tenant:         providertest.Tenant("acme", map[string]string{"mode": "test"}, map[string]string{"api_key": "SENTINEL-key-1234"}),
		BadCredentials: &bad,
		ReturnURL:      "https://shop.example/return",
		Refunds:        true,
		Capture:        true,
		Cancel:         true,
		Stall: func(testing.TB) func() {
			fake.SetDelay(time.Hour)
			return func() { fake.SetDelay(0) }
		},
	})
}
