package main

import (
	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

// The per-tenant settings and credentials the plugin reads.
const (
	fieldAccessToken   = "access_token"
	fieldWebhookSecret = "webhook_secret"
	fieldCheckout      = "checkout"
)

// The values of the checkout setting.
const (
	checkoutPro    = "pro"    // Checkout Pro preference, the default
	checkoutDirect = "direct" // POST /v1/payments with a card token
)

// mercadoPago implements the payments capability on MercadoPago. It holds no
// tenant state: every call builds an SDK config from the request's Tenant,
// so one value serves every tenant and is safe for concurrent use.
type mercadoPago struct{}

var (
	_ payments.Provider      = (*mercadoPago)(nil)
	_ payments.Canceler      = (*mercadoPago)(nil)
	_ provider.WebhookParser = (*mercadoPago)(nil)
)

func newProvider() *mercadoPago { return &mercadoPago{} }

// Info describes the plugin. It is constant apart from the build's version.
func (*mercadoPago) Info() provider.Info {
	return provider.Info{
		Name:    "mercadopago",
		Version: version,
		Fields: []provider.Field{
			{Name: fieldAccessToken, Secret: true, Required: true, Doc: "MercadoPago access token APP_USR-… or TEST-…"},
			{Name: fieldWebhookSecret, Secret: true, Doc: "secret signature of the webhook in MercadoPago's dashboard (Your integrations → Webhooks)"},
			{Name: provider.BaseURLField, Doc: "API base URL; default " + defaultBaseURL},
			{Name: fieldCheckout, Doc: `"pro" (default): Checkout Pro preference; "direct": POST /v1/payments with metadata card_token and payment_method_id when no return URL is given`},
		},
		Webhook: &provider.WebhookSpec{
			Scheme:      provider.SchemeMercadoPago,
			Header:      "x-signature",
			SecretField: fieldWebhookSecret,
			// MercadoPago's documented dedup key: x-request-id plus data.id.
			DedupKey: []string{"header:X-Request-Id", "query:data.id"},
		},
	}
}
