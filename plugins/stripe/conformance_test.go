package main

import (
	"testing"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/providertest"
)

// TestConformance runs the SDK's payments contract over the real gRPC path
// against stripe-mock, behind a proxy that adds Stripe's idempotent replay
// and remembers each Checkout Session's mode (stripe-mock is stateless),
// and can stall the API.
func TestConformance(t *testing.T) {
	up := mockUpstream(t)
	up.emulateIdempotency()
	settings := map[string]string{provider.BaseURLField: up.URL}
	// stripe-mock rejects this key with a 401 that quotes it.
	bad := providertest.Tenant("acme", settings, map[string]string{fieldSecretKey: sentinelKey})
	providertest.RunPayments(t, newProvider(), providertest.PaymentsConfig{
		Tenant: providertest.Tenant("acme", settings, map[string]string{
			fieldSecretKey:     "sk_test_conformance4eC39HqLyjWDarjtT1zdp7dc",
			fieldWebhookSecret: "whsec_conformance_1234",
		}),
		BadCredentials: &bad,
		ReturnURL:      "https://shop.example/return",
		Refunds:        true,
		Capture:        true,
		Cancel:         true,
		// The session stripe-mock creates stays open: the subscription is
		// pending with Stripe's hosted page, and cancelling expires it.
		Subscription: &payments.Plan{Amount: provider.Money{Amount: 1500, Currency: "USD"}, Interval: payments.IntervalMonth, IntervalCount: 1},
		Stall: func(testing.TB) func() {
			up.answer(stall)
			return func() { up.answer(nil) }
		},
	})
}
