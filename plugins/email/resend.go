package main

// This file holds every Resend wire name the plugin uses (providers.md §9):
// the POST /emails request, answer and error bodies, the Idempotency-Key
// header, the Svix delivery id header and the webhook event objects.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/provider/httpapi"
)

const (
	resendBaseURL    = "https://api.resend.com"
	resendEmailsPath = "/emails"
	// resendIdempotencyHeader carries the gateway's idempotency key.
	// Resend accepts 1 to 256 characters and remembers a key for 24 hours
	// [recall / unverified].
	resendIdempotencyHeader = "Idempotency-Key"
	maxResendIdempotencyKey = 256
	// resendIDHeader is Svix's delivery id, the same on every retry of a
	// webhook. Svix libraries fall back to Standard Webhooks' webhook-id.
	resendIDHeader         = "svix-id"
	resendFallbackIDHeader = "webhook-id"
	// resendTagMessageID is the tag carrying the gateway's message id; tags
	// come back in every webhook's data.tags.
	resendTagMessageID = "pipecore_message_id"
)

// resendTagValue is what Resend accepts as a tag value: ASCII letters,
// digits, underscores and dashes, at most 256 characters.
var resendTagValue = regexp.MustCompile(`^[A-Za-z0-9_-]{1,256}$`)

// The Resend error names the plugin classifies differently from the HTTP
// status alone.
const (
	rsMissingAPIKey        = "missing_api_key"
	rsInvalidAPIKey        = "invalid_api_key"
	rsRestrictedAPIKey     = "restricted_api_key"
	rsConcurrentIdempotent = "concurrent_idempotent_requests"
)

// rsEmail is a POST /emails body.
type rsEmail struct {
	From        string         `json:"from"`
	To          []string       `json:"to"`
	Subject     string         `json:"subject"`
	Text        string         `json:"text,omitempty"`
	HTML        string         `json:"html,omitempty"`
	ReplyTo     string         `json:"reply_to,omitempty"`
	Attachments []rsAttachment `json:"attachments,omitempty"`
	Tags        []rsTag        `json:"tags,omitempty"`
}

type rsAttachment struct {
	Filename    string `json:"filename"`
	Content     string `json:"content"` // base64
	ContentType string `json:"content_type,omitempty"`
}

type rsTag struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// rsSent is the 200 answer to POST /emails.
type rsSent struct {
	ID string `json:"id"`
}

// rsError is Resend's error body.
type rsError struct {
	StatusCode int    `json:"statusCode"`
	Name       string `json:"name"`
	Message    string `json:"message"`
}

// resendBody builds the POST /emails body for m. Addresses are sent as
// written ("Name <email>" or a bare address); Resend parses them itself.
func resendBody(m message) ([]byte, error) {
	body := rsEmail{From: m.fromRaw, To: []string{m.toRaw}, Subject: m.subject, Text: m.text, HTML: m.html}
	if m.replyTo != nil {
		body.ReplyTo = m.replyRaw
	}
	for _, a := range m.files {
		body.Attachments = append(body.Attachments, rsAttachment{
			Filename: a.Filename, Content: base64.StdEncoding.EncodeToString(a.Content), ContentType: a.ContentType,
		})
	}
	if resendTagValue.MatchString(m.messageID) {
		body.Tags = []rsTag{{Name: resendTagMessageID, Value: m.messageID}}
	}
	return json.Marshal(body)
}

