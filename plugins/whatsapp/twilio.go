package main

// This file holds every wire fact of Twilio's Messages API the plugin uses
// (providers.md §7): host, path, auth, form parameters, the answer, Twilio
// errors and the status-callback and incoming-message webhooks.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/provider/httpapi"
)

const (
	// twilioHost is the REST API host.
	twilioHost = "https://api.twilio.com"
	// twilioMessagesPath is the send endpoint; %s is the account SID.
	twilioMessagesPath = "/2010-04-01/Accounts/%s/Messages.json"
	// twilioWhatsAppPrefix marks a WhatsApp address in To and From.
	twilioWhatsAppPrefix = "whatsapp:"
)

// The form parameters of a send.
const (
	twParamTo                  = "To"
	twParamFrom                = "From"
	twParamBody                = "Body"
	twParamMessagingServiceSID = "MessagingServiceSid"
	twParamStatusCallback      = "StatusCallback"
)

// The form parameters of Twilio's webhooks.
const (
	twParamMessageSID    = "MessageSid"
	twParamSmsSID        = "SmsSid" // deprecated twin of MessageSid
	twParamMessageStatus = "MessageStatus"
	twParamSmsStatus     = "SmsStatus" // deprecated twin of MessageStatus
	twParamErrorCode     = "ErrorCode"
	twParamErrorMessage  = "ErrorMessage"
	twParamNumMedia      = "NumMedia"
	twParamMediaURL0     = "MediaUrl0"
	twParamMediaType0    = "MediaContentType0"
	twParamRepliedSID    = "OriginalRepliedMessageSid" // WhatsApp replies; unverified
)

// accountSID is the shape of a Twilio account SID.
var accountSID = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)

// twilioClient is the Messages API bound to one tenant's credentials for
// one call. It must not outlive the call.
type twilioClient struct {
	base           string // scheme://host, no trailing slash
	sid            string
	token          provider.Secret
	from           string // E.164, without the whatsapp: prefix
	serviceSID     string
	statusCallback string
}

// newTwilioClient returns a client for tenant t. A missing account SID or
// auth token is KindUnauthorized; a malformed SID, from or base_url, or
// neither from nor messaging_service_sid, is KindInvalid.
func newTwilioClient(t provider.Tenant) (*twilioClient, error) {
	base, err := api.BaseURL(t, twilioHost)
	if err != nil {
		return nil, err
	}
	c := &twilioClient{
		base:           base,
		sid:            strings.TrimSpace(t.Setting(fieldAccountSID)),
		token:          t.Secret(fieldAuthToken),
		from:           strings.TrimPrefix(strings.TrimSpace(t.Setting(fieldFrom)), twilioWhatsAppPrefix),
		serviceSID:     strings.TrimSpace(t.Setting(fieldMessagingServiceSID)),
		statusCallback: strings.TrimSpace(t.Setting(fieldStatusCallback)),
	}
	if c.sid == "" || c.token.IsZero() {
		return nil, provider.Unauthorized(fmt.Errorf("whatsapp: tenant %s has no %s or %s for the twilio transport", t.ID(), fieldAccountSID, fieldAuthToken))
	}
	switch {
	case !accountSID.MatchString(c.sid):
		return nil, provider.Invalid(fmt.Errorf("whatsapp: %s %q must be AC and 32 hex digits", fieldAccountSID, clip(c.sid)))
	case c.from == "" && c.serviceSID == "":
		return nil, provider.Invalid(fmt.Errorf("whatsapp: tenant %s sets neither %s nor %s", t.ID(), fieldFrom, fieldMessagingServiceSID))
	case c.from != "" && !e164.MatchString(c.from):
		return nil, provider.Invalid(fmt.Errorf("whatsapp: %s %q must be an E.164 number", fieldFrom, clip(c.from)))
	}
	return c, nil
}

func (c *twilioClient) account() string { return c.sid }

// twilioMessage is the part of Twilio's Message resource the plugin reads.
type twilioMessage struct {
	SID    string `json:"sid"`
	Status string `json:"status"`
}

// twilioError is Twilio's error answer.
type twilioError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

// twilioSendStatuses maps the status of a created Message to a receipt
// status; anything else is queued.
var twilioSendStatuses = map[string]messaging.Status{
	"sent":        messaging.StatusSent,
	"delivered":   messaging.StatusDelivered,
	"read":        messaging.StatusRead,
	"failed":      messaging.StatusFailed,
	"undelivered": messaging.StatusFailed,
}

// twilioForm builds the send form for req: WhatsApp addresses carry the
// whatsapp: prefix, SMS ones are plain E.164. A template is sent as its
// rendered text (req.Text); Content API templates (ContentSid) are not
// used.
func (c *twilioClient) twilioForm(req messaging.SendRequest) url.Values {
	prefix := ""
	if req.Channel == messaging.ChannelWhatsApp {
		prefix = twilioWhatsAppPrefix
	}
	f := url.Values{}
	f.Set(twParamTo, prefix+req.To)
	if c.from != "" {
		f.Set(twParamFrom, prefix+c.from)
	}
	if c.serviceSID != "" {
		f.Set(twParamMessagingServiceSID, c.serviceSID)
	}
	f.Set(twParamBody, req.Text)
	if c.statusCallback != "" {
		f.Set(twParamStatusCallback, c.statusCallback)
	}
	return f
}

