package main

// This file holds every wire fact of Meta's WhatsApp Cloud API the plugin
// uses (providers.md §6): host, path, auth, request and answer shapes,
// Graph errors and the webhook payload.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/provider/httpapi"
)

const (
	// cloudHost is the Graph API host.
	cloudHost = "https://graph.facebook.com"
	// defaultGraphVersion is the pinned Graph API version when the tenant
	// sets none.
	defaultGraphVersion = "v21.0"
	// cloudMessagesPath is the send endpoint below /{version}.
	cloudMessagesPath = "/%s/%s/messages" // version, phone number id
	// cloudProduct is messaging_product on every request and webhook.
	cloudProduct = "whatsapp"
	// cloudWebhookObject is the object of WhatsApp webhooks.
	cloudWebhookObject = "whatsapp_business_account"
	// cloudWebhookField is the change field carrying messages and statuses.
	cloudWebhookField = "messages"
)

// graphVersion is the shape of a Graph API version, e.g. "v21.0".
var graphVersion = regexp.MustCompile(`^v[0-9]{1,3}\.[0-9]{1,2}$`)

// phoneNumberID is the shape of a WhatsApp phone number id (digits).
var phoneNumberID = regexp.MustCompile(`^[0-9]{1,32}$`)

// cloudClient is the Cloud API bound to one tenant's credentials for one
// call. It must not outlive the call.
type cloudClient struct {
	base    string // scheme://host, no trailing slash
	version string
	phoneID string
	token   provider.Secret
}

// newCloudClient returns a client for tenant t. A missing phone number id
// or access token is KindUnauthorized; a malformed base_url, graph_version
// or phone_number_id is KindInvalid.
func newCloudClient(t provider.Tenant) (*cloudClient, error) {
	base, err := api.BaseURL(t, cloudHost)
	if err != nil {
		return nil, err
	}
	c := &cloudClient{
		base:    base,
		version: strings.TrimSpace(t.Setting(fieldGraphVersion)),
		phoneID: strings.TrimSpace(t.Setting(fieldPhoneNumberID)),
		token:   t.Secret(fieldAccessToken),
	}
	if c.version == "" {
		c.version = defaultGraphVersion
	}
	if !graphVersion.MatchString(c.version) {
		return nil, provider.Invalid(fmt.Errorf("whatsapp: %s %q must look like %s", fieldGraphVersion, clip(c.version), defaultGraphVersion))
	}
	if c.phoneID == "" || c.token.IsZero() {
		return nil, provider.Unauthorized(fmt.Errorf("whatsapp: tenant %s has no %s or %s for the cloud transport", t.ID(), fieldPhoneNumberID, fieldAccessToken))
	}
	if !phoneNumberID.MatchString(c.phoneID) {
		return nil, provider.Invalid(fmt.Errorf("whatsapp: %s %q must be digits", fieldPhoneNumberID, clip(c.phoneID)))
	}
	return c, nil
}

func (c *cloudClient) account() string { return c.phoneID }

// cloudMessage is the body of POST /{version}/{phone-number-id}/messages.
type cloudMessage struct {
	MessagingProduct string         `json:"messaging_product"`
	RecipientType    string         `json:"recipient_type"`
	To               string         `json:"to"`
	Type             string         `json:"type"`
	Text             *cloudText     `json:"text,omitempty"`
	Template         *cloudTemplate `json:"template,omitempty"`
}

type cloudText struct {
	PreviewURL bool   `json:"preview_url"`
	Body       string `json:"body"`
}

type cloudTemplate struct {
	Name       string           `json:"name"`
	Language   cloudLanguage    `json:"language"`
	Components []cloudComponent `json:"components,omitempty"`
}

type cloudLanguage struct {
	Code string `json:"code"`
}

type cloudComponent struct {
	Type       string           `json:"type"`
	Parameters []cloudParameter `json:"parameters"`
}

type cloudParameter struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// cloudSent is the answer of a successful send.
type cloudSent struct {
	Messages []struct {
		ID            string `json:"id"`
		MessageStatus string `json:"message_status"`
	} `json:"messages"`
}

