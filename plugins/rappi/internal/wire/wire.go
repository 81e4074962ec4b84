// Package wire is the one place where the Rappi plugin and its fake
// (rappifake) spell Rappi's wire format: hosts, paths, headers, JSON field
// names, status strings and the webhook signature. Nothing else in the
// module writes a Rappi path, header or field name.
//
// Every fact carries its source:
//
//   - [doc]: read on Rappi's developer portal (dev-portal.rappi.com,
//     authentication and webhook-events pages; providers.md §5.1).
//   - [community]: seen only in third-party integrations.
//   - [assumption]: not public. Rappi's courier ("Rappi Cargo") API is
//     documented only to onboarded partners, so the delivery endpoints
//     follow PipeCore's generic courier contract, spelled in the style of
//     Rappi's documented Restaurants API. Check each one against the
//     partner documentation before going live; changing it here changes
//     the plugin and the fake together.
package wire

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"time"

	"github.com/pipecore/pipecore/sdk/delivery"
)

// Hosts.
const (
	// DevHost is Rappi's development host. [doc] The authentication page's
	// sample request is POST https://api.dev.rappi.com/restaurants/auth/v1/token/login/integrations.
	DevHost = "https://api.dev.rappi.com"
	// DefaultCountry is the country used when the tenant sets none.
	// [assumption] PipeCore's home market is Chile.
	DefaultCountry = "CL"
)

// CountryHosts maps an ISO 3166-1 alpha-2 country to Rappi's production
// host there. [doc] Rappi has one "new country domain" per country and the
// token path lives under it; the list page itself was not readable.
// MX, BR and EC ([community]) were seen in third-party integrations as
// api.rappi.com.mx, api.rappi.com.br and api.rappi.com.ec; the other
// countries ([assumption]) follow the same pattern with the country's
// Rappi consumer domain. A tenant whose host differs sets base_url.
var CountryHosts = map[string]string{
	"AR": "https://api.rappi.com.ar", // [assumption]
	"BR": "https://api.rappi.com.br", // [community]
	"CL": "https://api.rappi.cl",     // [assumption]
	"CO": "https://api.rappi.com.co", // [assumption]
	"CR": "https://api.rappi.co.cr",  // [assumption]
	"EC": "https://api.rappi.com.ec", // [community]
	"MX": "https://api.rappi.com.mx", // [community]
	"PE": "https://api.rappi.pe",     // [assumption]
	"UY": "https://api.rappi.com.uy", // [assumption]
}

// Paths, relative to the host.
const (
	// TokenPath mints an access token from {client_id, client_secret}.
	// [doc] POST https://{NEW_DOMAIN}/restaurants/auth/v1/token/login/integrations.
	TokenPath = "/restaurants/auth/v1/token/login/integrations"
	// QuotesPath prices a delivery: POST, QuoteRequest → QuoteResponse.
	// [assumption] generic courier contract.
	QuotesPath = "/cargo/v1/quotes"
	// DeliveriesPath books a delivery: POST, OrderRequest → Delivery (201,
	// or 200 with the existing delivery for a repeated Idempotency-Key or
	// external_id). [assumption] generic courier contract.
	DeliveriesPath = "/cargo/v1/deliveries"
	// CancelSuffix follows DeliveryPath(id) to cancel: POST, CancelRequest
	// → Delivery; 409 with CodeCancelNotAllowed once the courier has
	// picked the order up. [assumption] generic courier contract.
	CancelSuffix = "/cancel"
)

// DeliveryPath is the path of one delivery (GET reads it).
// [assumption] generic courier contract.
func DeliveryPath(id string) string { return DeliveriesPath + "/" + url.PathEscape(id) }

// CancelPath is the path that cancels delivery id.
func CancelPath(id string) string { return DeliveryPath(id) + CancelSuffix }

