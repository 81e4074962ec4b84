// Package wire is the one place that spells out the PedidosYa Envíos
// Courier API v3 wire format: base URL, paths, headers, JSON field names,
// status strings and error bodies. The plugin and its fake
// (pedidosyafake) both use it, so they cannot drift apart.
//
// PedidosYa's official documentation could not be consulted; every fact
// below is community-sourced and names where it comes from:
//
//	[ref]  PipeCore's shared/reference/providers.md §5.2 (community-sourced)
//	[rs]   alelopezperez/pedidosya-courier-rs: Rust models generated from
//	       PedidosYa's "PedidosYa Courier API" OpenAPI document 3.0.0
//	[mag]  improntus/module-pedidosya (Magento 2), Model/Webservice.php
//	[odoo] public Odoo delivery connectors calling courier-api v3 (one with
//	       a mock client built from the OpenAPI schemas)
//	[ours] seen nowhere: a PipeCore assumption or convention, implemented
//	       the same way by pedidosyafake; check it against the real API
//
// Nothing here is verified against PedidosYa's servers.
package wire

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"time"
)

// DefaultBaseURL is the production Courier API host; paths below carry the
// /v3 prefix [ref][rs][mag][odoo]. One Odoo connector names a sandbox host
// courier-api-sandbox.pedidosya.com, which no other source confirms, so it
// is not used: test shippings go to production with isTest=true [ref].
const DefaultBaseURL = "https://courier-api.pedidosya.com"

// Request headers.
const (
	// HeaderAuthorization carries the API token [ref][rs][mag][odoo].
	HeaderAuthorization = "Authorization"
	// AuthPrefix goes before the token in HeaderAuthorization. Most clients
	// send the raw token, and the OpenAPI description reads
	// "'Authorization: token'" [rs][mag][odoo]; a few PHP clients send
	// "Bearer <token>" [ref]. Change it here if PedidosYa says otherwise.
	AuthPrefix = ""
	// HeaderContentType / ContentTypeJSON: every body is JSON [rs][mag][odoo].
	HeaderContentType = "Content-Type"
	ContentTypeJSON   = "application/json"
	// HeaderRetryAfter is the standard HTTP header; whether PedidosYa sends
	// it with a 429 is unknown [ours].
	HeaderRetryAfter = "Retry-After"
)

// Paths (relative to the base URL).
const (
	// PathEstimates: POST, body ShippingRequest, answer Estimate [ref][rs][odoo].
	PathEstimates = "/v3/shippings/estimates"
	// PathShippings: POST, body ShippingRequest, answer Shipping [ref][mag][odoo].
	// A GET on it with QueryReferenceID is the lookup by reference [ours].
	PathShippings = "/v3/shippings"
	// QueryReferenceID filters GET PathShippings by referenceId, answered
	// with a ShippingList [ours]: no source documents a lookup, but the
	// plugin needs one to deduplicate creates (PedidosYa has no idempotency
	// header [ref]). DecodeShippingList also accepts a bare JSON array.
	QueryReferenceID = "referenceId"
	// PathWebhooksConfiguration: PUT {webhooksConfiguration:[{isTest, topic,
	// notificationType, urls:[{url, authorizationKey}]}]} registers the
	// callback URL [ref][rs][odoo]. The plugin does not call it: the
	// operator registers the gateway's URL (README.md).
	PathWebhooksConfiguration = "/v3/webhooks-configuration"
)

// ShippingPath is GET /v3/shippings/{id}, answer Shipping [ref][mag][odoo].
func ShippingPath(id string) string { return PathShippings + "/" + url.PathEscape(id) }

// TrackingPath is GET /v3/shippings/{id}/tracking, answer Tracking [ref][odoo].
func TrackingPath(id string) string { return ShippingPath(id) + "/tracking" }

// CancelPath is POST /v3/shippings/{id}/cancel, body CancelRequest, answer
// Shipping [ref][mag][odoo].
func CancelPath(id string) string { return ShippingPath(id) + "/cancel" }

// Shipping statuses (Shipping.Status and CallbackData.Status).
const (
	StatusPreorder    = "PREORDER"     // [ref] scheduled, not yet dispatched
	StatusConfirmed   = "CONFIRMED"    // [ref][rs] awaiting dispatch
	StatusInProgress  = "IN_PROGRESS"  // [ref][rs] "transport has been assigned"
	StatusNearPickup  = "NEAR_PICKUP"  // [ref][rs]
	StatusPickedUp    = "PICKED_UP"    // [ref][rs]
	StatusNearDropoff = "NEAR_DROPOFF" // [ref][rs]
	StatusCompleted   = "COMPLETED"    // [ref][rs] delivered
	StatusCancelled   = "CANCELLED"    // [ref][rs]
	StatusRejected    = "REJECTED"     // [rs] "requested but rejected due to invalid data"; never sent as a callback
)

