// Package messaging defines the capability implemented by messaging
// providers (WhatsApp Cloud API, Twilio, SendGrid, Resend, ...).
package messaging

import (
	"context"

	"github.com/pipecore/pipecore/sdk/provider"
)

// Provider sends messages. Send must be safe for concurrent use and must
// honour ctx's deadline.
type Provider interface {
	provider.Provider

	// Send hands one message to the provider. Acceptance is not delivery:
	// delivery and read status arrive later as events via ParseWebhook.
	// The same IdempotencyKey must never send twice.
	Send(ctx context.Context, req SendRequest) (Receipt, error)
}

// Channel is how a message travels.
type Channel string

// The channels the gateway knows.
const (
	ChannelWhatsApp Channel = "whatsapp"
	ChannelSMS      Channel = "sms"
	ChannelEmail    Channel = "email"
)

// Status is the normalised state of a message.
type Status string

// The message statuses of the gateway's catalog.
const (
	StatusQueued    Status = "queued"
	StatusSent      Status = "sent"
	StatusDelivered Status = "delivered"
	StatusRead      Status = "read"
	StatusFailed    Status = "failed"
	StatusReceived  Status = "received"
)

// Template names a provider-side template (a Meta-approved WhatsApp
// template) with its ordered parameters.
type Template struct {
	Name     string
	Language string
	Params   []string
}

// Attachment is a file sent with a message.
type Attachment struct {
	Filename    string
	ContentType string
	Content     []byte
}

// SendRequest is one message to send.
type SendRequest struct {
	Tenant         provider.Tenant
	IdempotencyKey string
	MessageID      string // the gateway's id ("msg_…")
	Channel        Channel
	To             string // E.164 phone or RFC 5322 address
	Template       *Template
	Subject        string
	Text           string
	HTML           string
	Attachments    []Attachment
}

// Receipt is the provider's acknowledgement of a send.
type Receipt struct {
	ID     string // the provider's message id; matches later events' Subject
	Status Status
}
