package main

import (
	"testing"

	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/providertest"
)

// TestConformance runs the SDK's payments contract over the real gRPC path.
//
// Refunds stays false: the kit refunds the payment its "create" step made,
// which is still pending, and money that never arrived cannot be given
// back (TestLifecycle covers refunds). ReturnURL stays empty: this is not
// a redirect flow. There are no credentials to get wrong and no API to
// stall, so redirect, bad_credentials and deadline skip.
func TestConformance(t *testing.T) {
	providertest.RunPayments(t, newProvider(), providertest.PaymentsConfig{
		Tenant: providertest.Tenant("acme", map[string]string{
			fieldMethod: methodTransfer, fieldInstructionsURL: "https://shop.example/pay-by-transfer",
		}, nil),
		Amount:  provider.Money{Amount: 12990, Currency: "CLP"},
		Capture: true,
		Cancel:  true,
	})
}
