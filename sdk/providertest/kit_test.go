package providertest

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

// The kit must catch what it claims to check: each broken provider below
// breaks one rule, and exactly the checks guarding it must fail.

const sentinel = "SENTINEL-key-1234"

var goodCreds = map[string]string{"api_key": sentinel}

type quoteZeroFee struct{ FakeDelivery }

func (q *quoteZeroFee) Quote(ctx context.Context, r delivery.QuoteRequest) (delivery.Quote, error) {
	qt, err := q.FakeDelivery.Quote(ctx, r)
	qt.Fee.Amount, qt.ExpiresAt = 0, time.Now().Add(-time.Minute)
	return qt, err
}

type noIdempotency struct{ FakeDelivery }

func (n *noIdempotency) CreateShipment(ctx context.Context, r delivery.CreateRequest) (delivery.Shipment, error) {
	r.IdempotencyKey += time.Now().String()
	return n.FakeDelivery.CreateShipment(ctx, r)
}

type refusesCancel struct{ FakeDelivery }

func (*refusesCancel) CancelShipment(context.Context, delivery.CancelRequest) (delivery.Shipment, error) {
	return delivery.Shipment{}, provider.Permanent(errors.New("too late"))
}

type acceptsAnything struct{ FakeDelivery }

func (a *acceptsAnything) Quote(ctx context.Context, r delivery.QuoteRequest) (delivery.Quote, error) {
	r.Dropoff = DefaultDropoff
	return a.FakeDelivery.Quote(ctx, r)
}

type leaksSecret struct{ FakeDelivery }

func (l *leaksSecret) Quote(ctx context.Context, r delivery.QuoteRequest) (delivery.Quote, error) {
	provider.Log(ctx).Info("quoting", "key", r.Tenant.Secret("api_key").Reveal())
	return l.FakeDelivery.Quote(ctx, r)
}

type badStatus struct{ FakeDelivery }

func (b *badStatus) CreateShipment(ctx context.Context, r delivery.CreateRequest) (delivery.Shipment, error) {
	sh, err := b.FakeDelivery.CreateShipment(ctx, r)
	sh.Status = "on_its_way"
	return sh, err
}

type wrongEvents struct{ FakeDelivery }

func (*wrongEvents) ParseWebhook(context.Context, provider.WebhookRequest) ([]provider.Event, error) {
	return []provider.Event{{Type: "shipment.moved", Data: []byte("{")}}, nil
}

func TestDeliveryChecksCatchFaults(t *testing.T) {
	tests := map[string]struct {
		p    delivery.Provider
		fail []string
	}{
		"correct":          {p: &FakeDelivery{}},
		"zero fee":         {p: &quoteZeroFee{}, fail: []string{"quote"}},
		"no idempotency":   {p: &noIdempotency{}, fail: []string{"idempotency"}},
		"refuses cancel":   {p: &refusesCancel{}, fail: []string{"cancel"}},
		"accepts anything": {p: &acceptsAnything{}, fail: []string{"invalid_input"}},
		"leaks secret":     {p: &leaksSecret{}, fail: []string{"no_secrets_leak"}},
		"bad status":       {p: &badStatus{}, fail: []string{"create"}},
		"wrong events":     {p: &wrongEvents{}, fail: []string{"webhooks/move"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			bad := Tenant("acme", nil, map[string]string{"api_key": "bad"})
			s := newSuite(context.Background(), Connect(t, tc.p), Tenant("acme", nil, goodCreds), &bad)
			res := runRecorded(deliveryChecks(s, DeliveryConfig{Cancel: true, Webhooks: []WebhookCase{
				{Name: "move", Body: []byte(`{"events":[{"id":"e1","delivery_id":"d1","status":"assigned"}]}`), Want: []string{"delivery.assigned"}},
			}}), "")
			assertFailures(t, res, tc.fail)
		})
	}
}

type sendsTwice struct{ FakeMessaging }

func (s *sendsTwice) Send(ctx context.Context, r messaging.SendRequest) (messaging.Receipt, error) {
	r.IdempotencyKey += time.Now().String()
	return s.FakeMessaging.Send(ctx, r)
}

type acceptsAnyone struct{ FakeMessaging }

