package main

import (
	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/provider/idem"
)

// The per-tenant settings and credentials the plugin reads.
const (
	fieldCommerceCode = "commerce_code"
	fieldAPIKeySecret = "api_key_secret"
	fieldEnvironment  = "environment"
	fieldReturnURL    = "return_url"
)

// transbankProvider implements the payments capability on Webpay Plus. It
// keeps no tenant configuration: every call builds a client from the
// request's Tenant. Its only state is the in-process memory of recent
// creates and refunds, which makes retries with the same idempotency key
// safe; it is safe for concurrent use.
//
// Transbank has no idempotency header, so the plugin remembers the outcome
// of each create and refund for an hour (idem.DefaultTTL), per process,
// keyed by tenant, commerce code and the gateway's idempotency key (see
// memoKey). A retry inside that window gets the first answer instead of a
// second transaction or refund. After a plugin restart the gateway's own
// idempotency record is what protects against duplicates.
type transbankProvider struct {
	creates *idem.Memo[payments.Payment]
	refunds *idem.Memo[payments.Refund]
}

var (
	_ payments.Provider   = (*transbankProvider)(nil)
	_ payments.Confirmer  = (*transbankProvider)(nil)
	_ payments.Reconciler = (*transbankProvider)(nil)
)

func newProvider() *transbankProvider {
	return &transbankProvider{
		creates: idem.New[payments.Payment](idem.Options{Name: "transbank"}),
		refunds: idem.New[payments.Refund](idem.Options{Name: "transbank"}),
	}
}

// Info describes the plugin. It is constant apart from the build's version.
// Transbank sends no webhooks, so Webhook is nil: outcomes arrive through
// the buyer's return to the gateway and Confirm.
func (*transbankProvider) Info() provider.Info {
	return provider.Info{
		Name:    "transbank",
		Version: version,
		Fields: []provider.Field{
			{Name: fieldCommerceCode, Doc: "Webpay Plus commerce code (Tbk-Api-Key-Id); empty in integration means the public test commerce " + integrationCommerceCode},
			{Name: fieldAPIKeySecret, Secret: true, Doc: "Webpay API key secret (Tbk-Api-Key-Secret); empty in integration means the public integration key"},
			{Name: fieldEnvironment, Doc: `"integration" (default) or "production"`},
			{Name: provider.BaseURLField, Doc: "API host; default " + integrationHost + " (integration) or " + productionHost + " (production)"},
			{Name: fieldReturnURL, Doc: "default return_url when a payment request has none, normally {public_url}/return/transbank/{tenant}"},
		},
	}
}