// graphError is the Graph API's error answer.
type graphError struct {
	Error struct {
		Message      string `json:"message"`
		Type         string `json:"type"`
		Code         int    `json:"code"`
		ErrorSubcode int    `json:"error_subcode"`
		ErrorData    struct {
			Details string `json:"details"`
		} `json:"error_data"`
		FBTraceID string `json:"fbtrace_id"`
	} `json:"error"`
}

// Graph error codes whose kind is not what the HTTP status says
// (Meta's "WhatsApp error codes" page; the list is from memory and
// unverified, see README.md).
var graphCodeKinds = map[int]provider.Kind{
	190:    provider.KindUnauthorized, // access token expired or invalid
	4:      provider.KindRateLimited,  // application request limit
	80007:  provider.KindRateLimited,  // WABA rate limit
	130429: provider.KindRateLimited,  // throughput limit
	131048: provider.KindRateLimited,  // spam rate limit
	131056: provider.KindRateLimited,  // business/consumer pair rate limit
	131000: provider.KindRetryable,    // something went wrong
	131016: provider.KindRetryable,    // service unavailable
	133004: provider.KindRetryable,    // server temporarily unavailable
}

// cloudBody builds the send body for req.
func cloudBody(req messaging.SendRequest) cloudMessage {
	m := cloudMessage{
		MessagingProduct: cloudProduct,
		RecipientType:    "individual",
		To:               strings.TrimPrefix(req.To, "+"),
	}
	if t := req.Template; t != nil {
		m.Type = "template"
		m.Template = &cloudTemplate{Name: t.Name, Language: cloudLanguage{Code: t.Language}}
		if len(t.Params) > 0 {
			comp := cloudComponent{Type: "body", Parameters: make([]cloudParameter, len(t.Params))}
			for i, p := range t.Params {
				comp.Parameters[i] = cloudParameter{Type: "text", Text: p}
			}
			m.Template.Components = []cloudComponent{comp}
		}
		return m
	}
	m.Type = "text"
	m.Text = &cloudText{Body: req.Text}
	return m
}

// send posts one message. The receipt's ID is the wamid; its status is
// queued (Meta accepted the message; "sent" arrives by webhook).
func (c *cloudClient) send(ctx context.Context, req messaging.SendRequest) (messaging.Receipt, error) {
	const op = "send"
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(cloudBody(req)); err != nil {
		return messaging.Receipt{}, provider.Invalid(fmt.Errorf("whatsapp: %s: encode request: %w", op, err))
	}
	resp, err := api.Do(ctx, httpapi.Request{
		Op: op, Method: http.MethodPost, URL: c.base + fmt.Sprintf(cloudMessagesPath, c.version, c.phoneID),
		Header: http.Header{
			"Authorization": {"Bearer " + c.token.Reveal()},
			"Content-Type":  {"application/json"},
		},
		Body:     buf.Bytes(),
		Secrets:  []string{c.token.Reveal()},
		LogAttrs: logAttrs(transportCloud, c.phoneID),
	}, nil, c.refuse)
	if err != nil {
		return messaging.Receipt{}, err
	}
	var out cloudSent
	if err := json.Unmarshal(resp.Body, &out); err != nil || len(out.Messages) == 0 || out.Messages[0].ID == "" {
		err := provider.Retryable(fmt.Errorf("whatsapp: %s: HTTP %d without a message id", op, resp.Status))
		logFailure(ctx, op, transportCloud, c.phoneID, resp.Status, err)
		return messaging.Receipt{}, err
	}
	return messaging.Receipt{ID: out.Messages[0].ID, Status: messaging.StatusQueued}, nil
}

// refuse classifies a Graph error answer: the Graph code decides the kind
// where graphCodeKinds knows it, else the HTTP status does; Code is the
// Graph code.
func (c *cloudClient) refuse(resp *httpapi.Response) error {
	var r httpapi.Refusal
	var ge graphError
	if json.Unmarshal(resp.Body, &ge) == nil && (ge.Error.Message != "" || ge.Error.Code != 0) {
		if ge.Error.Code != 0 {
			r.Code = strconv.Itoa(ge.Error.Code)
		}
		msg := ge.Error.Message
		if d := ge.Error.ErrorData.Details; d != "" && d != msg {
			msg += " (" + d + ")"
		}
		r.Message = clip(resp.Request.Redact(msg))
		r.Kind = graphCodeKinds[ge.Error.Code]
	}
	return api.Refuse(resp, r)
}

