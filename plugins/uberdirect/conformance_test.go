package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/providertest"
)

// TestConformance runs the SDK's delivery contract over the real gRPC path
// against the Uber Direct fake: quote, create from the quote, idempotency,
// get, cancel of a fresh delivery, an empty drop-off, bad credentials
// (the fake answers invalid_client), a stalled API (answers held back with
// SetDelay) and every recorded webhook of testdata/webhooks.
func TestConformance(t *testing.T) {
	f := startFake(t)
	bad := tenantWith(f.URL(), "wrong-secret-5d1c0e7a9b")
	var cases []providertest.WebhookCase
	for _, wc := range webhookCases {
		body := readPayload(t, wc.name)
		cases = append(cases, providertest.WebhookCase{
			Name:    wc.name,
			Headers: map[string][]string{http.CanonicalHeaderKey(headerSignature): {sign("whsk_test_signing_key", body)}, "Content-Type": {"application/json"}},
			Body:    body,
			Want:    wc.want,
		})
	}
	providertest.RunDelivery(t, newProvider(), providertest.DeliveryConfig{
		Tenant:         testTenant(f.URL()),
		BadCredentials: &bad,
		Cancel:         true,
		Stall: func(testing.TB) func() {
			f.SetDelay(time.Hour)
			return func() { f.SetDelay(0) }
		},
		Webhooks: cases,
	})
}
