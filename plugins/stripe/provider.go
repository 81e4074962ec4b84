package main

import (
	"time"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

// The per-tenant settings and credentials the plugin reads.
const (
	fieldSecretKey     = "secret_key"
	fieldWebhookSecret = "webhook_secret"
	fieldAccount       = "account"
)

// stripeProvider implements the payments capability on Stripe. It holds no
// tenant state: every call builds a client from the request's Tenant, so one
// value serves every tenant and is safe for concurrent use.
type stripeProvider struct{}

var (
	_ payments.Provider = (*stripeProvider)(nil)
	_ payments.Capturer = (*stripeProvider)(nil)
	_ payments.Canceler = (*stripeProvider)(nil)
)

func newProvider() *stripeProvider { return &stripeProvider{} }

// Info describes the plugin. It is constant apart from the build's version.
func (*stripeProvider) Info() provider.Info {
	return provider.Info{
		Name:    "stripe",
		Version: version,
		Fields: []provider.Field{
			{Name: fieldSecretKey, Secret: true, Required: true, Doc: "Stripe secret key sk_test_… or sk_live_…"},
			{Name: fieldWebhookSecret, Secret: true, Doc: "signing secret whsec_… of the webhook endpoint"},
			{Name: provider.BaseURLField, Doc: "API base URL; default https://api.stripe.com; http://127.0.0.1:12111 for stripe-mock"},
			{Name: fieldAccount, Doc: "Connect account id acct_… sent as Stripe-Account; empty acts on the key's own account"},
		},
		Webhook: &provider.WebhookSpec{
			Scheme:      provider.SchemeStripe,
			Header:      "Stripe-Signature",
			SecretField: fieldWebhookSecret,
			Tolerance:   300 * time.Second,
			// Stripe's evt_… id is stable across its retries and replays.
			DedupKey: []string{"json:id"},
		},
	}
}
