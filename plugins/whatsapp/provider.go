package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/provider/httpapi"
	"github.com/pipecore/pipecore/sdk/provider/idem"
)

// The per-tenant settings and credentials the plugin reads. Which ones a
// tenant needs depends on its transport; none is declared Required because
// a Cloud API tenant has no Twilio account and the other way round. A
// missing credential is reported at call time as KindUnauthorized.
const (
	fieldTransport = "transport"

	// Cloud API (transport "cloud").
	fieldPhoneNumberID = "phone_number_id"
	fieldAccessToken   = "access_token"
	fieldAppSecret     = "app_secret"
	fieldVerifyToken   = "verify_token"
	fieldGraphVersion  = "graph_version"

	// Twilio (transport "twilio").
	fieldAccountSID          = "account_sid"
	fieldAuthToken           = "auth_token"
	fieldFrom                = "from"
	fieldMessagingServiceSID = "messaging_service_sid"
	fieldStatusCallback      = "status_callback"
)

// The values of the transport setting. They are matched exactly, as the
// gateway matches them when it picks the webhook variant
// (provider.WebhookSpec.For): "Twilio" is not "twilio".
const (
	transportCloud  = "cloud"
	transportTwilio = "twilio"
)

// whatsappProvider implements messaging.Provider and
// provider.WebhookParser over two transports chosen per tenant. It keeps
// no tenant configuration: every call reads the request's Tenant. Its only
// state is the in-process memory of recent sends, which makes a retried
// Send with the same idempotency key return the first receipt. It is safe
// for concurrent use.
//
// Neither the Cloud API nor Twilio takes an idempotency key, so the plugin
// remembers the receipt of each successful send for an hour
// (idem.DefaultTTL), per process, keyed by tenant, transport, sending
// account and the gateway's idempotency key. A retry inside that window
// gets the first receipt instead of a second message. The memory is
// bounded (idem.DefaultMax entries, the oldest dropped first) and lost
// when the plugin restarts; the gateway's own idempotency record is what
// guarantees one Send per key, this is a second line of defence.
type whatsappProvider struct {
	sends *idem.Memo[messaging.Receipt]
}

var (
	_ messaging.Provider     = (*whatsappProvider)(nil)
	_ provider.WebhookParser = (*whatsappProvider)(nil)
)

func newProvider() *whatsappProvider {
	return &whatsappProvider{sends: idem.New[messaging.Receipt](idem.Options{Name: "whatsapp"})}
}

// Info describes the plugin. It is constant apart from the build's version.
//
// Webhooks: a Cloud API tenant's webhooks are signed by Meta
// (X-Hub-Signature-256 with the app secret) and subscribed with Meta's GET
// handshake; a Twilio tenant's are signed by Twilio (X-Twilio-Signature
// with the auth token over the exact public URL). The transport setting
// selects the variant.
//
// Deduplication: one Meta POST may batch several statuses and messages,
// and Meta may batch them differently when it redelivers, so no single
// JSON path identifies a notification; the Cloud API spec keeps the
// default (the SHA-256 of the body: byte-identical redeliveries are stored
// once) and each event carries a stable ID (wamid + status) on which the
// gateway deduplicates events. Twilio posts one message status per
// request, keyed by MessageSid + MessageStatus; an inbound message has no
// MessageStatus, so it falls back to the body's SHA-256.
func (*whatsappProvider) Info() provider.Info {
	return provider.Info{
		Name:    "whatsapp",
		Version: version,
		Fields: []provider.Field{
			{Name: fieldTransport, Doc: `"cloud" (Meta WhatsApp Cloud API, default) or "twilio" (Twilio Messages API, WhatsApp and SMS)`},
			{Name: provider.BaseURLField, Doc: "API host; default " + cloudHost + " (cloud) or " + twilioHost + " (twilio)"},
			{Name: fieldPhoneNumberID, Doc: "cloud: the WhatsApp Business phone number id that sends"},
			{Name: fieldAccessToken, Secret: true, Doc: "cloud: system-user or app access token (Bearer)"},
			{Name: fieldAppSecret, Secret: true, Doc: "cloud: Meta app secret, verifies X-Hub-Signature-256"},
			{Name: fieldVerifyToken, Secret: true, Doc: "cloud: token Meta echoes in the webhook subscription handshake"},
			{Name: fieldGraphVersion, Doc: "cloud: Graph API version; default " + defaultGraphVersion},
			{Name: fieldAccountSID, Doc: "twilio: account SID (AC…)"},
			{Name: fieldAuthToken, Secret: true, Doc: "twilio: auth token; basic auth and X-Twilio-Signature key"},
			{Name: fieldFrom, Doc: `twilio: E.164 sender, e.g. +14155238886 (sent as "whatsapp:+…" for WhatsApp)`},
			{Name: fieldMessagingServiceSID, Doc: "twilio: optional Messaging Service SID (MG…), sent as MessagingServiceSid"},
			{Name: fieldStatusCallback, Doc: "twilio: optional StatusCallback URL per message, normally {public_url}/webhooks/whatsapp/{tenant}"},
		},
		Webhook: &provider.WebhookSpec{
			Scheme:           provider.SchemeMetaSHA256,
			SecretField:      fieldAppSecret,
			Handshake:        provider.HandshakeMeta,
			VerifyTokenField: fieldVerifyToken,
			VariantSetting:   fieldTransport,
			Variants: map[string]*provider.WebhookSpec{
				transportTwilio: {
					Scheme:      provider.SchemeTwilio,
					SecretField: fieldAuthToken,
					DedupKey:    []string{"form:" + twParamMessageSID, "form:" + twParamMessageStatus},
				},
			},
		},
	}
}