// cloudNotification is a Cloud API webhook (providers.md §6.4).
type cloudNotification struct {
	Object string `json:"object"`
	Entry  []struct {
		ID      string `json:"id"`
		Changes []struct {
			Field string      `json:"field"`
			Value cloudChange `json:"value"`
		} `json:"changes"`
	} `json:"entry"`
}

type cloudChange struct {
	MessagingProduct string `json:"messaging_product"`
	Metadata         struct {
		DisplayPhoneNumber string `json:"display_phone_number"`
		PhoneNumberID      string `json:"phone_number_id"`
	} `json:"metadata"`
	Messages []cloudInbound `json:"messages"`
	Statuses []cloudStatus  `json:"statuses"`
}

type cloudStatus struct {
	ID          string       `json:"id"`
	Status      string       `json:"status"`
	Timestamp   string       `json:"timestamp"`
	RecipientID string       `json:"recipient_id"`
	Errors      []cloudError `json:"errors"`
}

type cloudError struct {
	Code      int    `json:"code"`
	Title     string `json:"title"`
	Message   string `json:"message"`
	ErrorData struct {
		Details string `json:"details"`
	} `json:"error_data"`
}

type cloudInbound struct {
	From      string `json:"from"`
	ID        string `json:"id"`
	Timestamp string `json:"timestamp"`
	Type      string `json:"type"`
	Text      *struct {
		Body string `json:"body"`
	} `json:"text"`
	Context *struct {
		From string `json:"from"`
		ID   string `json:"id"`
	} `json:"context"`
	Image    *cloudMedia `json:"image"`
	Audio    *cloudMedia `json:"audio"`
	Video    *cloudMedia `json:"video"`
	Document *cloudMedia `json:"document"`
	Sticker  *cloudMedia `json:"sticker"`
	Button   *struct {
		Text    string `json:"text"`
		Payload string `json:"payload"`
	} `json:"button"`
	Interactive *struct {
		ButtonReply *struct {
			Title string `json:"title"`
		} `json:"button_reply"`
		ListReply *struct {
			Title string `json:"title"`
		} `json:"list_reply"`
	} `json:"interactive"`
	Reaction *struct {
		MessageID string `json:"message_id"`
		Emoji     string `json:"emoji"`
	} `json:"reaction"`
}

type cloudMedia struct {
	ID       string `json:"id"`
	MimeType string `json:"mime_type"`
	Caption  string `json:"caption"`
	Filename string `json:"filename"`
}

// cloudStatuses maps a Cloud API status to the gateway's.
var cloudStatuses = map[string]messaging.Status{
	"sent":      messaging.StatusSent,
	"delivered": messaging.StatusDelivered,
	"read":      messaging.StatusRead,
	"failed":    messaging.StatusFailed,
}