// resendIdempotencyKey returns key as Resend accepts it: unchanged up to
// 256 characters, else "sha256-" and the hex SHA-256 of key.
func resendIdempotencyKey(key string) string {
	if len(key) <= maxResendIdempotencyKey {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "sha256-" + hex.EncodeToString(sum[:])
}

// sendResend posts m to /emails with the idempotency key as
// Idempotency-Key; the answer's id is the receipt id.
func sendResend(ctx context.Context, a account, m message, idempotencyKey string) (messaging.Receipt, error) {
	const op = "send"
	body, err := resendBody(m)
	if err != nil {
		return messaging.Receipt{}, provider.Invalid(fmt.Errorf("email: resend: encode message: %w", err))
	}
	var extra http.Header
	if idempotencyKey != "" {
		extra = http.Header{resendIdempotencyHeader: {resendIdempotencyKey(idempotencyKey)}}
	}
	resp, err := resendAPI.Do(ctx, a.request(op, resendEmailsPath, extra, body), nil, resendError)
	if err != nil {
		return messaging.Receipt{}, err
	}
	var sent rsSent
	if err := json.Unmarshal(resp.Body, &sent); err != nil || strings.TrimSpace(sent.ID) == "" {
		if idempotencyKey != "" { // a retry with the key cannot send twice
			return messaging.Receipt{}, a.fail(ctx, op, resp.Status, provider.Retryable(fmt.Errorf("email: resend: %s: HTTP %d without an email id", op, resp.Status)))
		}
		return messaging.Receipt{}, a.fail(ctx, op, resp.Status, provider.WithCode(provider.Permanent(fmt.Errorf("email: resend: %s: HTTP %d without an email id; the email may have been sent, not retrying", op, resp.Status)), "missing_email_id"))
	}
	return messaging.Receipt{ID: sent.ID, Status: messaging.StatusQueued}, nil
}

// resendError classifies a non-2xx POST /emails answer. Resend answers 403
// both for a bad key (invalid_api_key) and for requests it will not send
// (validation_error: unverified domain, testing-only recipients), so:
// 401, and 403 named missing/invalid/restricted_api_key (or unnamed), are
// KindUnauthorized; another 403 is KindInvalid; 409
// concurrent_idempotent_requests is KindRetryable; everything else follows
// provider.FromHTTPStatus (429 rate limited with Retry-After, 5xx
// retryable, other 4xx invalid). Code is Resend's error name; the message
// quotes it and Resend's message.
func resendError(resp *httpapi.Response) error {
	var eb rsError
	_ = json.Unmarshal(resp.Body, &eb) // a non-JSON body leaves name and message empty
	name := clip(resp.Request.Redact(strings.TrimSpace(eb.Name)))
	r := httpapi.Refusal{Code: name, Message: name}
	if msg := clip(resp.Request.Redact(strings.TrimSpace(eb.Message))); msg != "" && name != "" {
		r.Message = name + ": " + msg
	} else if msg != "" {
		r.Message = msg
	}
	switch {
	case resp.Status == http.StatusForbidden && name != "" && name != rsMissingAPIKey && name != rsInvalidAPIKey && name != rsRestrictedAPIKey:
		r.Kind = provider.KindInvalid
	case resp.Status == http.StatusConflict && name == rsConcurrentIdempotent:
		r.Kind = provider.KindRetryable
	}
	return resendAPI.Refuse(resp, r)
}

// The Resend event types the plugin maps; every other one (email.sent,
// email.scheduled, email.delivery_delayed, email.clicked, email.received,
// contact.*, domain.*, ...) yields no event. email.sent only confirms the
// API accepted the email, which Send's receipt already says, and the
// catalog has no "email.sent".
const (
	rsEventDelivered  = "email.delivered"
	rsEventBounced    = "email.bounced"
	rsEventFailed     = "email.failed"
	rsEventSuppressed = "email.suppressed"
	rsEventOpened     = "email.opened"
	rsEventComplained = "email.complained"
)

var resendEventTypes = map[string]string{
	rsEventDelivered:  catalogDelivered,
	rsEventBounced:    catalogBounced,
	rsEventFailed:     catalogBounced,
	rsEventSuppressed: catalogBounced,
	rsEventOpened:     catalogOpened,
	rsEventComplained: catalogComplained,
}

// rsEvent is a Resend webhook body.
type rsEvent struct {
	Type      string          `json:"type"`
	CreatedAt string          `json:"created_at"`
	Data      json.RawMessage `json:"data"`
}

// rsEmailData is the data of an email.* event.
type rsEmailData struct {
	EmailID string          `json:"email_id"`
	To      json.RawMessage `json:"to"`   // a list of addresses (a string is accepted)
	Tags    json.RawMessage `json:"tags"` // an object name → value (a [{name,value}] list is accepted)
	Bounce  *struct {
		Message string `json:"message"`
		SubType string `json:"subType"`
		Type    string `json:"type"`
	} `json:"bounce"`
	Failed *struct {
		Reason string `json:"reason"`
	} `json:"failed"`
	Suppressed *struct {
		Message string `json:"message"`
		Type    string `json:"type"`
	} `json:"suppressed"`
}

// parseResend maps one Resend webhook: email.delivered → email.delivered;
// email.bounced, email.failed and email.suppressed → email.bounced with
// reason (bounce.message, failed.reason or suppressed.message);
// email.opened → email.opened; email.complained → email.complained.
//
// Subject is data.email_id (Send's receipt id). ID is "<svix-id>:<type>"
// (svix-id, or webhook-id, is the same on every retry); without either
// header it is "resend_" + a SHA-256 of the body, then ":<type>".
// OccurredAt is created_at. Data has provider_message_id, to (data.to
// joined with ", "), message_id (the pipecore_message_id tag, when
// present) and reason.
//
// A body that is not a JSON object with a string type, or a mapped event
// without data.email_id, is KindInvalid.
func parseResend(ctx context.Context, headers map[string][]string, body []byte) ([]provider.Event, error) {
	var ev rsEvent
	if err := json.Unmarshal(body, &ev); err != nil || !bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
		return nil, provider.Invalid(fmt.Errorf("%w: resend: body is not a JSON event object", errMalformedWebhook))
	}
	if ev.Type == "" {
		return nil, provider.Invalid(fmt.Errorf("%w: resend: event has no type", errMalformedWebhook))
	}
	log := provider.Log(ctx)
	typ, mapped := resendEventTypes[ev.Type]
	if !mapped {
		log.Debug("resend event ignored", "type", clip(ev.Type))
		return nil, nil
	}
	var d rsEmailData
	if err := json.Unmarshal(ev.Data, &d); err != nil || !bytes.HasPrefix(bytes.TrimSpace(ev.Data), []byte("{")) {
		return nil, provider.Invalid(fmt.Errorf("%w: resend: %s: data is not an email object", errMalformedWebhook, ev.Type))
	}
	subject := strings.TrimSpace(d.EmailID)
	if subject == "" {
		return nil, provider.Invalid(fmt.Errorf("%w: resend: %s: no data.email_id", errMalformedWebhook, ev.Type))
	}
	delivery := header(headers, resendIDHeader)
	if delivery == "" {
		delivery = header(headers, resendFallbackIDHeader)
	}
	if delivery == "" {
		sum := sha256.Sum256(body)
		delivery = "resend_" + hex.EncodeToString(sum[:16])
	}
	occurred, okTime := resendTime(ev.CreatedAt)
	if !okTime {
		log.Warn("resend event with an unreadable created_at; using the receipt time", "type", ev.Type, "email_id", clip(subject))
	}
	out := emailData{ProviderMessageID: subject, To: strings.Join(stringList(d.To), ", "), MessageID: resendTag(d.Tags, resendTagMessageID)}
	if typ == catalogBounced {
		out.Reason = resendReason(ev.Type, d)
	}
	e, err := out.event(delivery+":"+ev.Type, typ, subject, occurred)
	if err != nil {
		return nil, err
	}
	return []provider.Event{e}, nil
}