func (a *acceptsAnyone) Send(ctx context.Context, r messaging.SendRequest) (messaging.Receipt, error) {
	if r.Channel == messaging.ChannelEmail {
		r.To = "ok@example.com"
	}
	return a.FakeMessaging.Send(ctx, r)
}

type ignoresDeadline struct{ FakeMessaging }

func (i *ignoresDeadline) Send(ctx context.Context, r messaging.SendRequest) (messaging.Receipt, error) {
	if strings.Contains(r.IdempotencyKey, "deadline") {
		return messaging.Receipt{}, provider.Unauthorized(errors.New("confused"))
	}
	return i.FakeMessaging.Send(ctx, r)
}

func TestMessagingChecksCatchFaults(t *testing.T) {
	tests := map[string]struct {
		p    messaging.Provider
		fail []string
	}{
		"correct":             {p: &FakeMessaging{}},
		"sends twice":         {p: &sendsTwice{}, fail: []string{"idempotency"}},
		"accepts any address": {p: &acceptsAnyone{}, fail: []string{"invalid_recipient/email"}},
		"wrong deadline kind": {p: &ignoresDeadline{}, fail: []string{"deadline"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := newSuite(context.Background(), Connect(t, tc.p), Tenant("acme", nil, goodCreds), nil)
			s.tb = t
			res := runRecorded(messagingChecks(s, MessagingConfig{
				To: map[messaging.Channel]string{messaging.ChannelWhatsApp: "+56912345678", messaging.ChannelEmail: "a@example.com"},
				// No real stall: the deadline check runs, and a correct fake answers in time with no error.
				Stall: func(testing.TB) func() { return func() {} },
			}), "")
			want := tc.fail
			if name != "wrong deadline kind" {
				want = append(want, "deadline") // an answer without error is not a retryable deadline error
			}
			assertFailures(t, res, want)
		})
	}
}

// Stall is only offered to a testing.TB: under CheckBinary it skips.
func TestDeadlineSkipsOutsideGoTest(t *testing.T) {
	s := newSuite(context.Background(), Connect(t, &FakeMessaging{}), Tenant("acme", nil, goodCreds), nil)
	res := runRecorded(messagingChecks(s, MessagingConfig{
		To:    map[messaging.Channel]string{messaging.ChannelSMS: "+56912345678"},
		Stall: func(testing.TB) func() { t.Error("Stall called outside go test"); return func() {} },
	}), "")
	if r, _ := (Report{Results: res}).Result("deadline"); r.Status != StatusSkip {
		t.Fatalf("deadline = %+v, want a skip", r)
	}
}

type capturesUnsupported struct{ FakePayments }

func (*capturesUnsupported) Capture(context.Context, payments.CaptureRequest) (payments.Payment, error) {
	return payments.Payment{}, provider.ErrUnsupported
}

func TestPaymentChecksCatchFaults(t *testing.T) {
	tests := map[string]struct {
		p    payments.Provider
		fail []string
	}{
		"correct":                    {p: &FakePayments{}},
		"implemented but refuses it": {p: &capturesUnsupported{}, fail: []string{"optional_operations"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := newSuite(context.Background(), Connect(t, tc.p), Tenant("acme", nil, goodCreds), nil)
			assertFailures(t, runRecorded(paymentChecks(s, PaymentsConfig{Capture: true, Cancel: true}, tc.p), ""), tc.fail)
		})
	}
}

func assertFailures(t *testing.T, res []Result, want []string) {
	t.Helper()
	var got []string
	for _, r := range res {
		if r.Status == StatusFail {
			got = append(got, r.Check)
		}
	}
	wantSet := map[string]bool{}
	for _, w := range want {
		wantSet[w] = true
	}
	gotSet := map[string]bool{}
	for _, g := range got {
		gotSet[g] = true
	}
	for w := range wantSet {
		if !gotSet[w] {
			t.Errorf("check %q passed, want a failure", w)
		}
	}
	for g := range gotSet {
		if !wantSet[g] {
			t.Errorf("check %q failed unexpectedly", g)
		}
	}
	if t.Failed() {
		var buf bytes.Buffer
		_ = Report{Results: res}.WriteTable(&buf)
		t.Log("\n" + buf.String())
	}
}
