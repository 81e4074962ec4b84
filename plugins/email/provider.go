package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"

	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/provider/httpapi"
	"github.com/pipecore/pipecore/sdk/provider/idem"
)

// The per-tenant settings and credentials the plugin reads.
const (
	fieldTransport        = "transport"
	fieldFrom             = "from"
	fieldReplyTo          = "reply_to"
	fieldAPIKey           = "api_key"
	fieldWebhookPublicKey = "webhook_public_key"
	fieldWebhookSecret    = "webhook_secret"
)

// The values of the transport setting. They are compared exactly (the
// gateway picks the webhook variant by the same exact value).
const (
	transportSendGrid = "sendgrid"
	transportResend   = "resend"
)

// emailProvider implements messaging.Provider (ChannelEmail only) and
// provider.WebhookParser over SendGrid and Resend. It keeps no tenant
// configuration: every call reads the request's Tenant. Its only state is
// the in-process memory of recent SendGrid sends. It is safe for
// concurrent use.
//
// SendGrid has no idempotency header, so the plugin remembers each
// successful SendGrid send for an hour (idem.DefaultTTL), per process,
// keyed by the account (tenant, base URL, API key digest: account.scope)
// and the gateway's idempotency key. A retry inside that window gets the
// first receipt instead of a second email. After a plugin restart the
// gateway's own idempotency record is what protects against duplicates.
type emailProvider struct {
	sends *idem.Memo[messaging.Receipt]
}

var (
	_ messaging.Provider     = (*emailProvider)(nil)
	_ provider.WebhookParser = (*emailProvider)(nil)
)

func newProvider() *emailProvider {
	return &emailProvider{sends: idem.New[messaging.Receipt](idem.Options{Name: "email: sendgrid"})}
}

// Info describes the plugin. It is constant apart from the build's version.
//
// Webhooks: SendGrid's Signed Event Webhook (ECDSA, verified by core with
// the tenant's webhook_public_key) unless the tenant's transport is
// "resend", whose webhooks are Svix-signed with webhook_secret and
// deduplicated on svix-id. SendGrid posts batches (a JSON array) and has no
// delivery id header, so its webhooks are deduplicated on the body's
// SHA-256 (byte-identical redeliveries); each event's sg_event_id becomes
// Event.ID for finer deduplication downstream.
func (*emailProvider) Info() provider.Info {
	return provider.Info{
		Name:    "email",
		Version: version,
		Fields: []provider.Field{
			{Name: fieldTransport, Doc: `"sendgrid" (default) or "resend"`},
			{Name: fieldFrom, Required: true, Doc: `sender, an RFC 5322 address such as "Acme <no-reply@acme.cl>" on a domain verified at the provider`},
			{Name: fieldReplyTo, Doc: "optional Reply-To address (RFC 5322)"},
			{Name: fieldAPIKey, Secret: true, Required: true, Doc: "SendGrid API key (SG.…, Mail Send permission) or Resend API key (re_…), sent as a Bearer token"},
			{Name: fieldWebhookPublicKey, Secret: true, Doc: "sendgrid: the Signed Event Webhook verification key (base64), from Settings > Mail Settings > Event Webhook"},
			{Name: fieldWebhookSecret, Secret: true, Doc: "resend: the webhook signing secret (whsec_…), from Resend's Webhooks page"},
			{Name: provider.BaseURLField, Doc: "API base URL; default " + sendGridBaseURL + " (sendgrid) or " + resendBaseURL + " (resend)"},
		},
		Webhook: &provider.WebhookSpec{
			Scheme:         provider.SchemeECDSA,
			SecretField:    fieldWebhookPublicKey,
			VariantSetting: fieldTransport,
			Variants: map[string]*provider.WebhookSpec{
				transportResend: {
					Scheme:      provider.SchemeSvix,
					SecretField: fieldWebhookSecret,
					DedupKey:    []string{"header:" + resendIDHeader},
				},
			},
		},
	}
}