// resendReason is the reason of an email.bounced event made from a
// bounced, failed or suppressed Resend event.
func resendReason(typ string, d rsEmailData) string {
	first := func(vs ...string) string {
		for _, v := range vs {
			if v = strings.TrimSpace(v); v != "" {
				return v
			}
		}
		return ""
	}
	var r string
	switch typ {
	case rsEventBounced:
		if b := d.Bounce; b != nil {
			r = first(b.Message, strings.Trim(b.Type+" "+b.SubType, " "))
		}
		r = first(r, "bounced")
	case rsEventFailed:
		if f := d.Failed; f != nil {
			r = f.Reason
		}
		r = first(r, "failed")
	case rsEventSuppressed:
		if s := d.Suppressed; s != nil {
			r = first(s.Message, s.Type)
		}
		r = first(r, "suppressed")
	}
	return r
}

// resendTime parses Resend's ISO 8601 created_at. An empty value is the
// zero time and ok; an unreadable one is the zero time and not ok.
func resendTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, true
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999-07", "2006-01-02 15:04:05.999999Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// stringList reads a JSON list of strings, or one string.
func stringList(raw json.RawMessage) []string {
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		return many
	}
	var one string
	if json.Unmarshal(raw, &one) == nil && one != "" {
		return []string{one}
	}
	return nil
}

// resendTag returns the tag called name from data.tags, an object
// (name → value) or a list of {name, value}.
func resendTag(raw json.RawMessage, name string) string {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) == nil {
		return stringValue(obj[name])
	}
	var list []rsTag
	if json.Unmarshal(raw, &list) == nil {
		for _, t := range list {
			if t.Name == name {
				return t.Value
			}
		}
	}
	return ""
}
