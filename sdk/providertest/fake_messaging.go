package providertest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/mail"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/provider"
)

// FakeMessaging is an in-memory messaging provider with real behaviour:
// recipient validation per channel, idempotent sends and a credential
// check. Gateway tests use it in place of a plugin; Sent lists what
// reached it.
//
// Credentials: the tenant must carry the secret "api_key"; the value "bad"
// is rejected as unauthorized. Its webhooks are JSON bodies
// {"events":[{"id","message_id","channel","status"}]}; see ParseWebhook.
type FakeMessaging struct {
	// Name defaults to "fakemessaging".
	Name string
	// Fail, when set, is consulted before every send; a non-nil error is
	// returned as is.
	Fail  func(op string, tenant provider.Tenant) error
	delay atomic.Int64
	calls atomic.Int64
	mu    sync.Mutex
	byKey map[string]messaging.Receipt // tenant+idempotency key -> receipt
	sent  []messaging.SendRequest
}

var (
	_ messaging.Provider     = (*FakeMessaging)(nil)
	_ provider.WebhookParser = (*FakeMessaging)(nil)
)

// Info implements provider.Provider.
func (f *FakeMessaging) Info() provider.Info { return fakeInfo(f.Name, "fakemessaging") }

// SetDelay makes every later send wait d (honouring its context) before
// answering. Zero removes it.
func (f *FakeMessaging) SetDelay(d time.Duration) { f.delay.Store(int64(d)) }

// Calls returns how many sends reached the fake.
func (f *FakeMessaging) Calls() int64 { return f.calls.Load() }

// Sent returns the requests that were accepted, first to last; a repeated
// idempotency key is listed once.
func (f *FakeMessaging) Sent() []messaging.SendRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]messaging.SendRequest(nil), f.sent...)
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// Send implements messaging.Provider. WhatsApp and SMS recipients must be
// E.164 phones, email recipients addresses; the receipt is queued.
func (f *FakeMessaging) Send(ctx context.Context, r messaging.SendRequest) (messaging.Receipt, error) {
	switch r.Channel {
	case messaging.ChannelWhatsApp, messaging.ChannelSMS:
		if !e164.MatchString(r.To) {
			return messaging.Receipt{}, provider.Invalid(fmt.Errorf("fakemessaging: recipient %q is not an E.164 phone", r.To))
		}
	case messaging.ChannelEmail:
		if _, err := mail.ParseAddress(r.To); err != nil {
			return messaging.Receipt{}, provider.Invalid(fmt.Errorf("fakemessaging: recipient %q is not an email address", r.To))
		}
	default:
		return messaging.Receipt{}, provider.Invalid(fmt.Errorf("fakemessaging: unknown channel %q", r.Channel))
	}
	if r.Text == "" && r.HTML == "" && r.Template == nil {
		return messaging.Receipt{}, provider.Invalid(fmt.Errorf("fakemessaging: empty message"))
	}
	f.calls.Add(1)
	if err := fakeEnter(ctx, "fakemessaging", "send", r.Tenant, time.Duration(f.delay.Load()), f.Fail); err != nil {
		return messaging.Receipt{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byKey == nil {
		f.byKey = map[string]messaging.Receipt{}
	}
	k := r.Tenant.ID() + "\x00" + r.IdempotencyKey
	if rc, ok := f.byKey[k]; ok {
		return rc, nil
	}
	sum := sha256.Sum256([]byte(k))
	rc := messaging.Receipt{ID: "fkm_" + hex.EncodeToString(sum[:8]), Status: messaging.StatusQueued}
	f.byKey[k] = rc
	f.sent = append(f.sent, r)
	return rc, nil
}

// ParseWebhook implements provider.WebhookParser. The body is
// {"events":[{"id":"evt_1","message_id":"fkm_…","channel":"whatsapp","status":"delivered"}]};
// a WhatsApp or SMS status sent, delivered, read, failed or received yields
// message.<status>, an email status delivered, bounced, opened or
// complained yields email.<status>, anything else nothing. A body that is
// not that JSON fails KindInvalid.
func (f *FakeMessaging) ParseWebhook(_ context.Context, r provider.WebhookRequest) ([]provider.Event, error) {
	var body struct {
		Events []struct {
			ID        string `json:"id"`
			MessageID string `json:"message_id"`
			Channel   string `json:"channel"`
			Status    string `json:"status"`
		} `json:"events"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		return nil, provider.Invalid(fmt.Errorf("fakemessaging: webhook body: %w", err))
	}
	var evs []provider.Event
	for i, e := range body.Events {
		typ := "message." + e.Status
		if e.Channel == string(messaging.ChannelEmail) {
			typ = "email." + e.Status
		}
		if !messagingCatalog[typ] {
			continue
		}
		if e.ID == "" || e.MessageID == "" {
			return nil, provider.Invalid(fmt.Errorf("fakemessaging: webhook event %d lacks id or message_id", i))
		}
		data, err := json.Marshal(struct {
			Channel string `json:"channel"`
			Status  string `json:"status"`
		}{e.Channel, e.Status})
		if err != nil {
			return nil, provider.Invalid(err)
		}
		evs = append(evs, provider.Event{ID: e.ID, Type: typ, Subject: e.MessageID, OccurredAt: time.Now().UTC(), Data: data})
	}
	return evs, nil
}