// parseCloudWebhook maps a Cloud API webhook to events, in payload order:
// every statuses[] item with a known status (sent, delivered, read,
// failed) to message.<status>, every messages[] item to message.received.
// Changes of other fields, other objects and changes for another phone
// number id than the tenant's yield nothing.
//
// Event.ID is "<wamid>:<status>" ("<wamid>:received" for inbound), stable
// across redeliveries however Meta batches them; Subject is the wamid;
// OccurredAt is the item's timestamp. A body that is not a JSON object, or
// an item without id, is KindInvalid.
func parseCloudWebhook(ctx context.Context, req provider.WebhookRequest) ([]provider.Event, error) {
	var n cloudNotification
	if err := json.Unmarshal(req.Body, &n); err != nil {
		return nil, malformed("cloud: %v", err)
	}
	log := provider.Log(ctx)
	if n.Object != cloudWebhookObject {
		log.Debug("whatsapp webhook ignored", "object", clip(n.Object))
		return nil, nil
	}
	tenantPhone := strings.TrimSpace(req.Tenant.Setting(fieldPhoneNumberID))
	var out []provider.Event
	for _, entry := range n.Entry {
		for _, ch := range entry.Changes {
			if ch.Field != cloudWebhookField {
				log.Debug("whatsapp webhook change ignored", "field", clip(ch.Field))
				continue
			}
			v := ch.Value
			if tenantPhone != "" && v.Metadata.PhoneNumberID != "" && v.Metadata.PhoneNumberID != tenantPhone {
				log.Warn("whatsapp webhook for another phone number ignored", "phone_number_id", clip(v.Metadata.PhoneNumberID))
				continue
			}
			for _, s := range v.Statuses {
				ev, ok, err := cloudStatusEvent(s)
				if err != nil {
					return nil, err
				}
				if !ok {
					log.Debug("whatsapp status ignored", "status", clip(s.Status), "wamid", clip(s.ID))
					continue
				}
				out = append(out, ev)
			}
			for _, m := range v.Messages {
				ev, err := cloudInboundEvent(m, plusDigits(v.Metadata.DisplayPhoneNumber))
				if err != nil {
					return nil, err
				}
				out = append(out, ev)
			}
		}
	}
	return out, nil
}

func cloudStatusEvent(s cloudStatus) (provider.Event, bool, error) {
	if s.ID == "" {
		return provider.Event{}, false, malformed("cloud: status without id")
	}
	st, ok := cloudStatuses[s.Status]
	if !ok {
		return provider.Event{}, false, nil
	}
	d := messageData{
		ProviderMessageID: s.ID,
		Channel:           string(messaging.ChannelWhatsApp),
		Status:            string(st),
		To:                plusDigits(s.RecipientID),
	}
	if st == messaging.StatusFailed && len(s.Errors) > 0 {
		e := s.Errors[0]
		msg := e.Message
		if msg == "" {
			msg = e.Title
		}
		if e.ErrorData.Details != "" && e.ErrorData.Details != msg {
			if msg != "" {
				msg += ": "
			}
			msg += e.ErrorData.Details
		}
		d.Error = &errorData{Code: strconv.Itoa(e.Code), Message: msg}
	}
	ev, err := newEvent(s.ID+":"+s.Status, statusEvents[st], s.ID, unixTime(s.Timestamp), d)
	return ev, true, err
}

func cloudInboundEvent(m cloudInbound, to string) (provider.Event, error) {
	if m.ID == "" {
		return provider.Event{}, malformed("cloud: message without id")
	}
	d := messageData{
		ProviderMessageID: m.ID,
		Channel:           string(messaging.ChannelWhatsApp),
		Status:            string(messaging.StatusReceived),
		From:              plusDigits(m.From),
		To:                to,
	}
	if m.Context != nil {
		d.ReplyTo = m.Context.ID
	}
	if media := m.media(); media != nil {
		d.Media = &mediaData{Type: m.Type, ID: media.ID, MimeType: media.MimeType}
		d.Text = media.Caption
	}
	switch {
	case m.Text != nil:
		d.Text = m.Text.Body
	case m.Button != nil:
		d.Text = m.Button.Text
	case m.Interactive != nil && m.Interactive.ButtonReply != nil:
		d.Text = m.Interactive.ButtonReply.Title
	case m.Interactive != nil && m.Interactive.ListReply != nil:
		d.Text = m.Interactive.ListReply.Title
	case m.Reaction != nil:
		d.Text, d.ReplyTo = m.Reaction.Emoji, m.Reaction.MessageID
	}
	return newEvent(m.ID+":received", eventReceived, m.ID, unixTime(m.Timestamp), d)
}

// media returns the attachment of a media message, nil for other types.
func (m cloudInbound) media() *cloudMedia {
	switch m.Type {
	case "image":
		return m.Image
	case "audio":
		return m.Audio
	case "video":
		return m.Video
	case "document":
		return m.Document
	case "sticker":
		return m.Sticker
	}
	return nil
}

// unixTime reads a Unix timestamp in seconds given as a string; zero when
// absent or malformed (the gateway then uses the time it received the
// webhook).
func unixTime(s string) time.Time {
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil || sec <= 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0).UTC()
}
