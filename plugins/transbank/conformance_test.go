package main

import (
	"testing"

	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/providertest"
)

// TestConformance runs the SDK's payments contract over the real gRPC path
// against the fake Webpay Plus API.
//
// Refunds stays false: the kit refunds the payment its "create" step made,
// which is an uncommitted (INITIALIZED) transaction, and Webpay only
// reverses or nullifies committed ones, so the fake, like Transbank,
// answers 422. Refunds after a commit are covered by TestRefund and
// TestWireConfirmAndRefund.
func TestConformance(t *testing.T) {
	f := newFakeWebpay(t)
	// The explicit integration credentials let the kit check that the key
	// never reaches an error or a log line.
	good := providertest.Tenant("acme", map[string]string{
		provider.BaseURLField: f.URL,
		fieldReturnURL:        "https://gateway.example/return/transbank/acme",
		fieldCommerceCode:     integrationCommerceCode,
	}, map[string]string{fieldAPIKeySecret: integrationAPIKey})
	// A production tenant with a wrong secret: the fake answers 401.
	bad := providertest.Tenant("acme", map[string]string{
		provider.BaseURLField: f.URL,
		fieldReturnURL:        "https://gateway.example/return/transbank/acme",
		fieldEnvironment:      envProduction,
		fieldCommerceCode:     prodCommerce,
	}, map[string]string{fieldAPIKeySecret: "wrong-secret-5d1c0e7a9b"})
	providertest.RunPayments(t, newProvider(), providertest.PaymentsConfig{
		Tenant:         good,
		BadCredentials: &bad,
		Amount:         provider.Money{Amount: 12990, Currency: currency},
		ReturnURL:      "https://shop.example/return",
		Refunds:        false,
		Stall:          func(testing.TB) func() { return f.stall() },
	})
}
