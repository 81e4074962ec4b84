package main

// This file holds every SendGrid wire name the plugin uses (providers.md
// §8): the Mail Send request and error bodies, the rate-limit headers and
// the Event Webhook's event objects.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/provider/httpapi"
)

const (
	sendGridBaseURL  = "https://api.sendgrid.com"
	sendGridSendPath = "/v3/mail/send"
	// sendGridMessageIDHeader is the Mail Send answer's id of the request,
	// the prefix of every event's sg_message_id.
	sendGridMessageIDHeader = "X-Message-Id"
	// sendGridRateLimitReset is the unix time at which a 429's limit
	// resets [recall / unverified]; used when there is no Retry-After.
	sendGridRateLimitReset = "X-RateLimit-Reset"
	// customArgMessageID is the custom arg carrying the gateway's message
	// id. SendGrid echoes custom args as top-level keys of every event.
	customArgMessageID = "pipecore_message_id"
)

// sgMail is a v3 Mail Send body.
type sgMail struct {
	Personalizations []sgPersonalization `json:"personalizations"`
	From             sgAddress           `json:"from"`
	ReplyTo          *sgAddress          `json:"reply_to,omitempty"`
	Subject          string              `json:"subject"`
	Content          []sgContent         `json:"content"`
	Attachments      []sgAttachment      `json:"attachments,omitempty"`
	CustomArgs       map[string]string   `json:"custom_args,omitempty"`
}

type sgPersonalization struct {
	To []sgAddress `json:"to"`
}

type sgAddress struct {
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
}

type sgContent struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

type sgAttachment struct {
	Content     string `json:"content"` // base64
	Type        string `json:"type,omitempty"`
	Filename    string `json:"filename"`
	Disposition string `json:"disposition"`
}

