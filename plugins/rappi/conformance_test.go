package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipecore/pipecore/plugins/rappi/rappifake"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/providertest"
)

// testTenant is a tenant with the fake's credentials and base_url.
func testTenant(baseURL string) provider.Tenant {
	return providertest.Tenant("acme",
		map[string]string{provider.BaseURLField: baseURL, fieldCountry: "CL"},
		map[string]string{fieldClientID: rappifake.ClientID, fieldClientSecret: rappifake.ClientSecret, fieldWebhookSecret: "rappi-webhook-secret"})
}

// TestConformance runs the SDK's delivery contract over the real gRPC path
// against the fake: bad credentials (same client_id, wrong secret), cancel
// of a fresh shipment, a stalled API, and every recorded webhook.
func TestConformance(t *testing.T) {
	f := rappifake.Start()
	t.Cleanup(f.Close)
	bad := providertest.Tenant("acme",
		map[string]string{provider.BaseURLField: f.URL()},
		map[string]string{fieldClientID: rappifake.ClientID, fieldClientSecret: "wrong-secret-8c1f2e"})

	var cases []providertest.WebhookCase
	files, err := filepath.Glob(filepath.Join("testdata", "webhooks", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded webhooks: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		if w := webhookWant[name]; w != "" {
			want = []string{w}
		}
		cases = append(cases, providertest.WebhookCase{
			Name:    name,
			Headers: map[string][]string{"Content-Type": {"application/json"}, "Rappi-Signature": {"t=1795787000,sign=00"}},
			Body:    body,
			Want:    want,
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
