package main

// This file is the only place Uber Direct's wire format is spelled out:
// hosts, paths, headers, JSON field names and status words. Sources
// (providers.md §4 and Uber's own uber-direct-sdk openapi.yaml):
//
//   - auth: POST https://auth.uber.com/oauth/v2/token, form-encoded
//     client_credentials with scope eats.deliveries [doc]
//   - API: https://api.uber.com/v1/customers/{customer_id}/... with
//     "Authorization: Bearer <token>" and JSON bodies [doc]
//   - errors: {"code", "message", "kind":"error", "metadata"} [doc]
//   - webhooks: event.delivery_status / event.courier_update, the full
//     delivery object under "data", signed with X-Uber-Signature [doc]

import "time"

// Hosts and paths.
const (
	defaultBaseURL = "https://api.uber.com"
	defaultAuthURL = "https://auth.uber.com/oauth/v2/token"
	// tokenPath is appended to base_url when auth_url is unset, so one
	// fake can serve both the token endpoint and the API.
	tokenPath = "/oauth/v2/token"

	customerPrefix = "/v1/customers/" // + customer_id
	quotesPath     = "/delivery_quotes"
	deliveriesPath = "/deliveries"
	cancelSuffix   = "/cancel"
)

// OAuth client-credentials grant (form fields).
const (
	formClientID     = "client_id"
	formClientSecret = "client_secret"
	formGrantType    = "grant_type"
	formScope        = "scope"
	grantClientCreds = "client_credentials"
	scopeDeliveries  = "eats.deliveries"
)

// List deliveries query parameters. Uber documents filter, limit and
// offset; there is no external_id filter, so a lookup lists and filters.
const (
	queryLimit  = "limit"
	queryOffset = "offset"
	// listPageSize and listMaxPages bound an external_id lookup to the
	// most recent listPageSize*listMaxPages deliveries.
	listPageSize = 50
	listMaxPages = 4
)

// Webhook header (the gateway verifies it; see Info) and event kinds.
const (
	headerSignature      = "X-Uber-Signature"
	kindDeliveryStatus   = "event.delivery_status"
	kindCourierUpdate    = "event.courier_update"
	webhookDedupIDSource = "json:id"
)

// Uber delivery statuses [doc].
const (
	uberPending        = "pending"
	uberPickup         = "pickup"
	uberPickupComplete = "pickup_complete"
	uberDropoff        = "dropoff"
	uberDelivered      = "delivered"
	uberCanceled       = "canceled"
	uberReturned       = "returned"
)

// Uber error codes the plugin acts on [doc].
const (
	codeDuplicateDelivery = "duplicate_delivery"
	codeNoncancelable     = "noncancelable_delivery"
	codeRequestTimeout    = "request_timeout"
)

// maxNotes is Uber's limit on pickup_notes and dropoff_notes.
const maxNotes = 280

// tokenResponse is the token endpoint's answer.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
}

// oauthError is the token endpoint's error answer (RFC 6749 §5.2).
type oauthError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

// apiError is the API's error answer.
type apiError struct {
	Code     string         `json:"code"`
	Message  string         `json:"message"`
	Kind     string         `json:"kind"`
	Metadata map[string]any `json:"metadata"`
}

// structuredAddress is encoded to JSON and sent as a string in
// pickup_address / dropoff_address, as Uber recommends.
type structuredAddress struct {
	StreetAddress []string `json:"street_address"`
	City          string   `json:"city,omitempty"`
	State         string   `json:"state,omitempty"`
	ZipCode       string   `json:"zip_code,omitempty"`
	Country       string   `json:"country,omitempty"`
}

// quoteRequest is POST /delivery_quotes.
type quoteRequest struct {
	PickupAddress      string   `json:"pickup_address"`
	DropoffAddress     string   `json:"dropoff_address"`
	PickupLatitude     *float64 `json:"pickup_latitude,omitempty"`
	PickupLongitude    *float64 `json:"pickup_longitude,omitempty"`
	DropoffLatitude    *float64 `json:"dropoff_latitude,omitempty"`
	DropoffLongitude   *float64 `json:"dropoff_longitude,omitempty"`
	PickupPhoneNumber  string   `json:"pickup_phone_number,omitempty"`
	DropoffPhoneNumber string   `json:"dropoff_phone_number,omitempty"`
	PickupReadyDT      string   `json:"pickup_ready_dt,omitempty"`
	ManifestTotalValue *int64   `json:"manifest_total_value,omitempty"`
}

