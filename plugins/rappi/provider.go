package main

import (
	"github.com/pipecore/pipecore/plugins/rappi/internal/wire"
	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/provider"
)

// The per-tenant settings and credentials the plugin reads.
const (
	fieldClientID      = "client_id"
	fieldClientSecret  = "client_secret"
	fieldWebhookSecret = "webhook_secret"
	fieldCountry       = "country"
)

// rappiProvider implements the delivery capability on Rappi's courier API
// and parses Rappi's webhooks. It keeps no tenant configuration: every
// call reads the request's Tenant. Its only state is the access-token
// cache, keyed per tenant, host and credentials. It is safe for concurrent
// use.
type rappiProvider struct {
	tokens *tokenCache
}

var (
	_ delivery.Provider      = (*rappiProvider)(nil)
	_ provider.WebhookParser = (*rappiProvider)(nil)
)

func newProvider() *rappiProvider {
	return &rappiProvider{tokens: newTokenCache(maxTokens)}
}

// Info describes the plugin. It is constant apart from the build's version.
func (*rappiProvider) Info() provider.Info {
	return provider.Info{
		Name:    "rappi",
		Version: version,
		Fields: []provider.Field{
			{Name: fieldClientID, Secret: true, Required: true, Doc: "Rappi API client_id (from Rappi's partner onboarding)"},
			{Name: fieldClientSecret, Secret: true, Required: true, Doc: "Rappi API client_secret"},
			{Name: fieldWebhookSecret, Secret: true, Doc: "secret of the Rappi webhook, signs Rappi-Signature"},
			{Name: provider.BaseURLField, Doc: "API host; default the country's production host (" + wire.CountryHosts[wire.DefaultCountry] + " for " + wire.DefaultCountry + "), " + wire.DevHost + " for Rappi's development environment"},
			{Name: fieldCountry, Doc: "ISO 3166-1 alpha-2 country of operation (AR, BR, CL, CO, CR, EC, MX, PE, UY); default " + wire.DefaultCountry},
		},
		Webhook: &provider.WebhookSpec{
			Scheme:      provider.SchemeRappi,
			Header:      wire.SignatureHeader,
			SecretField: fieldWebhookSecret,
			// Rappi sends no event id: a notification is its delivery,
			// event and event time (wire.WebhookDedupKey).
			DedupKey: wire.WebhookDedupKey,
		},
	}
}
