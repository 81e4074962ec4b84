package main

import (
	"testing"

	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/providertest"
)

// TestConformance runs the SDK's payments contract over the real gRPC path
// against stripe-mock, behind a proxy that adds Stripe's idempotent replay
// (stripe-mock is stateless) and can stall the API.
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
		Stall: func(testing.TB) func() {
			up.answer(stall)
			return func() { up.answer(nil) }
		},
	})
}
