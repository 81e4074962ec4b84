package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/textproto"
	"strings"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
)

// The catalog types the plugin emits (EVENTS.md, Messages).
const (
	catalogDelivered  = "email.delivered"
	catalogBounced    = "email.bounced"
	catalogOpened     = "email.opened"
	catalogComplained = "email.complained"
)

// errMalformedWebhook is in the chain of every error ParseWebhook returns
// for a body it cannot read. Such errors are KindInvalid, so the gateway
// quarantines the webhook instead of retrying.
var errMalformedWebhook = errors.New("email: malformed webhook")

// ParseWebhook turns a verified SendGrid or Resend webhook into catalog
// events; which one is decided by the tenant's transport setting, the same
// setting that chose how core verified it. See parseSendGrid and
// parseResend for the mappings. An unknown transport or an unreadable body
// is KindInvalid; event kinds outside the catalog yield no event and a nil
// error.
//
// ParseWebhook makes no network call, keeps nothing and is safe for
// concurrent use. Error messages and log lines quote ids and event names
// only, never addresses or content.
func (*emailProvider) ParseWebhook(ctx context.Context, req provider.WebhookRequest) ([]provider.Event, error) {
	tr, err := transportOf(req.Tenant)
	if err != nil {
		return nil, err
	}
	if tr == transportResend {
		return parseResend(ctx, req.Headers, req.Body)
	}
	return parseSendGrid(ctx, req.Body)
}

// emailData is the Data of an email.* event: the catalog fields the
// plugin knows. message_id is the gateway's id as the provider echoed it
// back (SendGrid custom arg, Resend tag); the gateway must check that it
// belongs to the tenant before trusting it.
type emailData struct {
	MessageID         string `json:"message_id,omitempty"`
	ProviderMessageID string `json:"provider_message_id"`
	To                string `json:"to,omitempty"`
	Reason            string `json:"reason,omitempty"`
}

// event builds the catalog event.
func (d emailData) event(id, typ, subject string, occurred time.Time) (provider.Event, error) {
	data, err := json.Marshal(d)
	if err != nil {
		return provider.Event{}, fmt.Errorf("email: encode %s event %q: %w", typ, clip(id), err)
	}
	return provider.Event{ID: id, Type: typ, Subject: subject, OccurredAt: occurred, Data: data}, nil
}

// header returns the first value of the header name in h, whose keys are
// canonical as the gateway hands them over; other spellings are found too.
func header(h map[string][]string, name string) string {
	if vs := h[textproto.CanonicalMIMEHeaderKey(name)]; len(vs) > 0 {
		return vs[0]
	}
	for k, vs := range h {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}