// quoteResponse is the quote object.
type quoteResponse struct {
	Kind           string `json:"kind"`
	ID             string `json:"id"`
	Created        string `json:"created"`
	Expires        string `json:"expires"`
	Fee            int64  `json:"fee"`
	Currency       string `json:"currency"`      // lower case, deprecated
	CurrencyType   string `json:"currency_type"` // upper case
	DropoffETA     string `json:"dropoff_eta"`
	Duration       int64  `json:"duration"`        // minutes to drop-off
	PickupDuration int64  `json:"pickup_duration"` // minutes to pickup
}

// manifestItem is one entry of manifest_items.
type manifestItem struct {
	Name     string `json:"name"`
	Quantity int    `json:"quantity"`
	Size     string `json:"size,omitempty"`
	Price    *int64 `json:"price,omitempty"`
}

// createRequest is POST /deliveries.
type createRequest struct {
	QuoteID            string         `json:"quote_id,omitempty"`
	PickupName         string         `json:"pickup_name"`
	PickupAddress      string         `json:"pickup_address"`
	PickupPhoneNumber  string         `json:"pickup_phone_number"`
	PickupLatitude     *float64       `json:"pickup_latitude,omitempty"`
	PickupLongitude    *float64       `json:"pickup_longitude,omitempty"`
	PickupNotes        string         `json:"pickup_notes,omitempty"`
	DropoffName        string         `json:"dropoff_name"`
	DropoffAddress     string         `json:"dropoff_address"`
	DropoffPhoneNumber string         `json:"dropoff_phone_number"`
	DropoffLatitude    *float64       `json:"dropoff_latitude,omitempty"`
	DropoffLongitude   *float64       `json:"dropoff_longitude,omitempty"`
	DropoffNotes       string         `json:"dropoff_notes,omitempty"`
	ManifestItems      []manifestItem `json:"manifest_items"`
	ManifestReference  string         `json:"manifest_reference,omitempty"`
	ManifestTotalValue *int64         `json:"manifest_total_value,omitempty"`
	PickupReadyDT      string         `json:"pickup_ready_dt,omitempty"`
	ExternalID         string         `json:"external_id,omitempty"`
	IdempotencyKey     string         `json:"idempotency_key,omitempty"`
}

// latLng is a coordinate.
type latLng struct {
	Lat float64 `json:"lat"`
	Lng float64 `json:"lng"`
}

// courierInfo is the delivery's courier.
type courierInfo struct {
	Name        string  `json:"name"`
	PhoneNumber string  `json:"phone_number"`
	VehicleType string  `json:"vehicle_type"`
	Location    *latLng `json:"location"`
}

// verificationProof is what the courier collected at a waypoint.
type verificationProof struct {
	Signature *struct {
		ImageURL string `json:"image_url"`
	} `json:"signature"`
	Picture *struct {
		ImageURL string `json:"image_url"`
	} `json:"picture"`
	PinCode *struct {
		Entered string `json:"entered"`
	} `json:"pin_code"`
}

// waypoint is the pickup or drop-off of a delivery object.
type waypoint struct {
	Status       string             `json:"status"` // completed, failed
	Verification *verificationProof `json:"verification"`
}

// cancelationReason is present on some cancelled deliveries
// [community: uber_api crate; unverified].
type cancelationReason struct {
	PrimaryReason   string `json:"primary_reason"`
	SecondaryReason string `json:"secondary_reason"`
}

// deliveryObject is the delivery returned by create, get, list and cancel
// and carried under "data" in webhooks. Only the fields the plugin maps
// are decoded.
type deliveryObject struct {
	ID                  string             `json:"id"`
	QuoteID             string             `json:"quote_id"`
	Status              string             `json:"status"`
	Fee                 *int64             `json:"fee"`
	Currency            string             `json:"currency"`
	TrackingURL         string             `json:"tracking_url"`
	Courier             *courierInfo       `json:"courier"`
	CourierImminent     bool               `json:"courier_imminent"`
	DropoffETA          string             `json:"dropoff_eta"`
	Dropoff             *waypoint          `json:"dropoff"`
	ExternalID          string             `json:"external_id"`
	Updated             string             `json:"updated"`
	UndeliverableAction string             `json:"undeliverable_action"`
	UndeliverableReason string             `json:"undeliverable_reason"`
	CancelationReason   *cancelationReason `json:"cancelation_reason"`
}

// listResponse is GET /deliveries.
type listResponse struct {
	Data     []deliveryObject `json:"data"`
	NextHref string           `json:"next_href"`
}

// webhookEnvelope is the body of both webhook kinds [doc].
type webhookEnvelope struct {
	ID         string          `json:"id"`
	Kind       string          `json:"kind"`
	Status     string          `json:"status"`
	DeliveryID string          `json:"delivery_id"`
	Created    string          `json:"created"`
	Location   *latLng         `json:"location"` // courier_update
	Data       *deliveryObject `json:"data"`
}

// parseTime reads an RFC 3339 timestamp; the zero time when absent or
// malformed.
func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}
