package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"

	"github.com/pipecore/pipecore/plugins/email/resendfake"
	"github.com/pipecore/pipecore/plugins/email/sendgridfake"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/providertest"
)

// TestConformanceSendGrid runs the SDK's messaging contract over the real
// gRPC path against the SendGrid fake.
func TestConformanceSendGrid(t *testing.T) {
	f := startSendGrid(t)
	base, stall := stallable(t, f.URL())
	settings := map[string]string{fieldTransport: transportSendGrid, fieldFrom: testFrom, provider.BaseURLField: base}
	good := providertest.Tenant("acme", settings, map[string]string{fieldAPIKey: sendgridfake.APIKey, fieldWebhookPublicKey: f.PublicKey()})
	bad := providertest.Tenant("acme", settings, map[string]string{fieldAPIKey: "SG.wrong-key-5d1c0e7a9b"})
	headers := sendGridWebhook(nil).Headers
	providertest.RunMessaging(t, newProvider(), providertest.MessagingConfig{
		Tenant:         good,
		BadCredentials: &bad,
		To:             map[messaging.Channel]string{messaging.ChannelEmail: "camila.rojas@example.cl"},
		Stall:          stall,
		Webhooks: []providertest.WebhookCase{
			{Name: "delivered", Headers: headers, Body: readTestdata(t, "sendgrid", "delivered"), Want: []string{catalogDelivered}},
			{Name: "bounce", Headers: headers, Body: readTestdata(t, "sendgrid", "bounce"), Want: []string{catalogBounced}},
			{Name: "dropped", Headers: headers, Body: readTestdata(t, "sendgrid", "dropped"), Want: []string{catalogBounced}},
			{Name: "open", Headers: headers, Body: readTestdata(t, "sendgrid", "open"), Want: []string{catalogOpened}},
			{Name: "spamreport", Headers: headers, Body: readTestdata(t, "sendgrid", "spamreport"), Want: []string{catalogComplained}},
			{Name: "batch", Headers: headers, Body: readTestdata(t, "sendgrid", "batch"), Want: []string{catalogDelivered, catalogOpened}},
			{Name: "ignored", Headers: headers, Body: readTestdata(t, "sendgrid", "ignored")},
		},
	})
}

// TestConformanceResend runs the same contract against the Resend fake.
func TestConformanceResend(t *testing.T) {
	f := startResend(t)
	base, stall := stallable(t, f.URL())
	settings := map[string]string{fieldTransport: transportResend, fieldFrom: testFrom, provider.BaseURLField: base}
	good := providertest.Tenant("acme", settings, map[string]string{fieldAPIKey: resendfake.APIKey, fieldWebhookSecret: resendfake.WebhookSecret})
	bad := providertest.Tenant("acme", settings, map[string]string{fieldAPIKey: "re_wrong_key_5d1c0e7a9b"})
	headers := resendWebhook(nil, "msg_2pQ7vXbN1cR8kTz4LmW0yHd3Fs9").Headers
	var cases []providertest.WebhookCase
	for name, want := range map[string]string{
		"email.delivered": catalogDelivered, "email.bounced": catalogBounced, "email.opened": catalogOpened,
		"email.complained": catalogComplained, "email.sent": "", "email.clicked": "",
	} {
		c := providertest.WebhookCase{Name: name, Headers: headers, Body: readTestdata(t, "resend", name)}
		if want != "" {
			c.Want = []string{want}
		}
		cases = append(cases, c)
	}
	providertest.RunMessaging(t, newProvider(), providertest.MessagingConfig{
		Tenant:         good,
		BadCredentials: &bad,
		To:             map[messaging.Channel]string{messaging.ChannelEmail: "Camila Rojas <camila.rojas@example.cl>"},
		Stall:          stall,
		Webhooks:       cases,
	})
}

// stallable puts a reverse proxy in front of target and returns its URL
// and a Stall func for the kit: while stalled, requests hang until
// released or abandoned by the client.
func stallable(t *testing.T, target string) (string, func(testing.TB) func()) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	var mu sync.Mutex
	var gate chan struct{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		g := gate
		mu.Unlock()
		if g != nil {
			select {
			case <-g:
			case <-r.Context().Done():
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	stall := func(testing.TB) func() {
		g := make(chan struct{})
		mu.Lock()
		gate = g
		mu.Unlock()
		var once sync.Once
		return func() {
			once.Do(func() {
				mu.Lock()
				gate = nil
				mu.Unlock()
				close(g)
			})
		}
	}
	return srv.URL, stall
}
