package main

import (
	"testing"

	"github.com/pipecore/pipecore/plugins/whatsapp/metafake"
	"github.com/pipecore/pipecore/plugins/whatsapp/twiliofake"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/providertest"
)

// conformanceWebhooks turns the recorded payloads of one transport into
// the kit's webhook cases.
func conformanceWebhooks(t *testing.T, transport string) []providertest.WebhookCase {
	var out []providertest.WebhookCase
	for _, tc := range webhookCases {
		if tc.transport == transport {
			out = append(out, providertest.WebhookCase{Name: tc.file, Body: payload(t, tc.file), Want: tc.types})
		}
	}
	return out
}

// TestConformanceCloud runs the SDK's messaging contract over the real
// gRPC path against the Meta fake (through a proxy that can stall).
func TestConformanceCloud(t *testing.T) {
	f := metafake.Start()
	defer f.Close()
	proxy := newStallProxy(t, f.URL())
	bad := cloudTenant(proxy.URL, map[string]string{fieldAccessToken: "EAAG-revoked-token-0c9d8e"})
	providertest.RunMessaging(t, newProvider(), providertest.MessagingConfig{
		Tenant:         cloudTenant(proxy.URL, nil),
		BadCredentials: &bad,
		To:             map[messaging.Channel]string{messaging.ChannelWhatsApp: "+56987654321"},
		Template:       &messaging.Template{Name: "pedido_confirmado", Language: "es", Params: []string{"#123", "mañana"}},
		Stall:          proxy.stall,
		Webhooks:       conformanceWebhooks(t, transportCloud),
	})
}

// TestConformanceTwilio runs the contract against the Twilio fake on both
// channels. Template stays nil: on Twilio a template is sent as its
// rendered Text, and the kit's template send has no text (the plugin
// answers invalid); TestTwilioSend covers it.
func TestConformanceTwilio(t *testing.T) {
	f := twiliofake.Start()
	defer f.Close()
	proxy := newStallProxy(t, f.URL())
	bad := twilioTenant(proxy.URL, map[string]string{fieldAuthToken: "revoked-twilio-token-51ab"})
	providertest.RunMessaging(t, newProvider(), providertest.MessagingConfig{
		Tenant:         twilioTenant(proxy.URL, nil),
		BadCredentials: &bad,
		To: map[messaging.Channel]string{
			messaging.ChannelWhatsApp: "+56987654321",
			messaging.ChannelSMS:      "+56987654321",
		},
		Stall:    proxy.stall,
		Webhooks: conformanceWebhooks(t, transportTwilio),
	})
}