// Send hands one email to the tenant's transport and returns the
// provider's message id: SendGrid's X-Message-Id or Resend's email id, the
// Subject of the later email.* events. The receipt's status is queued:
// acceptance is not delivery.
//
// Only ChannelEmail is served; another channel is provider.ErrUnsupported.
// The message needs a valid To (one RFC 5322 address), a Subject without
// line breaks and Text or HTML; attachments need a filename and content.
// Template is not sent: the gateway renders templates into Subject, Text
// and HTML. A request that carries a Template is sent from those fields
// when they are set and is KindUnsupported when they are not.
//
// Idempotency: Resend receives IdempotencyKey as its Idempotency-Key
// header. SendGrid has none, so the plugin remembers each successful send
// for an hour per tenant, key and API key (see emailProvider); reusing a key
// for a different message is KindInvalid.
func (p *emailProvider) Send(ctx context.Context, req messaging.SendRequest) (messaging.Receipt, error) {
	if req.Channel != messaging.ChannelEmail {
		return messaging.Receipt{}, fmt.Errorf("email: channel %q: %w (this plugin sends email only)", req.Channel, provider.ErrUnsupported)
	}
	acct, err := accountOf(req.Tenant)
	if err != nil {
		return messaging.Receipt{}, err
	}
	msg, err := newMessage(req)
	if err != nil {
		return messaging.Receipt{}, err
	}
	switch acct.transport {
	case transportResend:
		return sendResend(ctx, acct, msg, req.IdempotencyKey)
	default:
		return p.sendSendGrid(ctx, acct, msg, req.IdempotencyKey)
	}
}

// account is one tenant's transport, API base URL and key, for one call.
type account struct {
	tenant    string
	transport string
	base      string // scheme://host[/path], no trailing slash
	apiKey    provider.Secret
}

// transportOf returns the tenant's transport: "" means sendgrid; an
// unknown value is KindInvalid.
func transportOf(t provider.Tenant) (string, error) {
	switch v := t.Setting(fieldTransport); v {
	case "", transportSendGrid:
		return transportSendGrid, nil
	case transportResend:
		return transportResend, nil
	default:
		return "", provider.Invalid(fmt.Errorf("email: %s %q must be %q or %q", fieldTransport, clip(v), transportSendGrid, transportResend))
	}
}

// accountOf reads tenant t's transport, base URL and API key. An unknown
// transport or a malformed base_url is KindInvalid; a missing API key is
// KindUnauthorized.
func accountOf(t provider.Tenant) (account, error) {
	tr, err := transportOf(t)
	if err != nil {
		return account{}, err
	}
	a := account{tenant: t.ID(), transport: tr, base: sendGridBaseURL, apiKey: t.Secret(fieldAPIKey)}
	if tr == transportResend {
		a.base = resendBaseURL
	}
	if raw := strings.TrimSpace(t.Setting(provider.BaseURLField)); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return account{}, provider.Invalid(fmt.Errorf("email: %s %q must be an http(s) URL without query or user info", provider.BaseURLField, clip(raw)))
		}
		a.base = strings.TrimSuffix(u.String(), "/")
	}
	if strings.TrimSpace(a.apiKey.Reveal()) == "" {
		return account{}, provider.Unauthorized(fmt.Errorf("email: tenant %s has no %s credential for %s", t.ID(), fieldAPIKey, tr))
	}
	return a, nil
}

// scope identifies the account for per-process state: tenant, transport,
// base URL and a digest of the API key (never the key itself).
func (a account) scope() string {
	sum := sha256.Sum256([]byte(a.apiKey.Reveal()))
	return a.tenant + "\x00" + a.transport + "\x00" + a.base + "\x00" + hex.EncodeToString(sum[:8])
}

// maxClip bounds the length of provider or tenant text quoted in errors
// and logs.
const maxClip = 256

// clip shortens s to maxClip bytes (on a rune boundary).
func clip(s string) string {
	if len(s) <= maxClip {
		return s
	}
	return httpapi.Clip(s, maxClip) + "…"
}
