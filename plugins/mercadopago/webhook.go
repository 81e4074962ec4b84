package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/mercadopago/sdk-go/pkg/payment"

	"github.com/pipecore/pipecore/sdk/provider"
)

// The catalog types the plugin emits (EVENTS.md).
const (
	catalogConfirmed = "payment.confirmed"
	catalogFailed    = "payment.failed"
	catalogCancelled = "payment.cancelled"
	catalogRefunded  = "payment.refunded"
)

// The notification topics turned into events.
const (
	topicPayment           = "payment"
	topicPreapproval       = "subscription_preapproval"
	topicAuthorizedPayment = "subscription_authorized_payment"
)

// errMalformedWebhook is in the chain of every KindPermanent error
// ParseWebhook returns: the notification cannot be read.
var errMalformedWebhook = errors.New("mercadopago: malformed webhook")

// notification is the body of a MercadoPago webhook. Ids are numbers or
// strings depending on the topic, so they are read raw.
type notification struct {
	ID     json.RawMessage `json:"id"`
	Type   string          `json:"type"`
	Topic  string          `json:"topic"` // legacy IPN
	Action string          `json:"action"`
	Data   struct {
		ID json.RawMessage `json:"id"`
	} `json:"data"`
}

// ParseWebhook treats a MercadoPago notification as a hint: it reads the
// topic (body "type", else query "type" or "topic") and the resource id
// (body "data.id", else query "data.id" or "id"), fetches the resource
// with the tenant's access token and maps its status (README.md has the
// tables): the payment for topic "payment", the preapproval for
// "subscription_preapproval", the authorized payment for
// "subscription_authorized_payment" (see subscription_webhook.go). Other
// topics, and statuses without a catalog event (pending, in_process,
// authorized, in_mediation payments; pending or paused preapprovals;
// scheduled charges), yield no event and a nil error.
//
// A body that is not a JSON object, a notification without topic, or a
// resource id of the wrong shape (not numeric for payments and authorized
// payments) is KindPermanent (wrapping errMalformedWebhook). A failed
// fetch is KindRetryable whatever the cause, so the gateway retries later.
//
// For payments Event.ID is x-request-id, data.id and action joined by ":"
// (the provider's documented dedup key), else "notification:<id>", else
// "<data.id>:<status>", and Subject is the payment id. ParseWebhook keeps
// nothing and is safe for concurrent use.
func (*mercadoPago) ParseWebhook(ctx context.Context, req provider.WebhookRequest) ([]provider.Event, error) {
	var n notification
	if len(strings.TrimSpace(string(req.Body))) > 0 {
		if err := json.Unmarshal(req.Body, &n); err != nil {
			return nil, provider.Permanent(fmt.Errorf("%w: %w", errMalformedWebhook, err))
		}
	}
	topic := firstOf(n.Type, n.Topic, query(req.Query, "type"), query(req.Query, "topic"))
	dataID := firstOf(rawID(n.Data.ID), query(req.Query, "data.id"), query(req.Query, "id"))
	if topic == "" {
		return nil, provider.Permanent(fmt.Errorf("%w: no type or topic", errMalformedWebhook))
	}
	switch topic {
	case topicPayment:
		return parsePayment(ctx, req, n, dataID)
	case topicPreapproval:
		return parsePreapproval(ctx, req, dataID)
	case topicAuthorizedPayment:
		return parseAuthorizedPayment(ctx, req, dataID)
	}
	provider.Log(ctx).Debug("mercadopago webhook ignored", "topic", clip(topic), "data_id", clip(dataID))
	return nil, nil
}

// parsePayment handles the payment topic: it fetches the payment and maps
// its status.
func parsePayment(ctx context.Context, req provider.WebhookRequest, n notification, dataID string) ([]provider.Event, error) {
	id, err := strconv.Atoi(dataID)
	if err != nil || id <= 0 {
		return nil, provider.Permanent(fmt.Errorf("%w: payment id %q is not numeric", errMalformedWebhook, clip(dataID)))
	}
	c, err := newClient(req.Tenant)
	if err != nil {
		return nil, provider.Retryable(err)
	}
	p, err := c.payments.Get(ctx, id)
	if err != nil {
		return nil, c.fetchFailed(ctx, "get payment", fmt.Sprintf("payment %d", id), err)
	}
	out := mapPayment(p)
	if out == nil {
		provider.Log(ctx).Debug("mercadopago webhook needs no event", "payment", id, "status", clip(p.Status))
		return nil, nil
	}
	data, err := json.Marshal(out.data)
	if err != nil {
		return nil, fmt.Errorf("mercadopago: encode event for payment %d: %w", id, err)
	}
	return []provider.Event{{
		ID:         eventID(header(req.Headers, "X-Request-Id"), dataID, n.Action, rawID(n.ID), p.Status),
		Type:       out.typ,
		Subject:    strconv.Itoa(p.ID),
		OccurredAt: out.at,
		Data:       data,
	}}, nil
}