// Headers.
const (
	// AuthHeader carries the access token on every API call, as
	// AuthScheme + token. [doc] "x-authorization: Bearer <access_token>",
	// a custom header, not Authorization. (One portal table writes
	// "Bearer: <token>", another "bearer [token]"; the plugin sends
	// "Bearer <token>" and the fake accepts all three.)
	AuthHeader = "X-Authorization"
	// AuthScheme prefixes the token in AuthHeader. [doc]
	AuthScheme = "Bearer"
	// IdempotencyHeader carries the gateway's idempotency key on create and
	// cancel; a repeated key returns the first answer's delivery.
	// [assumption] Rappi documents no idempotency header; the plugin also
	// sends the gateway's delivery id as external_id (see OrderRequest).
	IdempotencyHeader = "Idempotency-Key"
	// SignatureHeader signs webhooks: "t=<unix seconds>,sign=<hex>" where
	// sign = hex(HMAC-SHA256(webhook secret, t + "." + raw body)). [doc]
	// (Header names are case-insensitive per the portal.) That t is in
	// seconds is [assumption]: the portal's example is t=123456.
	SignatureHeader = "Rappi-Signature"
	// SignatureTimestamp and SignatureSign are the keys of the
	// SignatureHeader items, separated by "," with "=" between key and
	// value. [doc]
	SignatureTimestamp = "t"
	SignatureSign      = "sign"
	// ContentType of every request and answer body. [doc] "request body:
	// json, response body: json".
	ContentType = "application/json"
)

// TokenLifetime is how long a token lives when the answer has no
// expires_in. [doc] "Your access token has a validity of 1 week."
const TokenLifetime = 7 * 24 * time.Hour

// TokenRequest is the body of POST TokenPath. [doc]
type TokenRequest struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

// TokenResponse is the answer of POST TokenPath. access_token is
// [community] (third-party clients read it); token_type and expires_in
// (seconds) are [assumption], OAuth 2.0 style; a missing expires_in means
// TokenLifetime.
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type,omitempty"`
	ExpiresIn   int64  `json:"expires_in,omitempty"`
}