// TopicShippingStatus is the only callback topic [ref][rs]; NotificationWebhook
// is its notificationType in the webhooks configuration [ref][odoo].
const (
	TopicShippingStatus = "SHIPPING_STATUS"
	NotificationWebhook = "WEBHOOK"
)

// Waypoint types: exactly one of each per shipping [ref][rs].
const (
	WaypointPickUp  = "PICK_UP"
	WaypointDropOff = "DROP_OFF"
)

// Item types [rs][odoo].
const (
	ItemStandard = "STANDARD"
	ItemFragile  = "FRAGILE"
	ItemCold     = "COLD"
)

// Delivery modes of an offer or route [rs][odoo].
const (
	ModeExpress   = "EXPRESS"
	ModeScheduled = "SCHEDULED"
)

// CancelCodeUserCancelled is the cancelCode of a shipping cancelled on the
// merchant's request, with the Spanish cancelReason PedidosYa attaches to
// it [rs]. The fake sets both after POST .../cancel [ours].
const (
	CancelCodeUserCancelled   = "USER_CANCELLED"
	CancelReasonUserCancelled = "Cancelado a solicitud del usuario"
)

// Error codes. PedidosYa's codes are not documented in any source; these
// are what the fake answers and what tests assert on [ours]. The plugin
// only passes Error.Code through as the error's provider code.
const (
	CodeUnauthorized     = "INVALID_TOKEN"
	CodeInvalidRequest   = "INVALID_REQUEST"
	CodeNotFound         = "SHIPPING_NOT_FOUND"
	CodeInvalidStatus    = "INVALID_STATUS_TRANSITION"
	CodeTooManyRequests  = "TOO_MANY_REQUESTS"
	CodeInternalError    = "INTERNAL_ERROR"
	CodeMethodNotAllowed = "METHOD_NOT_ALLOWED"
)

// Limits.
const (
	// MaxReasonText bounds reasonText; one client cuts it to 255 [odoo].
	MaxReasonText = 255
	// MaxItemValue bounds the value all items of one shipping declare:
	// "less than a million" [rs].
	MaxItemValue = 1_000_000
	// MaxItems bounds the items of one shipping: "at least one item and
	// less than a hundred" [rs].
	MaxItems = 99
	// MaxItemQuantity, MaxItemVolume (cm³) and MaxItemWeight (kg) bound
	// one item [rs].
	MaxItemQuantity = 10000
	MaxItemVolume   = 80840
	MaxItemWeight   = 20
)

// PhonePattern is the phone rule of a waypoint: an optional "+", a digit
// 1-9, then 5 to 14 digits [rs].
const PhonePattern = `^\+?[1-9][0-9]{5,14}$`

// ShippingRequest is the body of POST PathShippings and POST PathEstimates
// ("same body as create") [ref][rs EstimationShippingRequest][odoo].
type ShippingRequest struct {
	// ReferenceID is the client's reference, shown to the rider at pickup;
	// required [rs]. The plugin sends the gateway's delivery id.
	ReferenceID string `json:"referenceId"`
	// IsTest creates a test shipping (no rider is sent) [ref][rs].
	IsTest bool `json:"isTest"`
	// NotificationMail receives PedidosYa's own e-mails [ref][rs]; unused.
	NotificationMail string `json:"notificationMail,omitempty"`
	// DeliveryTime is the desired drop-off time of a scheduled shipping,
	// UTC ISO 8601 [rs]; unused (express only).
	DeliveryTime string     `json:"deliveryTime,omitempty"`
	Items        []Item     `json:"items"`     // 1..99 [rs]
	Waypoints    []Waypoint `json:"waypoints"` // one PICK_UP and one DROP_OFF [rs]
}

// Item is one kind of thing carried [ref][rs ShippingItemRequest][odoo].
type Item struct {
	Type        string  `json:"type,omitempty"` // ItemStandard, ItemFragile, ItemCold
	Value       float64 `json:"value"`          // declared value, major units, >= 0
	Description string  `json:"description"`    // required
	SKU         string  `json:"sku,omitempty"`
	Quantity    int     `json:"quantity"` // 1..10000
	Volume      float64 `json:"volume"`   // cm³ per unit, <= 80840
	Weight      float64 `json:"weight"`   // kg per unit, <= 20
}

