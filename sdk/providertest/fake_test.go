package providertest_test

import (
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/providertest"
)

// The kit runs against its own fake, so the suite itself is exercised.
func TestRunPaymentsOnFake(t *testing.T) {
	fake := &providertest.FakePayments{}
	bad := providertest.Tenant("acme", nil, map[string]string{"api_key": "bad"})
	providertest.RunPayments(t, fake, providertest.PaymentsConfig{
		Tenant:         providertest.Tenant("acme", map[string]string{"mode": "test"}, map[string]string{"api_key": "SENTINEL-key-1234"}),
		BadCredentials: &bad,
		ReturnURL:      "https://shop.example/return",
		Refunds:        true,
		Capture:        true,
		Cancel:         true,
		Subscription:   &payments.Plan{Amount: provider.Money{Amount: 9990, Currency: "CLP"}, Interval: payments.IntervalMonth, IntervalCount: 1},
		Stall: func(testing.TB) func() {
			fake.SetDelay(time.Hour)
			return func() { fake.SetDelay(0) }
		},
	})
}

func TestRunDeliveryOnFake(t *testing.T) {
	fake := &providertest.FakeDelivery{}
	bad := providertest.Tenant("acme", nil, map[string]string{"api_key": "bad"})
	providertest.RunDelivery(t, fake, providertest.DeliveryConfig{
		Tenant:         providertest.Tenant("acme", nil, map[string]string{"api_key": "SENTINEL-key-1234", "webhook_secret": "SENTINEL-whsec-5678"}),
		BadCredentials: &bad,
		Cancel:         true,
		Stall: func(testing.TB) func() {
			fake.SetDelay(time.Hour)
			return func() { fake.SetDelay(0) }
		},
		Webhooks: []providertest.WebhookCase{
			{Name: "picked_up_then_delivered", Body: []byte(`{"events":[{"id":"evt_1","delivery_id":"fkd_1","status":"picked_up"},{"id":"evt_2","delivery_id":"fkd_1","status":"delivered"}]}`),
				Want: []string{"delivery.picked_up", "delivery.completed"}},
			{Name: "irrelevant", Body: []byte(`{"events":[{"id":"evt_3","delivery_id":"fkd_1","status":"ping"}]}`)},
		},
	})
}

func TestRunMessagingOnFake(t *testing.T) {
	fake := &providertest.FakeMessaging{}
	bad := providertest.Tenant("acme", nil, map[string]string{"api_key": "bad"})
	providertest.RunMessaging(t, fake, providertest.MessagingConfig{
		Tenant:         providertest.Tenant("acme", nil, map[string]string{"api_key": "SENTINEL-key-1234"}),
		BadCredentials: &bad,
		To: map[messaging.Channel]string{
			messaging.ChannelWhatsApp: "+56912345678", messaging.ChannelSMS: "+56912345678", messaging.ChannelEmail: "camila@example.com",
		},
		Template: &messaging.Template{Name: "order_ready", Language: "es", Params: []string{"Camila", "1042"}},
		Stall: func(testing.TB) func() {
			fake.SetDelay(time.Hour)
			return func() { fake.SetDelay(0) }
		},
		Webhooks: []providertest.WebhookCase{
			{Name: "whatsapp_read", Body: []byte(`{"events":[{"id":"wamid.1-read","message_id":"fkm_1","channel":"whatsapp","status":"read"}]}`), Want: []string{"message.read"}},
			{Name: "email_bounced", Body: []byte(`{"events":[{"id":"sg_1","message_id":"fkm_2","channel":"email","status":"bounced"}]}`), Want: []string{"email.bounced"}},
			{Name: "no_events", Body: []byte(`{"events":[]}`)},
		},
	})
}