// ErrorBody is every non-2xx answer's body. [assumption] Third-party
// clients read a "message"; "code" is the generic courier contract's.
type ErrorBody struct {
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// Error codes the fake answers and the plugin recognises. [assumption]
const (
	CodeUnauthorized     = "unauthorized"       // 401: missing, unknown or expired token
	CodeInvalidClient    = "invalid_client"     // 401 from TokenPath: wrong client_id or client_secret
	CodeInvalidRequest   = "invalid_request"    // 400: a required field is missing or malformed
	CodeNotFound         = "not_found"          // 404: unknown delivery
	CodeCancelNotAllowed = "cancel_not_allowed" // 409: cancel after pickup
	CodeQuoteExpired     = "quote_expired"      // 400: booking an unknown or expired quote
)

// Money is an amount in the currency's minor unit (12990 CLP, 1999 for
// 19.99 MXN) with its ISO 4217 code. [assumption] Rappi's marketplace API
// uses decimals in major units; the courier contract uses minor units.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// Address is a stop's postal address. [assumption]
type Address struct {
	Street     string `json:"street"`
	Number     string `json:"number,omitempty"`
	City       string `json:"city,omitempty"`
	Region     string `json:"region,omitempty"`
	Country    string `json:"country,omitempty"`
	PostalCode string `json:"postal_code,omitempty"`
}

// Location is a WGS84 coordinate. [assumption]
type Location struct {
	Lat float64 `json:"lat"`
	Lng float64 `json:"lng"`
}

// Contact is the person at a stop. [assumption]
type Contact struct {
	Name  string `json:"name,omitempty"`
	Phone string `json:"phone,omitempty"`
}

// Stop is a pickup or a drop-off. A stop needs address.street or a
// location. [assumption]
type Stop struct {
	Address      Address   `json:"address"`
	Location     *Location `json:"location,omitempty"`
	Contact      Contact   `json:"contact"`
	Instructions string    `json:"instructions,omitempty"`
}

// Item is one thing to carry; name and a positive quantity are required.
// [assumption]
type Item struct {
	Name     string `json:"name"`
	Quantity int    `json:"quantity"`
	Size     string `json:"size,omitempty"`
	Price    *Money `json:"price,omitempty"`
}

// QuoteRequest is the body of POST QuotesPath; OrderRequest adds the
// booking fields. pickup, dropoff and at least one item are required.
// [assumption]
type QuoteRequest struct {
	Country   string `json:"country,omitempty"`
	Reference string `json:"reference,omitempty"`
	Pickup    Stop   `json:"pickup"`
	Dropoff   Stop   `json:"dropoff"`
	Items     []Item `json:"items"`
	ReadyAt   string `json:"ready_at,omitempty"` // RFC 3339
}

// QuoteResponse is the answer of POST QuotesPath. [assumption]
type QuoteResponse struct {
	QuoteID    string `json:"quote_id"`
	Fee        Money  `json:"fee"`
	ETAMinutes int64  `json:"eta_minutes"`
	ExpiresAt  string `json:"expires_at"` // RFC 3339
}

// OrderRequest is the body of POST DeliveriesPath. external_id is required
// and unique per client: booking it again returns the existing delivery.
// quote_id, when set, must name an unexpired quote. [assumption]
type OrderRequest struct {
	QuoteRequest
	ExternalID string `json:"external_id"`
	QuoteID    string `json:"quote_id,omitempty"`
}

// CancelRequest is the body of POST CancelPath(id). [assumption]
type CancelRequest struct {
	Reason string `json:"reason,omitempty"`
}

// Courier is who carries a delivery. id, full_name, first_name,
// last_name and phone are [doc] (the courier_data of ORDER_OTHER_EVENT);
// vehicle and location are [assumption].
type Courier struct {
	ID        FlexID    `json:"id,omitempty"`
	FullName  string    `json:"full_name,omitempty"`
	FirstName string    `json:"first_name,omitempty"`
	LastName  string    `json:"last_name,omitempty"`
	Phone     string    `json:"phone,omitempty"`
	Vehicle   string    `json:"vehicle,omitempty"`
	Location  *Location `json:"location,omitempty"`
}

// Proof is what the courier leaves on delivery. [assumption]
type Proof struct {
	PhotoURL     string `json:"photo_url,omitempty"`
	SignatureURL string `json:"signature_url,omitempty"`
	PIN          string `json:"pin,omitempty"`
}

// Delivery is Rappi's view of a delivery: the answer of create, get and
// cancel. [assumption]
type Delivery struct {
	ID                  string   `json:"id"`
	ExternalID          string   `json:"external_id,omitempty"`
	Status              string   `json:"status"`
	Fee                 *Money   `json:"fee,omitempty"`
	TrackingURL         string   `json:"tracking_url,omitempty"`
	EstimatedDeliveryAt string   `json:"estimated_delivery_at,omitempty"` // RFC 3339
	Courier             *Courier `json:"courier,omitempty"`
	ProofOfDelivery     *Proof   `json:"proof_of_delivery,omitempty"`
	CancellationReason  string   `json:"cancellation_reason,omitempty"`
	CreatedAt           string   `json:"created_at,omitempty"` // RFC 3339
}

// The delivery statuses of the courier contract, in lifecycle order, and
// its side exits. [assumption] The names follow the brief's generic
// contract; Rappi's real names are partner-documented.
const (
	StatusCreated   = "CREATED"
	StatusAssigned  = "ASSIGNED"
	StatusPickedUp  = "PICKED_UP"
	StatusDelivered = "DELIVERED"
	StatusCanceled  = "CANCELED"
	StatusFailed    = "FAILED"
)

// statuses maps every status string the plugin understands, upper-cased,
// to the gateway's status. Sources per entry; an unknown status is read
// as pending by the plugin (and logged).
var statuses = map[string]delivery.Status{
	StatusCreated:         delivery.StatusPending,   // [assumption]
	"PENDING":             delivery.StatusPending,   // [assumption]
	"NOT_ASSIGNED":        delivery.StatusPending,   // [community] Rappi delivery webhooks: no courier yet
	StatusAssigned:        delivery.StatusAssigned,  // [assumption]; ASSIGNED also [community]
	"TAKEN":               delivery.StatusAssigned,  // [assumption] short form of taken_visible_order
	"TAKEN_VISIBLE_ORDER": delivery.StatusAssigned,  // [doc] ORDER_OTHER_EVENT when a courier takes the order
	"IN_STORE":            delivery.StatusAssigned,  // [community] courier at the pickup
	StatusPickedUp:        delivery.StatusPickedUp,  // [assumption]
	"IN_TRANSIT":          delivery.StatusPickedUp,  // [community] courier took the order
	"AT_DESTINATION":      delivery.StatusPickedUp,  // [community] courier waiting for the customer
	StatusDelivered:       delivery.StatusDelivered, // [assumption]; DELIVERED also [community]
	"FINISHED":            delivery.StatusDelivered, // [assumption]
	StatusCanceled:        delivery.StatusCancelled, // [assumption]
	"CANCELLED":           delivery.StatusCancelled, // [assumption] British spelling
	StatusFailed:          delivery.StatusFailed,    // [assumption]
	"RETURNED":            delivery.StatusFailed,    // [assumption] undeliverable, brought back
}

// CancelEventPrefix starts every cancellation event name. [doc]
// ORDER_EVENT_CANCEL sends e.g. {"event":"canceled_with_charge",...}; the
// list of names is not public, so every "canceled_…" event is a
// cancellation.
const CancelEventPrefix = "CANCELED_"

// Status maps a Rappi status or event name, in any case, to the gateway's
// status; ok is false when the name is unknown.
func Status(s string) (st delivery.Status, ok bool) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if st, ok := statuses[u]; ok {
		return st, true
	}
	if strings.HasPrefix(u, CancelEventPrefix) {
		return delivery.StatusCancelled, true
	}
	return "", false
}