// Waypoint is a pickup or drop-off [ref][rs WayPointModel][odoo].
type Waypoint struct {
	Type              string   `json:"type"`          // WaypointPickUp or WaypointDropOff
	AddressStreet     string   `json:"addressStreet"` // street and door number; required
	AddressAdditional string   `json:"addressAdditional,omitempty"`
	City              string   `json:"city"` // required
	Latitude          *float64 `json:"latitude,omitempty"`
	Longitude         *float64 `json:"longitude,omitempty"`
	// Phone: optional "+", then a digit 1-9 and 5 to 14 more digits [rs].
	Phone        string   `json:"phone"`
	Name         string   `json:"name"` // contact person; required
	Instructions string   `json:"instructions,omitempty"`
	CollectMoney *float64 `json:"collectMoney,omitempty"` // cash on delivery; unused
}

// Estimate is the answer of POST PathEstimates [rs EstimationShippingResponse][odoo].
type Estimate struct {
	EstimateID     string          `json:"estimateId"`
	ReferenceID    string          `json:"referenceId,omitempty"`
	IsTest         bool            `json:"isTest"`
	Items          []Item          `json:"items,omitempty"`
	Waypoints      []Waypoint      `json:"waypoints,omitempty"`
	DeliveryOffers []DeliveryOffer `json:"deliveryOffers"`
}

// DeliveryOffer is one priced way of doing an estimate [rs DeliveryOffer][mag][odoo].
type DeliveryOffer struct {
	DeliveryOfferID string `json:"deliveryOfferId"`
	DeliveryMode    string `json:"deliveryMode"` // ModeExpress or ModeScheduled
	// Times are UTC ISO 8601 (TimeFormat).
	EstimatedPickUpTime string `json:"estimatedPickUpTime,omitempty"`
	// EstimatedDrivingTime is the ride from pickup to drop-off, in minutes.
	EstimatedDrivingTime int    `json:"estimatedDrivingTime,omitempty"`
	DeliveryTimeFrom     string `json:"deliveryTimeFrom,omitempty"` // earliest promised delivery
	DeliveryTimeTo       string `json:"deliveryTimeTo,omitempty"`   // latest promised delivery
	// ConfirmationTimeLimit is when the offer can no longer be confirmed.
	ConfirmationTimeLimit string   `json:"confirmationTimeLimit,omitempty"`
	Pricing               *Pricing `json:"pricing,omitempty"`
}

// Pricing is a price in major units (a JSON number, 2990 CLP or 12.5 UYU)
// with its ISO 4217 currency [rs ShippingRoutePricing][mag][odoo].
type Pricing struct {
	Subtotal float64 `json:"subtotal"`
	Taxes    float64 `json:"taxes"`
	Total    float64 `json:"total"`
	Currency string  `json:"currency"`
}

// Shipping is the answer of POST PathShippings, GET ShippingPath and POST
// CancelPath [rs ConfirmShippingResponse][odoo].
type Shipping struct {
	// ShippingID is the id in the create answer [rs][odoo]. Whether GET
	// answers with shippingId or id is not known; the fake sends both and
	// the plugin reads either (see Identifier) [ours].
	ShippingID string `json:"shippingId,omitempty"`
	ID         string `json:"id,omitempty"`
	// ConfirmationCode is quoted to PedidosYa's call centre [rs].
	ConfirmationCode string `json:"confirmationCode,omitempty"`
	IsTest           bool   `json:"isTest"`
	ReferenceID      string `json:"referenceId,omitempty"`
	Status           string `json:"status"` // Status* above [rs][odoo]
	// CancelCode and CancelReason are documented on the callback [rs]; on
	// the shipping itself they are an assumption [ours].
	CancelCode   string `json:"cancelCode,omitempty"`
	CancelReason string `json:"cancelReason,omitempty"`
	// ProofOfDelivery says a proof exists, fetched from
	// /v3/shippings/{id}/proofOfDelivery [rs]; not fetched by the plugin.
	ProofOfDelivery bool `json:"proofOfDelivery,omitempty"`
	// ShareLocationURL is the public tracking page; "only sent for real
	// orders, not for testing orders" [rs][odoo].
	ShareLocationURL string     `json:"shareLocationUrl,omitempty"`
	NotificationMail string     `json:"notificationMail,omitempty"`
	Items            []Item     `json:"items,omitempty"`
	Waypoints        []Waypoint `json:"waypoints,omitempty"`
	Route            *Route     `json:"route,omitempty"`
	CreatedAt        string     `json:"createdAt,omitempty"`
}

// Identifier returns the shipping's id, whichever field carries it.
func (s Shipping) Identifier() string {
	if s.ShippingID != "" {
		return s.ShippingID
	}
	return s.ID
}

