package providertest

import (
	"context"
	"slices"
	"testing"

	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/provider"
)

// MessagingConfig tells RunMessaging how to exercise a messaging provider.
// The zero value of every optional field skips the checks that need it.
type MessagingConfig struct {
	// Tenant carries valid settings and credentials (base_url pointing at
	// the author's fake). Required.
	Tenant provider.Tenant
	// BadCredentials, when set, carries credentials the provider rejects:
	// Send must fail with KindUnauthorized.
	BadCredentials *provider.Tenant
	// To lists the channels to exercise, each with a recipient the provider
	// accepts (E.164 phone, or an email address for ChannelEmail).
	// Required: at least one channel.
	To map[messaging.Channel]string
	// Template, when set, is sent once: on WhatsApp when To has it,
	// otherwise on the first channel of To in name order.
	Template *messaging.Template
	// Stall, when set, makes the provider's API stop answering until the
	// returned release func is called; the suite checks that a call
	// honours its context deadline.
	Stall func(t testing.TB) (release func())
	// Webhooks are recorded payloads and the event types they must yield.
	Webhooks []WebhookCase
}

var messagingCatalog = map[string]bool{
	"message.sent": true, "message.delivered": true, "message.read": true, "message.failed": true, "message.received": true,
	"email.delivered": true, "email.bounced": true, "email.opened": true, "email.complained": true,
}

func validMessageStatus(s messaging.Status) bool {
	switch s {
	case messaging.StatusQueued, messaging.StatusSent, messaging.StatusDelivered, messaging.StatusRead, messaging.StatusFailed, messaging.StatusReceived:
		return true
	}
	return false
}

// RunMessaging runs the messaging contract against p over the real gRPC
// path: Info is valid and declares the capability; a text (and, when set, a
// template) sent on every channel of To comes back with a receipt id and a
// catalog status; the same idempotency key yields the same receipt; an
// invalid recipient fails KindInvalid and bad credentials KindUnauthorized;
// deadlines are honoured; webhook cases yield complete catalog events;
// every error carries a kind and no error or log line contains a secret.
func RunMessaging(t *testing.T, p messaging.Provider, cfg MessagingConfig) {
	t.Helper()
	conn := Connect(t, p)
	runTests(t, messagingChecks(newSuite(context.Background(), conn, cfg.Tenant, cfg.BadCredentials), cfg))
}

func messagingChecks(s *suite, cfg MessagingConfig) []check {
	ms := s.conn.Messaging
	if ms == nil {
		return []check{s.infoCheck(provider.CapabilityMessaging, false)}
	}
	channels := make([]messaging.Channel, 0, len(cfg.To))
	for ch := range cfg.To {
		channels = append(channels, ch)
	}
	slices.Sort(channels)
	needTo := func(t reporter) messaging.Channel {
		if len(channels) == 0 {
			if s.lenient {
				t.Skipf("no recipients given")
			}
			t.Fatalf("MessagingConfig.To is empty: name at least one channel and a recipient")
		}
		return channels[0]
	}
	textReq := func(k string, ch messaging.Channel, to string) messaging.SendRequest {
		r := messaging.SendRequest{
			Tenant: s.tenant, IdempotencyKey: k, MessageID: "msg_" + k,
			Channel: ch, To: to, Text: "Hola ✅",
		}
		if ch == messaging.ChannelEmail {
			r.Subject = "PipeCore conformance"
			r.HTML = "<p>Hola ✅</p>"
		}
		return r
	}
	send := func(t reporter, r messaging.SendRequest) (messaging.Receipt, error) {
		rc, err := ms.Send(s.callCtx(t), r)
		s.rec.add(err)
		return rc, err
	}
	checkReceipt := func(t reporter, what string, rc messaging.Receipt, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v (kind %s)", what, err, provider.KindOf(err))
		}
		if rc.ID == "" {
			t.Errorf("%s: empty receipt id", what)
		}
		if !validMessageStatus(rc.Status) {
			t.Errorf("%s: status %q is not in the enum", what, rc.Status)
		}
	}

	sendCheck := check{name: "send"}
	if len(channels) == 0 {
		sendCheck.run = func(t reporter) { needTo(t) }
	}
	for _, ch := range channels {
		sendCheck.subs = append(sendCheck.subs, check{name: string(ch), run: func(t reporter) {
			rc, err := send(t, textReq(key(t), ch, cfg.To[ch]))
			checkReceipt(t, "Send text on "+string(ch), rc, err)
		}})
	}
	invalid := check{name: "invalid_recipient"}
	if len(channels) == 0 {
		invalid.run = func(t reporter) { needTo(t) }
	}
	for _, ch := range channels {
		invalid.subs = append(invalid.subs, check{name: string(ch), run: func(t reporter) {
			to := "not-a-number"
			if ch == messaging.ChannelEmail {
				to = "not-an-address"
			}
			_, err := send(t, textReq(key(t), ch, to))
			if provider.KindOf(err) != provider.KindInvalid {
				t.Fatalf("Send on %s to %q: err = %v (kind %s), want kind invalid", ch, to, err, provider.KindOf(err))
			}
		}})
	}

	return []check{
		s.infoCheck(provider.CapabilityMessaging, true),
		sendCheck,
		{name: "send_template", run: func(t reporter) {
			if cfg.Template == nil {
				t.Skipf("MessagingConfig.Template not set")
			}
			ch := needTo(t)
			if _, ok := cfg.To[messaging.ChannelWhatsApp]; ok {
				ch = messaging.ChannelWhatsApp
			}
			r := textReq(key(t), ch, cfg.To[ch])
			r.Text, r.HTML, r.Template = "", "", cfg.Template
			rc, err := send(t, r)
			checkReceipt(t, "Send template on "+string(ch), rc, err)
		}},
		{name: "idempotency", run: func(t reporter) {
			ch := needTo(t)
			r := textReq(key(t), ch, cfg.To[ch])
			a, err := send(t, r)
			if err != nil {
				t.Fatalf("first Send: %v (kind %s)", err, provider.KindOf(err))
			}
			b, err := send(t, r)
			if err != nil {
				t.Fatalf("repeated Send: %v (kind %s)", err, provider.KindOf(err))
			}
			if a.ID != b.ID {
				t.Fatalf("same idempotency key gave two receipts: %q and %q", a.ID, b.ID)
			}
		}},
		invalid,
		{name: "bad_credentials", run: func(t reporter) {
			if s.bad == nil {
				t.Skipf("MessagingConfig.BadCredentials not set")
			}
			ch := needTo(t)
			r := textReq(key(t), ch, cfg.To[ch])
			r.Tenant = *s.bad
			_, err := send(t, r)
			if provider.KindOf(err) != provider.KindUnauthorized {
				t.Fatalf("bad credentials: err = %v (kind %s), want kind unauthorized", err, provider.KindOf(err))
			}
		}},
		s.deadlineCheck(cfg.Stall, "MessagingConfig", func(ctx context.Context, t reporter) error {
			ch := needTo(t)
			_, err := ms.Send(ctx, textReq(key(t), ch, cfg.To[ch]))
			return err
		}),
		s.webhookChecks(cfg.Webhooks, "MessagingConfig", messagingCatalog),
		s.classifiedCheck(),
		s.noSecretsCheck(),
	}
}