// fetchFailed classifies a failed fetch of the resource a notification
// points to (what, e.g. "payment 123"): always KindRetryable, because the
// resource may not be readable yet, keeping the API's code.
func (c *client) fetchFailed(ctx context.Context, op, what string, err error) error {
	cerr := c.fail(ctx, op, err)
	out := provider.Retryable(fmt.Errorf("mercadopago: webhook for %s: %w", what, cerr))
	if code := provider.CodeOf(cerr); code != "" {
		out = provider.WithCode(out, code)
	}
	return out
}

func eventID(requestID, dataID, action, notificationID, status string) string {
	switch {
	case requestID != "":
		return requestID + ":" + dataID + ":" + action
	case notificationID != "":
		return "notification:" + notificationID
	}
	return dataID + ":" + status
}

// mapped is the catalog event a fetched payment becomes.
type mapped struct {
	typ  string
	at   time.Time
	data paymentData
}

// paymentData is the Data of a payment.* catalog event (EVENTS.md).
// Unknown fields are omitted, never sent empty.
type paymentData struct {
	PaymentID         string `json:"payment_id,omitempty"`
	ProviderPaymentID string `json:"provider_payment_id"`
	Status            string `json:"status"`
	Amount            money  `json:"amount"`
	Reference         string `json:"reference,omitempty"`
	Method            string `json:"method,omitempty"`
	FailureCode       string `json:"failure_code,omitempty"`
	FailureMessage    string `json:"failure_message,omitempty"`
	// RefundedAmount is the total refunded so far, in the minor unit of
	// Amount's currency.
	RefundedAmount *int64 `json:"refunded_amount,omitempty"`
	RefundID       string `json:"refund_id,omitempty"`
	Partial        *bool  `json:"partial,omitempty"`
	Reason         string `json:"reason,omitempty"`
}

type money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// mapPayment maps a fetched payment to a catalog event, or nil when its
// status needs none. An approved payment with refunds is a partial refund.
func mapPayment(p *payment.Response) *mapped {
	pm := paymentOf(p)
	d := paymentData{
		ProviderPaymentID: pm.ID,
		Status:            string(pm.Status),
		Amount:            money{Amount: pm.Amount.Amount, Currency: pm.Amount.Currency},
		Reference:         p.ExternalReference,
		Method:            pm.Method,
	}
	d.PaymentID, _ = p.Metadata[metaPaymentID].(string)
	at := utc(p.DateLastUpdated)
	refunded := func() *mapped {
		r := pm.AmountRefunded
		partial := r < pm.Amount.Amount
		d.RefundedAmount, d.Partial = &r, &partial
		if n := len(p.Refunds); n > 0 {
			d.RefundID = strconv.Itoa(p.Refunds[n-1].ID)
		}
		return &mapped{typ: catalogRefunded, at: at, data: d}
	}
	switch p.Status {
	case "approved":
		if pm.AmountRefunded > 0 {
			return refunded()
		}
		if !p.DateApproved.IsZero() {
			at = utc(p.DateApproved)
		}
		return &mapped{typ: catalogConfirmed, at: at, data: d}
	case "rejected":
		d.FailureCode, d.FailureMessage = p.StatusDetail, pm.FailureMessage
		return &mapped{typ: catalogFailed, at: at, data: d}
	case "cancelled":
		d.FailureCode = p.StatusDetail
		return &mapped{typ: catalogCancelled, at: at, data: d}
	case "refunded":
		return refunded()
	case "charged_back":
		d.Reason = "chargeback"
		if pm.AmountRefunded == 0 {
			pm.AmountRefunded = pm.Amount.Amount
		}
		return refunded()
	}
	return nil
}

// rawID reads a JSON id that is a string or a number; "" otherwise.
func rawID(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return ""
	}
	var str string
	if json.Unmarshal(raw, &str) == nil {
		return strings.TrimSpace(str)
	}
	var num json.Number
	if json.Unmarshal(raw, &num) == nil {
		return num.String()
	}
	return ""
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}

func query(q map[string][]string, name string) string {
	if v := q[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func header(h map[string][]string, name string) string {
	if v := h[textproto.CanonicalMIMEHeaderKey(name)]; len(v) > 0 {
		return strings.TrimSpace(v[0])
	}
	for k, v := range h {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return strings.TrimSpace(v[0])
		}
	}
	return ""
}