// Route is the route assigned to a shipping, with its price and times
// [rs ShippingRoute][odoo].
type Route struct {
	DeliveryMode          string   `json:"deliveryMode,omitempty"`
	EstimatedPickUpTime   string   `json:"estimatedPickUpTime,omitempty"`
	EstimatedDeliveryTime string   `json:"estimatedDeliveryTime,omitempty"`
	DeliveryTimeFrom      string   `json:"deliveryTimeFrom,omitempty"`
	DeliveryTimeTo        string   `json:"deliveryTimeTo,omitempty"`
	Distance              float64  `json:"distance,omitempty"` // metres
	Pricing               *Pricing `json:"pricing,omitempty"`
}

// ShippingList answers GET PathShippings?referenceId=… [ours].
type ShippingList struct {
	Data []Shipping `json:"data"`
}

// DecodeShippingList reads a lookup answer: a ShippingList or a bare JSON
// array of shippings [ours].
func DecodeShippingList(b []byte) ([]Shipping, error) {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '[' {
		var list []Shipping
		err := json.Unmarshal(t, &list)
		return list, err
	}
	var l ShippingList
	err := json.Unmarshal(b, &l)
	return l.Data, err
}

// Tracking answers GET TrackingPath: where the rider is and who they are.
// Field names come from one connector's mock of the OpenAPI
// TrackingResponse schema only [odoo]; treat them as unverified.
type Tracking struct {
	Latitude             *float64 `json:"latitude,omitempty"`
	Longitude            *float64 `json:"longitude,omitempty"`
	DeliveryName         string   `json:"deliveryName,omitempty"`      // the rider's name
	DeliveryTransport    string   `json:"deliveryTransport,omitempty"` // e.g. "Motorbike"
	EstimatedPickUpTime  string   `json:"estimatedPickUpTime,omitempty"`
	EstimatedDropOffTime string   `json:"estimatedDropOffTime,omitempty"`
}

// CancelRequest is the body of POST CancelPath [ref][mag][odoo].
type CancelRequest struct {
	ReasonText string `json:"reasonText"`
}

// Callback is the body PedidosYa POSTs to a configured webhook URL, with
// HeaderAuthorization set to the URL's authorizationKey as is (a static
// shared secret, no HMAC) [ref][rs CallbackRequest]. Any non-2xx reply
// counts as a failed delivery [ref].
type Callback struct {
	Topic       string `json:"topic"`       // TopicShippingStatus
	ID          string `json:"id"`          // the shipping id
	ReferenceID string `json:"referenceId"` // the create's referenceId
	// Generated is when the message was generated, Transmitted when it was
	// sent, both UTC ISO 8601 [rs].
	Generated   string       `json:"generated"`
	Transmitted string       `json:"transmitted"`
	Data        CallbackData `json:"data"`
}

// CallbackData is the topic-specific part of a Callback [ref][rs].
type CallbackData struct {
	// Status is one of CONFIRMED, IN_PROGRESS, NEAR_PICKUP, PICKED_UP,
	// NEAR_DROPOFF, COMPLETED, CANCELLED: the only ones sent [rs].
	Status string `json:"status"`
	// CancelCode (e.g. NO_RIDER_AVAILABLE) and its Spanish CancelReason
	// are set only when Status is CANCELLED [rs].
	CancelCode   string `json:"cancelCode,omitempty"`
	CancelReason string `json:"cancelReason,omitempty"`
	// EstimatedPickUpTime is set for CONFIRMED, IN_PROGRESS, NEAR_PICKUP;
	// EstimatedDropOffTime also for PICKED_UP and NEAR_DROPOFF [rs].
	EstimatedPickUpTime  string `json:"estimatedPickUpTime,omitempty"`
	EstimatedDropOffTime string `json:"estimatedDropOffTime,omitempty"`
}

// Error is PedidosYa's error body [rs HttpErrorResponse][mag]: the HTTP
// status, a code and a message. One endpoint answers "messages" instead of
// "message" [mag]; see Text.
type Error struct {
	Status   int      `json:"status,omitempty"`
	Code     string   `json:"code,omitempty"`
	Message  string   `json:"message,omitempty"`
	Messages []string `json:"messages,omitempty"`
}

// Text returns the error's human message.
func (e Error) Text() string {
	if m := strings.TrimSpace(e.Message); m != "" {
		return m
	}
	return strings.TrimSpace(strings.Join(e.Messages, "; "))
}

// TimeFormat is how PedidosYa writes times: UTC, ISO 8601, seconds,
// e.g. 2020-07-21T17:32:28Z [rs].
const TimeFormat = "2006-01-02T15:04:05Z"

// FormatTime writes t in TimeFormat.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// ParseTime reads a PedidosYa time, also accepting fractional seconds and
// offsets (RFC 3339). It reports false for an empty or malformed value.
func ParseTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC(), true
}