// transportOf returns the tenant's transport: "cloud" when unset. Any other
// value is KindInvalid.
func transportOf(t provider.Tenant) (string, error) {
	switch v := t.Setting(fieldTransport); v {
	case "", transportCloud:
		return transportCloud, nil
	case transportTwilio:
		return transportTwilio, nil
	default:
		return "", provider.Invalid(fmt.Errorf("whatsapp: %s %q must be %q or %q", fieldTransport, v, transportCloud, transportTwilio))
	}
}

// e164 is an E.164 number: a plus, a non-zero digit and 6 to 14 more.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// sender is one transport bound to one tenant's credentials.
type sender interface {
	// account identifies the sending account (phone number id, account
	// SID) for the idempotency memo.
	account() string
	send(ctx context.Context, req messaging.SendRequest) (messaging.Receipt, error)
}

// Send sends one WhatsApp message (either transport) or SMS (Twilio only).
//
// Content: a Template is sent as a Meta template on the Cloud API (name,
// language and the Params as ordered body parameters); on Twilio the
// rendered Text is sent as Body, so a template send needs Text there. A
// message without Template is the Text. Attachments, Subject and HTML are
// not supported (attachments are KindUnsupported, the others are
// ignored). The 24-hour customer-service window is the gateway's concern.
//
// Idempotency: neither API takes an idempotency key, so a successful
// receipt is remembered in process for an hour per tenant, account and key
// (see whatsappProvider); a retry gets it back without a second send, and the same
// key with a different message is KindInvalid. An empty key is never
// remembered.
func (p *whatsappProvider) Send(ctx context.Context, req messaging.SendRequest) (messaging.Receipt, error) {
	tr, err := transportOf(req.Tenant)
	if err != nil {
		return messaging.Receipt{}, err
	}
	if req.Channel == "" {
		req.Channel = messaging.ChannelWhatsApp
	}
	if err := validate(tr, req); err != nil {
		return messaging.Receipt{}, err
	}
	var s sender
	if tr == transportTwilio {
		s, err = newTwilioClient(req.Tenant)
	} else {
		s, err = newCloudClient(req.Tenant)
	}
	if err != nil {
		return messaging.Receipt{}, err
	}
	if req.IdempotencyKey == "" {
		return s.send(ctx, req)
	}
	key := strings.Join([]string{req.Tenant.ID(), tr, s.account(), req.IdempotencyKey}, "\x00")
	return p.sends.Do(ctx, key, fingerprint(req), func() (messaging.Receipt, error) { return s.send(ctx, req) })
}

// validate checks what the plugin can decide without calling the
// provider.
func validate(tr string, req messaging.SendRequest) error {
	switch req.Channel {
	case messaging.ChannelWhatsApp:
	case messaging.ChannelSMS:
		if tr != transportTwilio {
			return fmt.Errorf("whatsapp: sms needs the twilio transport (tenant uses %q): %w", tr, provider.ErrUnsupported)
		}
	default:
		return fmt.Errorf("whatsapp: channel %q: %w", req.Channel, provider.ErrUnsupported)
	}
	if len(req.Attachments) > 0 {
		return fmt.Errorf("whatsapp: attachments: %w", provider.ErrUnsupported)
	}
	if !e164.MatchString(req.To) {
		return provider.Invalid(fmt.Errorf("whatsapp: recipient %q is not an E.164 number (+ and 7 to 15 digits)", clip(req.To)))
	}
	switch t := req.Template; {
	case t != nil && tr == transportCloud:
		if strings.TrimSpace(t.Name) == "" || strings.TrimSpace(t.Language) == "" {
			return provider.Invalid(errors.New("whatsapp: a template needs a name and a language"))
		}
		for i, p := range t.Params {
			if p == "" {
				return provider.Invalid(fmt.Errorf("whatsapp: template parameter %d is empty", i+1))
			}
		}
	case t != nil && req.Text == "":
		return provider.Invalid(errors.New("whatsapp: the twilio transport sends a template as its rendered text, and the text is empty"))
	case req.Text == "":
		return provider.Invalid(errors.New("whatsapp: the message has no text and no template"))
	}
	return nil
}

// fingerprint describes what a send delivers, so an idempotency key reused
// for another message is caught.
func fingerprint(req messaging.SendRequest) string {
	h := sha256.New()
	write := func(s string) { fmt.Fprintf(h, "%d:%s", len(s), s) }
	write(string(req.Channel))
	write(req.To)
	write(req.Text)
	if t := req.Template; t != nil {
		write(t.Name)
		write(t.Language)
		for _, p := range t.Params {
			write(p)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ParseWebhook maps a verified webhook of the tenant's transport to
// message.* events (see parseCloudWebhook and parseTwilioWebhook). A body
// that cannot be read is KindInvalid; notifications without a catalog
// event yield no event and a nil error. It keeps nothing and is safe for
// concurrent use.
func (*whatsappProvider) ParseWebhook(ctx context.Context, req provider.WebhookRequest) ([]provider.Event, error) {
	tr, err := transportOf(req.Tenant)
	if err != nil {
		return nil, err
	}
	if tr == transportTwilio {
		return parseTwilioWebhook(ctx, req)
	}
	return parseCloudWebhook(ctx, req)
}

// maxClip bounds provider-supplied text quoted in errors and logs.
const maxClip = 64

// clip shortens s for an error or a log line (on a rune boundary).
func clip(s string) string {
	if len(s) > maxClip {
		return httpapi.Clip(s, maxClip) + "…"
	}
	return s
}
