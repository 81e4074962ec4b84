package main

import (
	"testing"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/providertest"
)

// TestConformance runs the SDK's payments contract over the real gRPC path
// against the fake MercadoPago API. The fake pays every preference at once
// (autoPay), so Refund resolves the preference to its approved payment;
// Cancel on a preference is KindInvalid, which the contract accepts. The
// subscription check creates a pending preapproval, reads it and cancels
// it.
func TestConformance(t *testing.T) {
	f := newFakeMP(t)
	f.autoPay = true
	bad := providertest.Tenant("acme", f.settings(), map[string]string{fieldAccessToken: "TEST-rejected-token-0000000000000000"})
	providertest.RunPayments(t, newProvider(), providertest.PaymentsConfig{
		Tenant: providertest.Tenant("acme", f.settings(), map[string]string{
			fieldAccessToken:   fakeToken,
			fieldWebhookSecret: "mp-webhook-secret-conformance",
		}),
		BadCredentials: &bad,
		ReturnURL:      "https://shop.example/return",
		Refunds:        true,
		Cancel:         true,
		// A preapproval in CLP, which has no decimals: 9990 is sent as 9990.
		Subscription: &payments.Plan{Amount: provider.Money{Amount: 9990, Currency: "CLP"}, Interval: payments.IntervalMonth, IntervalCount: 1},
		Stall: func(testing.TB) func() {
			f.stallAll()
			return f.release
		},
	})
}
