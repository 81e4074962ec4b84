package main

import (
	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/provider/idem"

	"github.com/pipecore/pipecore/plugins/pedidosya/internal/wire"
)

// The per-tenant settings and credentials the plugin reads.
const (
	fieldAPIToken   = "api_token"
	fieldWebhookKey = "webhook_authorization_key"
	fieldIsTest     = "is_test"
)

// webhookDedupKey is where core finds a callback's identity: the shipping
// id and its new status. PedidosYa sends no event id. generated is left
// out on purpose: nothing says a redelivery keeps it, and a shipping
// reaches each status once, so (id, status) is stable across retries; the
// price is that a status repeated for real (a rider reassigned, IN_PROGRESS
// again) is dropped as a duplicate; GetShipment still shows the new rider.
var webhookDedupKey = []string{"json:id", "json:data.status"}

// pedidosyaProvider implements the delivery capability on the PedidosYa
// Courier API v3. It keeps no tenant configuration: every call builds a
// client from the request's Tenant. Its only state is the in-process memory
// of recent creates; it is safe for concurrent use.
//
// The plugin remembers each successful create for an hour (idem.DefaultTTL),
// per process, keyed by tenant, base URL, token and the gateway's
// idempotency key (see memoKey). A retry inside that window gets the first
// shipment without calling PedidosYa; concurrent calls with one key wait
// for the first. Outside the window, or after a restart, the lookup by
// referenceId (see create) is what prevents a second shipping.
type pedidosyaProvider struct {
	creates *idem.Memo[delivery.Shipment]
}

var (
	_ delivery.Provider      = (*pedidosyaProvider)(nil)
	_ provider.WebhookParser = (*pedidosyaProvider)(nil)
)

func newProvider() *pedidosyaProvider {
	return &pedidosyaProvider{creates: idem.New[delivery.Shipment](idem.Options{Name: "pedidosya"})}
}

// Info describes the plugin. It is constant apart from the build's version.
// Webhooks are optional: a tenant without webhook_authorization_key simply
// registers no callback URL, and the gateway polls GetShipment.
func (*pedidosyaProvider) Info() provider.Info {
	return provider.Info{
		Name:    "pedidosya",
		Version: version,
		Fields: []provider.Field{
			{Name: fieldAPIToken, Secret: true, Required: true, Doc: "Courier API token from the PedidosYa Envíos portal, sent as the Authorization header"},
			{Name: fieldWebhookKey, Secret: true, Doc: "authorizationKey registered with the webhook URL in PedidosYa's webhooks configuration; PedidosYa sends it back as the Authorization header"},
			{Name: fieldIsTest, Doc: `"true" creates test shippings (isTest, no rider is sent); "false" (default) real ones`},
			{Name: provider.BaseURLField, Doc: "API host; default " + wire.DefaultBaseURL},
		},
		Webhook: &provider.WebhookSpec{
			Scheme:      provider.SchemeStaticToken,
			Header:      wire.HeaderAuthorization,
			SecretField: fieldWebhookKey,
			DedupKey:    webhookDedupKey,
		},
	}
}
