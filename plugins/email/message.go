package main

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/provider"
)

// message is a validated email, independent of the transport.
type message struct {
	from      *mail.Address
	fromRaw   string        // the from setting as configured (trimmed)
	replyTo   *mail.Address // nil when unset
	replyRaw  string        // the reply_to setting as configured (trimmed)
	to        *mail.Address
	toRaw     string // To as given (trimmed)
	subject   string
	text      string
	html      string
	files     []messaging.Attachment
	messageID string // the gateway's id, echoed back by the provider's events
}

// errNoContent is in the chain of the error for a message without body.
var errNoContent = errors.New("email: a message needs Text or HTML")

// newMessage validates req and the tenant's from / reply_to settings.
// Every failure is KindInvalid, except a template-only request, which is
// KindUnsupported.
func newMessage(req messaging.SendRequest) (message, error) {
	t := req.Tenant
	fromRaw := strings.TrimSpace(t.Setting(fieldFrom))
	if fromRaw == "" {
		return message{}, provider.Invalid(fmt.Errorf("email: tenant %s has no %s setting", t.ID(), fieldFrom))
	}
	from, err := mail.ParseAddress(fromRaw)
	if err != nil {
		return message{}, provider.Invalid(fmt.Errorf("email: %s setting %q is not an RFC 5322 address: %v", fieldFrom, clip(fromRaw), err))
	}
	m := message{from: from, fromRaw: fromRaw, subject: req.Subject, text: req.Text, html: req.HTML, files: req.Attachments, messageID: req.MessageID}
	if raw := strings.TrimSpace(t.Setting(fieldReplyTo)); raw != "" {
		m.replyRaw = raw
		if m.replyTo, err = mail.ParseAddress(raw); err != nil {
			return message{}, provider.Invalid(fmt.Errorf("email: %s setting %q is not an RFC 5322 address: %v", fieldReplyTo, clip(raw), err))
		}
	}
	to := strings.TrimSpace(req.To)
	if to == "" {
		return message{}, provider.Invalid(errors.New("email: To is empty"))
	}
	m.toRaw = to
	if m.to, err = mail.ParseAddress(to); err != nil {
		return message{}, provider.Invalid(fmt.Errorf("email: To %q is not one RFC 5322 address: %v", clip(to), err))
	}
	if req.Template != nil && (m.subject == "" || (m.text == "" && m.html == "")) {
		return message{}, fmt.Errorf("email: provider-side template %q: %w: the gateway renders templates into Subject, Text and HTML", clip(req.Template.Name), provider.ErrUnsupported)
	}
	switch {
	case strings.TrimSpace(m.subject) == "":
		return message{}, provider.Invalid(errors.New("email: Subject is empty"))
	case strings.ContainsAny(m.subject, "\r\n"):
		return message{}, provider.Invalid(errors.New("email: Subject contains a line break"))
	case m.text == "" && m.html == "":
		return message{}, provider.Invalid(errNoContent)
	}
	for i, a := range m.files {
		switch {
		case strings.TrimSpace(a.Filename) == "":
			return message{}, provider.Invalid(fmt.Errorf("email: attachment %d has no filename", i))
		case strings.ContainsAny(a.Filename, "\r\n\"") || strings.ContainsAny(a.ContentType, "\r\n;"):
			return message{}, provider.Invalid(fmt.Errorf("email: attachment %d has a line break or quote in its filename or content type", i))
		case len(a.Content) == 0:
			return message{}, provider.Invalid(fmt.Errorf("email: attachment %d (%s) is empty", i, clip(a.Filename)))
		}
	}
	return m, nil
}
