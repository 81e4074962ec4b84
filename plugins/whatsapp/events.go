package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/provider"
)

// The catalog types the plugin emits (EVENTS.md, Messages).
const (
	eventSent      = "message.sent"
	eventDelivered = "message.delivered"
	eventRead      = "message.read"
	eventFailed    = "message.failed"
	eventReceived  = "message.received"
)

// statusEvents maps a normalised message status to its catalog type.
var statusEvents = map[messaging.Status]string{
	messaging.StatusSent:      eventSent,
	messaging.StatusDelivered: eventDelivered,
	messaging.StatusRead:      eventRead,
	messaging.StatusFailed:    eventFailed,
}

// errMalformedWebhook is in the chain of every KindInvalid error
// ParseWebhook returns: the notification cannot be read.
var errMalformedWebhook = errors.New("whatsapp: malformed webhook")

func malformed(format string, args ...any) error {
	return provider.Invalid(fmt.Errorf("%w: "+format, append([]any{errMalformedWebhook}, args...)...))
}

// messageData is the Data of a message.* catalog event. Fields the plugin
// does not know are omitted, never sent empty; the gateway adds
// message_id, tenant_id, reference and the common fields.
type messageData struct {
	ProviderMessageID string     `json:"provider_message_id"`
	Channel           string     `json:"channel"`
	Status            string     `json:"status"`
	From              string     `json:"from,omitempty"`
	To                string     `json:"to,omitempty"`
	Text              string     `json:"text,omitempty"`
	Media             *mediaData `json:"media,omitempty"`
	ReplyTo           string     `json:"reply_to,omitempty"`
	Error             *errorData `json:"error,omitempty"`
}

// mediaData is an inbound message's attachment: a provider media id (Cloud
// API, fetched with GET /{media-id}) or a URL (Twilio).
type mediaData struct {
	Type     string `json:"type"`
	ID       string `json:"id,omitempty"`
	URL      string `json:"url,omitempty"`
	MimeType string `json:"mime_type,omitempty"`
}

// errorData is a failed message's provider error.
type errorData struct {
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// newEvent builds one event from its parts.
func newEvent(id, typ, subject string, at time.Time, d messageData) (provider.Event, error) {
	data, err := json.Marshal(d)
	if err != nil {
		return provider.Event{}, fmt.Errorf("whatsapp: encode %s event: %w", typ, err)
	}
	return provider.Event{ID: id, Type: typ, Subject: subject, OccurredAt: at, Data: data}, nil
}

// plusDigits returns the E.164 spelling of a number the Cloud API writes
// as bare digits ("56912345678", sometimes "+56 9 1234 5678"): a plus and
// the digits. A value with no digits, or with letters (a business-scoped
// user id), is returned unchanged.
func plusDigits(s string) string {
	var b strings.Builder
	b.WriteByte('+')
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' || r == ' ' || r == '-' || r == '(' || r == ')' || r == '.':
		default:
			return s
		}
	}
	if b.Len() == 1 {
		return s
	}
	return b.String()
}