// Webhook is the body Rappi POSTs for a delivery event. The shape is the
// documented ORDER_OTHER_EVENT / ORDER_EVENT_CANCEL one ([doc]: event,
// order_id, store_id, event_time "2006-01-02 15:04:05",
// additional_information.courier_data, eta_to_store); for the courier
// product, event names the new delivery status (ASSIGNED, PICKED_UP, …)
// and order_id is Rappi's delivery id ([assumption]). status, external_id,
// tracking_url, estimated_delivery_at, courier_data.vehicle/location,
// reason and proof_of_delivery are [assumption] extensions; the plugin
// reads them when present.
type Webhook struct {
	Event                 string          `json:"event"`
	OrderID               FlexID          `json:"order_id"`
	StoreID               string          `json:"store_id,omitempty"`
	ExternalID            string          `json:"external_id,omitempty"`
	Status                string          `json:"status,omitempty"`
	EventTime             string          `json:"event_time,omitempty"`
	TrackingURL           string          `json:"tracking_url,omitempty"`
	EstimatedDeliveryAt   string          `json:"estimated_delivery_at,omitempty"`
	AdditionalInformation *WebhookDetails `json:"additional_information,omitempty"`
}

// WebhookDetails is a webhook's additional_information. courier_data,
// eta_to_store and storekeeper_name are [doc]; reason and
// proof_of_delivery are [assumption].
type WebhookDetails struct {
	CourierData     *Courier `json:"courier_data,omitempty"`
	ETAToStore      *int64   `json:"eta_to_store,omitempty"`
	StorekeeperName string   `json:"storekeeper_name,omitempty"`
	Reason          string   `json:"reason,omitempty"`
	ProofOfDelivery *Proof   `json:"proof_of_delivery,omitempty"`
}

// FlexID is an id Rappi sends as a JSON string or a number. [doc]
// order_id is a string in the documented order events; courier_data.id
// is a number; [community] notes that Rappi types the same order id both
// ways across its API. It always marshals as a string.
type FlexID string

// UnmarshalJSON accepts a string, a number or null.
func (id *FlexID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] != '"' && !bytes.Equal(b, []byte("null")) {
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return err
		}
		*id = FlexID(n.String())
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*id = FlexID(s)
	return nil
}

// EventTimeLayout is the layout of a webhook's event_time. [doc] The
// example is "2023-05-04 12:01:22"; the time zone is not documented and is
// read as UTC ([assumption]). RFC 3339 is accepted too.
const EventTimeLayout = "2006-01-02 15:04:05"

// WebhookDedupKey lists the webhook fields whose values, joined, identify
// one notification: the same delivery, event and event time is the same
// notification redelivered. [assumption] Rappi documents no event id; the
// three fields are in every documented order event.
var WebhookDedupKey = []string{"json:order_id", "json:event", "json:event_time"}
