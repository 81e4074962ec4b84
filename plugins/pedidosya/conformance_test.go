package main

import (
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/providertest"
)

// TestConformance runs the SDK's delivery contract over the real gRPC path
// against pedidosyafake, with a wrong token, a cancellation, a stalled API
// and the recorded callbacks (whose shippings the fake does not know: the
// events come from the callbacks alone).
func TestConformance(t *testing.T) {
	f := startFake(t)
	good := tenantFor(f.URL(), nil)
	bad := tenantFor(f.URL(), map[string]string{fieldAPIToken: "wrong-token-5d1c0e7a9b"})
	var cases []providertest.WebhookCase
	for _, c := range []struct {
		name, file string
		want       []string
	}{
		{"confirmed", "callback_confirmed.json", nil},
		{"in_progress", "callback_in_progress.json", []string{"delivery.assigned"}},
		{"near_pickup", "callback_near_pickup.json", nil},
		{"picked_up", "callback_picked_up.json", []string{"delivery.picked_up"}},
		{"near_dropoff", "callback_near_dropoff.json", nil},
		{"completed", "callback_completed.json", []string{"delivery.completed"}},
		{"cancelled", "callback_cancelled.json", []string{"delivery.cancelled"}},
		{"other_topic", "callback_other_topic.json", nil},
	} {
		cases = append(cases, providertest.WebhookCase{Name: c.name, Headers: hookHeaders(), Body: readTestdata(t, c.file), Want: c.want})
	}
	providertest.RunDelivery(t, newProvider(), providertest.DeliveryConfig{
		Tenant:         good,
		BadCredentials: &bad,
		Cancel:         true,
		Stall: func(testing.TB) func() {
			f.SetDelay(time.Minute)
			return func() { f.SetDelay(0) }
		},
		Webhooks: cases,
	})
	if f.Deliveries() == 0 {
		t.Fatalf("the suite booked nothing on the fake")
	}
}