// sgErrors is SendGrid's error body. field and help are often null.
type sgErrors struct {
	Errors []struct {
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"errors"`
}

// sendGridBody builds the Mail Send body for m. text/plain comes before
// text/html, as SendGrid requires.
func sendGridBody(m message) ([]byte, error) {
	body := sgMail{
		Personalizations: []sgPersonalization{{To: []sgAddress{{Email: m.to.Address, Name: m.to.Name}}}},
		From:             sgAddress{Email: m.from.Address, Name: m.from.Name},
		Subject:          m.subject,
	}
	if m.replyTo != nil {
		body.ReplyTo = &sgAddress{Email: m.replyTo.Address, Name: m.replyTo.Name}
	}
	if m.text != "" {
		body.Content = append(body.Content, sgContent{Type: "text/plain", Value: m.text})
	}
	if m.html != "" {
		body.Content = append(body.Content, sgContent{Type: "text/html", Value: m.html})
	}
	for _, a := range m.files {
		body.Attachments = append(body.Attachments, sgAttachment{
			Content: base64.StdEncoding.EncodeToString(a.Content), Type: a.ContentType, Filename: a.Filename, Disposition: "attachment",
		})
	}
	if m.messageID != "" {
		body.CustomArgs = map[string]string{customArgMessageID: m.messageID}
	}
	return json.Marshal(body)
}

// sendSendGrid posts m to /v3/mail/send. A 202 answer's X-Message-Id is
// the receipt id. With an idempotency key the send goes through p.sends.
func (p *emailProvider) sendSendGrid(ctx context.Context, a account, m message, idempotencyKey string) (messaging.Receipt, error) {
	const op = "send"
	body, err := sendGridBody(m)
	if err != nil {
		return messaging.Receipt{}, provider.Invalid(fmt.Errorf("email: sendgrid: encode message: %w", err))
	}
	send := func() (messaging.Receipt, error) {
		resp, err := sendGridAPI.Do(ctx, a.request(op, sendGridSendPath, nil, body), nil, sendGridError)
		if err != nil {
			return messaging.Receipt{}, err
		}
		id := strings.TrimSpace(resp.Header.Get(sendGridMessageIDHeader))
		if id == "" {
			// The message was accepted: retrying would send it twice.
			err := provider.WithCode(provider.Permanent(fmt.Errorf("email: sendgrid: %s: HTTP %d without %s; the message may have been sent, not retrying", op, resp.Status, sendGridMessageIDHeader)), "missing_message_id")
			return messaging.Receipt{}, a.fail(ctx, op, resp.Status, err)
		}
		return messaging.Receipt{ID: id, Status: messaging.StatusQueued}, nil
	}
	if idempotencyKey == "" {
		return send()
	}
	sum := sha256.Sum256(body)
	return p.sends.Do(ctx, a.scope()+"\x00"+idempotencyKey, hex.EncodeToString(sum[:]), send)
}

// sendGridError classifies a non-2xx Mail Send answer with
// provider.FromHTTPStatus (401/403 unauthorized, 429 rate limited, 5xx
// retryable, other 4xx invalid). The message quotes SendGrid's error
// messages (with their fields); Code is the first error's field. The wait
// of a 429 is Retry-After, else X-RateLimit-Reset minus now.
func sendGridError(resp *httpapi.Response) error {
	var eb sgErrors
	_ = json.Unmarshal(resp.Body, &eb) // a non-JSON body leaves no message
	var parts []string
	code := ""
	for _, e := range eb.Errors {
		msg := strings.TrimSpace(e.Message)
		if e.Field != "" {
			msg += " (" + e.Field + ")"
			if code == "" {
				code = e.Field
			}
		}
		if msg != "" {
			parts = append(parts, msg)
		}
	}
	return sendGridAPI.Refuse(resp, httpapi.Refusal{
		Message:    clip(resp.Request.Redact(strings.Join(parts, "; "))),
		Code:       clip(resp.Request.Redact(code)),
		RetryAfter: sendGridRetryAfter(resp.Header, time.Now()),
	})
}

// sendGridRetryAfter reads Retry-After, else X-RateLimit-Reset (unix
// seconds) relative to now; zero when neither helps.
func sendGridRetryAfter(h http.Header, now time.Time) time.Duration {
	if d := provider.RetryAfterHeader(h); d > 0 {
		return d
	}
	reset, err := strconv.ParseInt(strings.TrimSpace(h.Get(sendGridRateLimitReset)), 10, 64)
	if err != nil || reset <= 0 {
		return 0
	}
	// The reset is whole seconds: wait until it has passed, at least 1 s,
	// at most an hour.
	d := time.Unix(reset, 0).Sub(now)
	d = (d + time.Second - 1).Truncate(time.Second)
	return min(max(d, time.Second), time.Hour)
}

// The SendGrid event names the plugin maps; every other one (processed,
// deferred, click, unsubscribe, group_unsubscribe, group_resubscribe, ...)
// yields no event.
const (
	sgEventDelivered  = "delivered"
	sgEventBounce     = "bounce"
	sgEventDropped    = "dropped"
	sgEventOpen       = "open"
	sgEventSpamReport = "spamreport"
)

var sendGridEventTypes = map[string]string{
	sgEventDelivered:  catalogDelivered,
	sgEventBounce:     catalogBounced,
	sgEventDropped:    catalogBounced,
	sgEventOpen:       catalogOpened,
	sgEventSpamReport: catalogComplained,
}

// sgEvent is one element of an Event Webhook POST. Custom args are
// top-level keys; only the plugin's own is read.
type sgEvent struct {
	Event         string          `json:"event"`
	Email         string          `json:"email"`
	Timestamp     json.RawMessage `json:"timestamp"`
	SGEventID     string          `json:"sg_event_id"`
	SGMessageID   string          `json:"sg_message_id"`
	Reason        string          `json:"reason"`
	Type          string          `json:"type"` // bounce: "bounce" or "blocked"
	PipecoreMsgID json.RawMessage `json:"pipecore_message_id"`
}

// parseSendGrid maps an Event Webhook POST, a JSON array of events, to
// catalog events in the array's order: delivered → email.delivered;
// bounce (type bounce or blocked) and dropped → email.bounced with
// reason; open → email.opened; spamreport → email.complained. Other event
// names yield nothing.
//
// Subject is the X-Message-Id part of sg_message_id (everything before
// its first "."; SendGrid writes "<X-Message-Id>.<filter/server suffix>").
// ID is sg_event_id, or, when absent, "sg_" + a SHA-256 of the event's
// message id, name, timestamp and recipient. OccurredAt is timestamp
// (unix seconds). Data has provider_message_id, to, message_id (the
// pipecore_message_id custom arg, when present) and reason.
//
// A body that is not a JSON array of objects with a string "event" is
// KindInvalid. A mapped event without sg_message_id cannot be correlated
// and is skipped with a warning; the other events of the batch still
// count.
func parseSendGrid(ctx context.Context, body []byte) ([]provider.Event, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, provider.Invalid(fmt.Errorf("%w: sendgrid: body is not a JSON array of events: %v", errMalformedWebhook, err))
	}
	log := provider.Log(ctx)
	var out []provider.Event
	for i, r := range raw {
		var ev sgEvent
		if err := json.Unmarshal(r, &ev); err != nil || !bytes.HasPrefix(bytes.TrimSpace(r), []byte("{")) {
			return nil, provider.Invalid(fmt.Errorf("%w: sendgrid: event %d is not an object with string fields", errMalformedWebhook, i))
		}
		if ev.Event == "" {
			return nil, provider.Invalid(fmt.Errorf("%w: sendgrid: event %d has no event name", errMalformedWebhook, i))
		}
		typ, mapped := sendGridEventTypes[ev.Event]
		if !mapped {
			log.Debug("sendgrid event ignored", "event", clip(ev.Event), "sg_event_id", clip(ev.SGEventID))
			continue
		}
		subject, _, _ := strings.Cut(strings.TrimSpace(ev.SGMessageID), ".")
		if subject == "" {
			log.Warn("sendgrid event without sg_message_id skipped", "event", ev.Event, "sg_event_id", clip(ev.SGEventID))
			continue
		}
		occurred, err := unixSeconds(ev.Timestamp)
		if err != nil {
			return nil, provider.Invalid(fmt.Errorf("%w: sendgrid: event %d: timestamp: %v", errMalformedWebhook, i, err))
		}
		id := ev.SGEventID
		if id == "" {
			sum := sha256.Sum256([]byte(ev.SGMessageID + "\x00" + ev.Event + "\x00" + string(ev.Timestamp) + "\x00" + ev.Email))
			id = "sg_" + hex.EncodeToString(sum[:16])
		}
		d := emailData{ProviderMessageID: subject, To: ev.Email, MessageID: stringValue(ev.PipecoreMsgID)}
		if typ == catalogBounced {
			d.Reason = strings.TrimSpace(ev.Reason)
			if d.Reason == "" {
				d.Reason = ev.Event
				if ev.Event == sgEventBounce && ev.Type != "" {
					d.Reason = ev.Type
				}
			}
		}
		e, err := d.event(id, typ, subject, occurred)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// unixSeconds reads a JSON number (or numeric string) of unix seconds. An
// absent timestamp is the zero time (the gateway then uses the receipt
// time).
func unixSeconds(raw json.RawMessage) (time.Time, error) {
	s := strings.Trim(strings.TrimSpace(string(raw)), `"`)
	if s == "" || s == "null" {
		return time.Time{}, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 {
		return time.Time{}, fmt.Errorf("%q is not unix seconds", clip(s))
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC(), nil
}

// stringValue returns raw as a string when it is a JSON string, else "".
func stringValue(raw json.RawMessage) string {
	var s string
	if len(raw) == 0 || json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}