// send creates one Message. The receipt's ID is the Message SID.
func (c *twilioClient) send(ctx context.Context, req messaging.SendRequest) (messaging.Receipt, error) {
	const op = "send"
	resp, err := api.Do(ctx, httpapi.Request{
		Op: op, Method: http.MethodPost, URL: c.base + fmt.Sprintf(twilioMessagesPath, url.PathEscape(c.sid)),
		Header:   http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(c.sid+":"+c.token.Reveal()))}},
		Form:     c.twilioForm(req),
		Secrets:  []string{c.token.Reveal()},
		LogAttrs: logAttrs(transportTwilio, c.sid),
	}, nil, c.refuse)
	if err != nil {
		return messaging.Receipt{}, err
	}
	var m twilioMessage
	if err := json.Unmarshal(resp.Body, &m); err != nil || m.SID == "" {
		err := provider.Retryable(fmt.Errorf("whatsapp: %s: HTTP %d without a message sid", op, resp.Status))
		logFailure(ctx, op, transportTwilio, c.sid, resp.Status, err)
		return messaging.Receipt{}, err
	}
	st, ok := twilioSendStatuses[m.Status]
	if !ok {
		st = messaging.StatusQueued
	}
	return messaging.Receipt{ID: m.SID, Status: st}, nil
}

// refuse classifies a Twilio error answer: the HTTP status decides the
// kind (provider.FromHTTPStatus); Code is Twilio's error code.
func (c *twilioClient) refuse(resp *httpapi.Response) error {
	var r httpapi.Refusal
	var te twilioError
	if json.Unmarshal(resp.Body, &te) == nil {
		if te.Code != 0 {
			r.Code = strconv.Itoa(te.Code)
		}
		r.Message = clip(resp.Request.Redact(te.Message))
	}
	return api.Refuse(resp, r)
}

// twilioStatuses maps a status callback's MessageStatus to the gateway's
// status. Statuses not listed (queued, sending, accepted, scheduled,
// receiving, partially_delivered) have no catalog event.
var twilioStatuses = map[string]messaging.Status{
	"sent":        messaging.StatusSent,
	"delivered":   messaging.StatusDelivered,
	"read":        messaging.StatusRead,
	"failed":      messaging.StatusFailed,
	"undelivered": messaging.StatusFailed,
	"canceled":    messaging.StatusFailed,
}

// parseTwilioWebhook maps one Twilio webhook (a form body) to at most one
// event: a status callback (MessageStatus sent, delivered, read, failed,
// undelivered, canceled) to message.<status>, and an incoming message
// (MessageStatus or SmsStatus "received", or no status but a Body or
// NumMedia) to message.received. The channel is whatsapp when From or To
// has the whatsapp: prefix, else sms; the prefix is removed from from and
// to.
//
// Event.ID is "<MessageSid>:<MessageStatus>" ("<MessageSid>:received" for
// inbound); Subject is the MessageSid. Twilio sends no timestamp, so
// OccurredAt is zero (the gateway uses the time it received the webhook).
// A body that is not form encoding, or has no MessageSid, is KindInvalid.
func parseTwilioWebhook(ctx context.Context, req provider.WebhookRequest) ([]provider.Event, error) {
	form, err := url.ParseQuery(string(req.Body))
	if err != nil {
		return nil, malformed("twilio: %v", err)
	}
	sid := first(form.Get(twParamMessageSID), form.Get(twParamSmsSID))
	if sid == "" {
		return nil, malformed("twilio: no %s", twParamMessageSID)
	}
	status := first(form.Get(twParamMessageStatus), form.Get(twParamSmsStatus))
	from, to := form.Get(twParamFrom), form.Get(twParamTo)
	channel := messaging.ChannelSMS
	if strings.HasPrefix(from, twilioWhatsAppPrefix) || strings.HasPrefix(to, twilioWhatsAppPrefix) {
		channel = messaging.ChannelWhatsApp
	}
	from, to = strings.TrimPrefix(from, twilioWhatsAppPrefix), strings.TrimPrefix(to, twilioWhatsAppPrefix)

	if status == "received" || (status == "" && (form.Has(twParamBody) || form.Has(twParamNumMedia))) {
		d := messageData{
			ProviderMessageID: sid,
			Channel:           string(channel),
			Status:            string(messaging.StatusReceived),
			From:              from,
			To:                to,
			Text:              form.Get(twParamBody),
			ReplyTo:           form.Get(twParamRepliedSID),
		}
		if n, _ := strconv.Atoi(form.Get(twParamNumMedia)); n > 0 && form.Get(twParamMediaURL0) != "" {
			mime := form.Get(twParamMediaType0)
			d.Media = &mediaData{Type: mediaType(mime), URL: form.Get(twParamMediaURL0), MimeType: mime}
		}
		ev, err := newEvent(sid+":received", eventReceived, sid, time.Time{}, d)
		if err != nil {
			return nil, err
		}
		return []provider.Event{ev}, nil
	}

	st, ok := twilioStatuses[status]
	if !ok {
		provider.Log(ctx).Debug("whatsapp twilio status ignored", "status", clip(status), "sid", clip(sid))
		return nil, nil
	}
	d := messageData{
		ProviderMessageID: sid,
		Channel:           string(channel),
		Status:            string(st),
		To:                to,
	}
	if st == messaging.StatusFailed {
		code, msg := form.Get(twParamErrorCode), form.Get(twParamErrorMessage)
		if status == "canceled" && msg == "" {
			msg = "canceled before it was sent"
		}
		if code != "" || msg != "" {
			d.Error = &errorData{Code: code, Message: msg}
		}
	}
	ev, err := newEvent(sid+":"+status, statusEvents[st], sid, time.Time{}, d)
	if err != nil {
		return nil, err
	}
	return []provider.Event{ev}, nil
}

// mediaType names an attachment by its MIME type's top level: image,
// audio, video, else document.
func mediaType(mime string) string {
	top, _, _ := strings.Cut(mime, "/")
	switch top {
	case "image", "audio", "video":
		return top
	}
	return "document"
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
