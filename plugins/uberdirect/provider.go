package main

import (
	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/provider"
)

// The per-tenant settings and credentials the plugin reads.
const (
	fieldCustomerID        = "customer_id"
	fieldClientID          = "client_id"
	fieldClientSecret      = "client_secret"
	fieldWebhookSigningKey = "webhook_signing_key"
	fieldAuthURL           = "auth_url"
)

// uberDirect implements the delivery capability on Uber Direct. It keeps no
// tenant configuration: every call reads the request's Tenant. Its state
// is the OAuth token cache (per tenant and credential) and the memory of
// recent creates per idempotency key; both are safe for concurrent use.
type uberDirect struct {
	tokens  *tokenCache
	creates *idemStore
}

var (
	_ delivery.Provider      = (*uberDirect)(nil)
	_ provider.WebhookParser = (*uberDirect)(nil)
)

func newProvider() *uberDirect {
	return &uberDirect{tokens: newTokenCache(), creates: newIdemStore(idemMax)}
}

// Info describes the plugin. It is constant apart from the build's version.
// Webhooks are verified by the gateway: hex HMAC-SHA256 of the raw body
// with the tenant's webhook signing key in X-Uber-Signature, deduplicated
// on the body's "id" (evt_…).
func (*uberDirect) Info() provider.Info {
	return provider.Info{
		Name:    "uberdirect",
		Version: version,
		Fields: []provider.Field{
			{Name: fieldCustomerID, Required: true, Doc: "Uber Direct customer id (Direct dashboard → Developer), used in every API path"},
			{Name: fieldClientID, Secret: true, Required: true, Doc: "OAuth client id (Direct dashboard → Developer)"},
			{Name: fieldClientSecret, Secret: true, Required: true, Doc: "OAuth client secret (Direct dashboard → Developer)"},
			{Name: fieldWebhookSigningKey, Secret: true, Doc: "signing key of the webhook registered at Uber for {public_url}/webhooks/uberdirect/{tenant}"},
			{Name: fieldAuthURL, Doc: "OAuth token URL; default " + defaultAuthURL + ", or base_url + " + tokenPath + " when base_url is set"},
			{Name: provider.BaseURLField, Doc: "API host; default " + defaultBaseURL},
		},
		Webhook: &provider.WebhookSpec{
			Scheme:      provider.SchemeHMACSHA256,
			Header:      headerSignature,
			SecretField: fieldWebhookSigningKey,
			DedupKey:    []string{webhookDedupIDSource},
		},
	}
}
