// Package uberfake is an in-process fake of Uber Direct (the
// Delivery-as-a-Service API) for tests of the uberdirect plugin and of the
// gateway end to end. It follows the documented wire format (providers.md
// §4 and Uber's uber-direct-sdk openapi.yaml):
//
//   - POST /oauth/v2/token: form-encoded client_credentials grant with
//     scope eats.deliveries for ClientID / ClientSecret; answers
//     {access_token, token_type, expires_in, scope}, or an OAuth error
//     ({"error":"invalid_client"} with 401, invalid_scope /
//     unsupported_grant_type / invalid_request with 400).
//   - /v1/customers/{customer_id}/... (only CustomerID exists; another id
//     is 404 customer_not_found) with "Authorization: Bearer <token>": an
//     unknown, expired or revoked token is 401
//     {"code":"unauthorized","message":"Invalid OAuth 2.0 credentials provided."}.
//   - POST delivery_quotes: pickup_address and dropoff_address required
//     (plain or JSON-encoded structured addresses), E.164 phone numbers,
//     pickup_ready_dt within 30 days → a dqt_ quote valid 15 minutes.
//   - POST deliveries: the documented required fields (pickup_name,
//     pickup_address, pickup_phone_number, dropoff_name, dropoff_address,
//     dropoff_phone_number, manifest_items), else 400 invalid_params with
//     metadata naming the field; quote_id checked (expired_quote,
//     used_quote, mismatched_price_quote); a repeated idempotency_key
//     (60 minutes) or external_id + manifest_reference pair is 409
//     duplicate_delivery with metadata.delivery_id → a del_ delivery in
//     status pending.
//   - GET deliveries (filter, limit ≤ 100 default 20, offset; newest
//     first, next_href while more remain). Uber documents no external_id
//     filter, so the fake has none either: look-ups list and filter.
//   - GET deliveries/{id}, POST deliveries/{id}/cancel (pending or pickup
//     only, otherwise 400 noncancelable_delivery "Delivery cannot be
//     cancelled"). Delivery updates are not implemented (400).
//
// Errors use Uber's body {"code","message","kind":"error"[,"metadata"]}.
// Deliveries move only when a test calls Advance: pending → pickup (a
// courier is assigned) → pickup_complete → dropoff → delivered (with a
// photo proof, plus signature and PIN when the create asked for them).
// Advance and CourierUpdate POST event.delivery_status /
// event.courier_update webhooks (the full delivery under "data"),
// synchronously, signed with X-Uber-Signature and the legacy
// X-Postmates-Signature: lower-case hex HMAC-SHA256 of the body with the
// signing key. Creating and cancelling post no webhook.
//
// The Server is safe for concurrent use, listens on 127.0.0.1 only, and
// Close stops everything, including answers held back by SetDelay.
package uberfake

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pipecore/pipecore/sdk/providertest/fakehttp"
)

// The credentials the fake accepts.
const (
	ClientID     = "uber-test-client"
	ClientSecret = "uber-test-secret"
	CustomerID   = "cus_test"
)

// Defaults.
const (
	defaultFee      = 2500
	defaultCurrency = "CLP"
	defaultETA      = 35 * time.Minute
	defaultTokenTTL = 30 * 24 * time.Hour
	quoteValidity   = 15 * time.Minute
	idemWindow      = 60 * time.Minute
	maxBody         = 1 << 20
	defaultLimit    = 20
	maxLimit        = 100
	maxNotes        = 280
)

// Request is one API request the fake received. Path is the request URI:
// the path and, when there is one, "?" and the query.
type Request = fakehttp.Request

// Server is a running fake. Create it with Start and stop it with Close.
type Server struct {
	api *fakehttp.Server

	mu            sync.Mutex
	now           func() time.Time
	fee           int64
	currency      string
	eta           time.Duration
	tokenTTL      time.Duration
	tokens        map[string]time.Time // access token → expiry
	tokenRequests int
	webhookURL    string
	signingKey    string
	quotes        map[string]*quote
	deliveries    map[string]*delivery
	order         []string // delivery ids in booking order
	idem          map[string]idemEntry
}

type idemEntry struct {
	deliveryID string
	at         time.Time
}

// Start starts a fake on 127.0.0.1 with the defaults: fee 2500 CLP, ETA
// 35 minutes, tokens valid 30 days, no delay, no webhooks.
func Start() *Server {
	s := &Server{
		api:        fakehttp.New(fakehttp.Options{Name: "uberfake", PathWithQuery: true}),
		now:        time.Now,
		fee:        defaultFee,
		currency:   defaultCurrency,
		eta:        defaultETA,
		tokenTTL:   defaultTokenTTL,
		tokens:     map[string]time.Time{},
		quotes:     map[string]*quote{},
		deliveries: map[string]*delivery{},
		idem:       map[string]idemEntry{},
	}
	s.api.Start(http.HandlerFunc(s.serve))
	return s
}

// URL is the plugin's base_url; the token URL is URL()+"/oauth/v2/token".
func (s *Server) URL() string { return s.api.URL() }

// Close stops the server, releasing held-back answers first.
func (s *Server) Close() { s.api.Close() }

// SetFee sets the fee of later quotes and deliveries booked without a
// quote (default 2500 CLP).
func (s *Server) SetFee(amount int64, currency string) {
	s.mu.Lock()
	s.fee, s.currency = amount, strings.ToUpper(currency)
	s.mu.Unlock()
}

// SetETA sets the time from quote or booking to drop-off (default 35m).
func (s *Server) SetETA(d time.Duration) {
	s.mu.Lock()
	s.eta = d
	s.mu.Unlock()
}

// SetDelay holds back every API answer (not the token endpoint's) by d
// after the request has been processed, so a delivery may be booked while
// its answer never arrives. Answers already held back follow the new
// delay: SetDelay(0) releases them. A client that gives up cancels its
// request; Close releases everything.
func (s *Server) SetDelay(d time.Duration) { s.api.SetDelay(d) }

// FailNext makes the next n API calls (not token requests) answer status
// with Uber's error body for it, before authentication or processing.
func (s *Server) FailNext(status, n int) { s.api.FailNext(status, n) }

// SetTokenTTL sets expires_in of tokens minted from now on (default 30
// days); the API refuses a token after it.
func (s *Server) SetTokenTTL(d time.Duration) {
	s.mu.Lock()
	s.tokenTTL = d
	s.mu.Unlock()
}

// ExpireTokens revokes every token issued so far: the API answers 401.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	clear(s.tokens)
	s.mu.Unlock()
}

// TokenRequests counts the requests to the token endpoint, refused or not.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenRequests
}

// SetWebhook sets where Advance and CourierUpdate POST webhooks and the
// key they are signed with; url "" disables webhooks.
func (s *Server) SetWebhook(url, signingKey string) {
	s.mu.Lock()
	s.webhookURL, s.signingKey = url, signingKey
	s.mu.Unlock()
}

// Deliveries is the number of deliveries booked.
func (s *Server) Deliveries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.order)
}

// Requests returns every API request received (token requests excluded),
// in order, including refused ones.
func (s *Server) Requests() []Request { return s.api.Requests() }

// Advance moves a delivery one step: pending → pickup (a courier is
// assigned) → pickup_complete → dropoff → delivered, and returns the new
// status. With a webhook set it POSTs event.delivery_status and returns an
// error when the receiver does not answer 2xx; the status has moved
// anyway, as at Uber. A finished delivery or an unknown id is an error.
func (s *Server) Advance(deliveryID string) (string, error) {
	s.mu.Lock()
	d := s.deliveries[deliveryID]
	if d == nil {
		s.mu.Unlock()
		return "", fmt.Errorf("uberfake: no delivery %q", deliveryID)
	}
	now := s.now()
	switch d.Status {
	case statusPending:
		d.Status = statusPickup
		d.Courier = newCourier(d)
	case statusPickup:
		d.Status = statusPickupComplete
		d.Pickup.Status, d.Pickup.StatusAt = "completed", now
	case statusPickupComplete:
		d.Status = statusDropoff
	case statusDropoff:
		d.Status = statusDelivered
		d.Complete = true
		d.Dropoff.Status, d.Dropoff.StatusAt = "completed", now
		d.Proof = s.proofFor(d)
	default:
		s.mu.Unlock()
		return "", fmt.Errorf("uberfake: delivery %s is %s and cannot advance", deliveryID, d.Status)
	}
	d.Updated = now
	status := d.Status
	body, target, key := s.eventLocked(kindDeliveryStatus, d, nil)
	s.mu.Unlock()
	return status, s.post(target, key, body)
}

// CourierUpdate moves the courier of a delivery that has one and POSTs
// event.courier_update when a webhook is set (an error when the receiver
// does not answer 2xx).
func (s *Server) CourierUpdate(deliveryID string, lat, lng float64) error {
	s.mu.Lock()
	d := s.deliveries[deliveryID]
	if d == nil {
		s.mu.Unlock()
		return fmt.Errorf("uberfake: no delivery %q", deliveryID)
	}
	if d.Courier == nil || d.Complete {
		s.mu.Unlock()
		return fmt.Errorf("uberfake: delivery %s (%s) has no active courier", deliveryID, d.Status)
	}
	d.Courier.Location = &latLng{Lat: lat, Lng: lng}
	d.Updated = s.now()
	body, target, key := s.eventLocked(kindCourierUpdate, d, &latLng{Lat: lat, Lng: lng})
	s.mu.Unlock()
	return s.post(target, key, body)
}

// Webhook kinds.
const (
	kindDeliveryStatus = "event.delivery_status"
	kindCourierUpdate  = "event.courier_update"
)

// webhookEvent is the body of a webhook [doc].
type webhookEvent struct {
	ID          string       `json:"id"`
	Kind        string       `json:"kind"`
	Status      string       `json:"status,omitempty"`
	DeliveryID  string       `json:"delivery_id"`
	Created     string       `json:"created"`
	LiveMode    bool         `json:"live_mode"`
	CustomerID  string       `json:"customer_id"`
	DeveloperID string       `json:"developer_id"`
	AccountID   string       `json:"account_id"`
	Location    *latLng      `json:"location,omitempty"`
	Data        deliveryJSON `json:"data"`
}

// eventLocked builds a webhook body for d; target is "" when webhooks are
// off. The caller holds s.mu.
func (s *Server) eventLocked(kind string, d *delivery, loc *latLng) (body []byte, target, key string) {
	if s.webhookURL == "" {
		return nil, "", ""
	}
	ev := webhookEvent{
		ID:          "evt_" + token(11),
		Kind:        kind,
		DeliveryID:  d.ID,
		Created:     stamp(s.now()),
		CustomerID:  CustomerID,
		DeveloperID: "dev_" + token(8),
		AccountID:   "acc_" + token(8),
		Location:    loc,
		Data:        s.render(d),
	}
	if kind == kindDeliveryStatus {
		ev.Status = d.Status
	}
	body, _ = json.Marshal(ev)
	return body, s.webhookURL, s.signingKey
}

// sign returns the signature Uber puts in X-Uber-Signature for body:
// lower-case hex HMAC-SHA256 with the webhook signing key.
func sign(key string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

func (s *Server) post(target, key string, body []byte) error {
	if target == "" {
		return nil
	}
	sig := sign(key, body)
	return s.api.PostWebhook(target, http.Header{
		"Content-Type":          {"application/json"},
		"X-Uber-Signature":      {sig},
		"X-Postmates-Signature": {sig},
		"User-Agent":            {"uberfake-webhooks"},
	}, body)
}

// answer is a response computed before the delay.
type answer struct {
	status int
	header http.Header
	body   any
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/oauth/v2/token" {
		s.serveToken(w, r)
		return
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, "/orders/"); ok && r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>Tracking</title><p>uberfake tracking page for order %s</p>\n", htmlEscape(rest))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return
	}
	start := time.Now()
	s.api.Record(r, body)
	failing, fail := s.api.TakeFailure()

	var a answer
	switch {
	case fail:
		a = uberError(failing)
	case len(body) > maxBody:
		a = apiErr(http.StatusRequestEntityTooLarge, "invalid_params", "The parameters of your request were invalid.", nil)
	default:
		a = s.route(r, body)
	}
	if s.api.Wait(r.Context(), start) != nil {
		return
	}
	for k, v := range a.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	_ = json.NewEncoder(w).Encode(a.body)
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.tokenRequests++
	s.mu.Unlock()
	oauthErr := func(status int, code, desc string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
	}
	if r.Method != http.MethodPost {
		oauthErr(http.StatusMethodNotAllowed, "invalid_request", "the token endpoint accepts POST only")
		return
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var err error
	switch mt {
	case "application/x-www-form-urlencoded":
		err = r.ParseForm()
	case "multipart/form-data":
		err = r.ParseMultipartForm(maxBody)
	default:
		oauthErr(http.StatusBadRequest, "invalid_request", "the body must be form-encoded")
		return
	}
	if err != nil {
		oauthErr(http.StatusBadRequest, "invalid_request", "malformed form")
		return
	}
	f := r.PostForm
	switch {
	case f.Get("grant_type") != "client_credentials":
		oauthErr(http.StatusBadRequest, "unsupported_grant_type", "grant_type must be client_credentials")
		return
	case !hmac.Equal([]byte(f.Get("client_id")), []byte(ClientID)) || !hmac.Equal([]byte(f.Get("client_secret")), []byte(ClientSecret)):
		oauthErr(http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	case !hasScope(f.Get("scope"), "eats.deliveries"):
		oauthErr(http.StatusBadRequest, "invalid_scope", "scope must include eats.deliveries")
		return
	}
	tok := "IA." + token(32)
	s.mu.Lock()
	ttl := s.tokenTTL
	s.tokens[tok] = s.now().Add(ttl)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": tok,
		"token_type":   "Bearer",
		"expires_in":   int64(ttl / time.Second),
		"scope":        "eats.deliveries",
	})
}

func hasScope(scopes, want string) bool {
	for _, s := range strings.Fields(scopes) {
		if s == want {
			return true
		}
	}
	return false
}

// route authenticates and dispatches an API request.
func (s *Server) route(r *http.Request, body []byte) answer {
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || tok == "" {
		return answer{status: http.StatusUnauthorized, body: map[string]string{"code": "unauthorized", "message": "No authentication provided."}}
	}
	s.mu.Lock()
	exp, known := s.tokens[tok]
	valid := known && s.now().Before(exp)
	s.mu.Unlock()
	if !valid {
		return answer{status: http.StatusUnauthorized, body: map[string]string{"code": "unauthorized", "message": "Invalid OAuth 2.0 credentials provided."}}
	}

	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/customers/")
	if !ok {
		return notFound()
	}
	parts := strings.Split(rest, "/")
	if parts[0] != CustomerID {
		return apiErr(http.StatusNotFound, "customer_not_found", "Customer does not exist.", nil)
	}
	parts = parts[1:]
	post := r.Method == http.MethodPost
	get := r.Method == http.MethodGet
	switch {
	case len(parts) == 1 && parts[0] == "delivery_quotes" && post:
		if a, bad := requireJSON(r); bad {
			return a
		}
		return s.createQuote(body)
	case len(parts) == 1 && parts[0] == "deliveries" && post:
		if a, bad := requireJSON(r); bad {
			return a
		}
		return s.createDelivery(body)
	case len(parts) == 1 && parts[0] == "deliveries" && get:
		return s.listDeliveries(r.URL.Query())
	case len(parts) == 2 && parts[0] == "deliveries" && get:
		return s.getDelivery(parts[1])
	case len(parts) == 2 && parts[0] == "deliveries" && post:
		return apiErr(http.StatusBadRequest, "invalid_params", "The parameters of your request were invalid.",
			map[string]any{"param_details": "uberfake does not implement delivery updates"})
	case len(parts) == 3 && parts[0] == "deliveries" && parts[2] == "cancel" && post:
		return s.cancelDelivery(parts[1])
	}
	return notFound()
}

func requireJSON(r *http.Request) (answer, bool) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" {
		return apiErr(http.StatusBadRequest, "invalid_params", "The parameters of your request were invalid.",
			map[string]any{"param_details": "Content-Type must be application/json"}), true
	}
	return answer{}, false
}

func notFound() answer {
	return apiErr(http.StatusNotFound, "not_found", "The requested resource does not exist.", nil)
}

func apiErr(status int, code, message string, metadata map[string]any) answer {
	b := map[string]any{"code": code, "message": message, "kind": "error"}
	if metadata != nil {
		b["metadata"] = metadata
	}
	return answer{status: status, body: b}
}

// uberError is the documented error body for an HTTP status (FailNext).
func uberError(status int) answer {
	switch status {
	case http.StatusBadRequest:
		return apiErr(status, "invalid_params", "The parameters of your request were invalid.", nil)
	case http.StatusUnauthorized:
		return answer{status: status, body: map[string]string{"code": "unauthorized", "message": "Invalid OAuth 2.0 credentials provided."}}
	case http.StatusPaymentRequired:
		return apiErr(status, "customer_suspended", "Your account is passed due. Payment is required.", nil)
	case http.StatusForbidden:
		return apiErr(status, "customer_blocked", "Your account is not allowed to create deliveries.", nil)
	case http.StatusNotFound:
		return apiErr(status, "delivery_not_found", "The requested delivery does not exist.", nil)
	case http.StatusRequestTimeout:
		return apiErr(status, "request_timeout", "The request timed out…", nil)
	case http.StatusConflict:
		return apiErr(status, "duplicate_delivery", "An active delivery like this already exists.", nil)
	case http.StatusTooManyRequests:
		return apiErr(status, "customer_limited", "Your account’s limits have been exceeded.", nil)
	case http.StatusInternalServerError:
		return answer{status: status, body: map[string]string{"code": "internal_server_error", "message": "We have experienced a problem."}}
	case http.StatusServiceUnavailable:
		return apiErr(status, "service_unavailable", "Service is currently unavailable.", nil)
	}
	return apiErr(status, "unknown_error", http.StatusText(status), nil)
}

func invalidParams(field, detail string) answer {
	return apiErr(http.StatusBadRequest, "invalid_params", "The parameters of your request were invalid.", map[string]any{field: detail})
}

var phonePattern = regexp.MustCompile(`^\+[0-9]+$`)

// quote is an issued quote.
type quote struct {
	ID              string
	Created         time.Time
	Expires         time.Time
	Fee             int64
	Currency        string
	ETA             time.Duration
	PickupAddress   string
	DropoffAddress  string
	UsedByDelivery  string
	PickupDuration  time.Duration
	DropoffDeadline time.Time
}

type quoteBody struct {
	PickupAddress      *string  `json:"pickup_address"`
	DropoffAddress     *string  `json:"dropoff_address"`
	PickupLatitude     *float64 `json:"pickup_latitude"`
	PickupLongitude    *float64 `json:"pickup_longitude"`
	DropoffLatitude    *float64 `json:"dropoff_latitude"`
	DropoffLongitude   *float64 `json:"dropoff_longitude"`
	PickupPhoneNumber  string   `json:"pickup_phone_number"`
	DropoffPhoneNumber string   `json:"dropoff_phone_number"`
	PickupReadyDT      string   `json:"pickup_ready_dt"`
	PickupDeadlineDT   string   `json:"pickup_deadline_dt"`
	DropoffReadyDT     string   `json:"dropoff_ready_dt"`
	DropoffDeadlineDT  string   `json:"dropoff_deadline_dt"`
	ManifestTotalValue *int64   `json:"manifest_total_value"`
	ExternalStoreID    string   `json:"external_store_id"`
}

func (s *Server) createQuote(body []byte) answer {
	var in quoteBody
	if err := json.Unmarshal(body, &in); err != nil {
		return invalidParams("param_details", "request body is not valid JSON")
	}
	if in.PickupAddress == nil || strings.TrimSpace(*in.PickupAddress) == "" {
		return invalidParams("pickup_address", "This field is required.")
	}
	if in.DropoffAddress == nil || strings.TrimSpace(*in.DropoffAddress) == "" {
		return invalidParams("dropoff_address", "This field is required.")
	}
	if _, a, bad := parseAddress("pickup", *in.PickupAddress); bad {
		return a
	}
	if _, a, bad := parseAddress("dropoff", *in.DropoffAddress); bad {
		return a
	}
	for field, v := range map[string]string{"pickup_phone_number": in.PickupPhoneNumber, "dropoff_phone_number": in.DropoffPhoneNumber} {
		if v != "" && !phonePattern.MatchString(v) {
			return invalidParams(field, strings.ReplaceAll(field, "_", " ")+" is not valid.")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if a, bad := checkReady(in.PickupReadyDT, now); bad {
		return a
	}
	q := &quote{
		ID:             "dqt_" + token(16),
		Created:        now,
		Expires:        now.Add(quoteValidity),
		Fee:            s.fee,
		Currency:       s.currency,
		ETA:            s.eta,
		PickupAddress:  *in.PickupAddress,
		DropoffAddress: *in.DropoffAddress,
		PickupDuration: s.eta / 3,
	}
	q.DropoffDeadline = now.Add(s.eta + 30*time.Minute)
	s.quotes[q.ID] = q
	return answer{status: http.StatusOK, body: map[string]any{
		"kind":             "delivery_quote",
		"id":               q.ID,
		"created":          stamp(q.Created),
		"expires":          stamp(q.Expires),
		"fee":              q.Fee,
		"currency":         strings.ToLower(q.Currency),
		"currency_type":    q.Currency,
		"dropoff_eta":      stamp(now.Add(q.ETA)),
		"duration":         int64(q.ETA / time.Minute),
		"pickup_duration":  int64(q.PickupDuration / time.Minute),
		"dropoff_deadline": stamp(q.DropoffDeadline),
	}}
}

// checkReady validates pickup_ready_dt against the documented limits.
func checkReady(v string, now time.Time) (answer, bool) {
	if v == "" {
		return answer{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return invalidParams("pickup_ready_dt", "must be an RFC 3339 timestamp"), true
	}
	if t.Before(now.Add(-time.Minute)) {
		return apiErr(http.StatusBadRequest, "pickup_ready_too_early", "The pickup ready time cannot be in the past.", nil), true
	}
	if t.After(now.Add(30 * 24 * time.Hour)) {
		return apiErr(http.StatusBadRequest, "pickup_ready_too_late", "The pickup ready time needs to be within the next 30 days.", nil), true
	}
	return answer{}, false
}

// structuredAddress is Uber's structured address [doc].
type structuredAddress struct {
	StreetAddress []string `json:"street_address"`
	City          string   `json:"city"`
	State         string   `json:"state"`
	ZipCode       string   `json:"zip_code"`
	Country       string   `json:"country"`
}

// parseAddress reads a plain or JSON-encoded structured address.
func parseAddress(stop, raw string) (detailedAddress, answer, bool) {
	raw = strings.TrimSpace(raw)
	if !strings.HasPrefix(raw, "{") {
		return detailedAddress{Street1: raw}, answer{}, false
	}
	var sa structuredAddress
	if err := json.Unmarshal([]byte(raw), &sa); err != nil || len(sa.StreetAddress) == 0 || strings.TrimSpace(sa.StreetAddress[0]) == "" {
		return detailedAddress{}, invalidParams("param_details", "cannot determine "+stop+" address"), true
	}
	d := detailedAddress{Street1: sa.StreetAddress[0], City: sa.City, State: sa.State, ZipCode: sa.ZipCode, Country: sa.Country}
	if len(sa.StreetAddress) > 1 {
		d.Street2 = strings.Join(sa.StreetAddress[1:], ", ")
	}
	return d, answer{}, false
}

type manifestItem struct {
	Name     string `json:"name"`
	Quantity int    `json:"quantity"`
	Size     string `json:"size,omitempty"`
	Price    *int64 `json:"price,omitempty"`
}

type verificationRequest struct {
	SignatureRequirement *struct {
		Enabled bool `json:"enabled"`
	} `json:"signature_requirement"`
	Pincode *struct {
		Enabled bool `json:"enabled"`
	} `json:"pincode"`
	Picture bool `json:"picture"`
}

type createBody struct {
	QuoteID             string               `json:"quote_id"`
	PickupName          string               `json:"pickup_name"`
	PickupAddress       string               `json:"pickup_address"`
	PickupPhoneNumber   string               `json:"pickup_phone_number"`
	PickupLatitude      *float64             `json:"pickup_latitude"`
	PickupLongitude     *float64             `json:"pickup_longitude"`
	PickupNotes         string               `json:"pickup_notes"`
	DropoffName         string               `json:"dropoff_name"`
	DropoffAddress      string               `json:"dropoff_address"`
	DropoffPhoneNumber  string               `json:"dropoff_phone_number"`
	DropoffLatitude     *float64             `json:"dropoff_latitude"`
	DropoffLongitude    *float64             `json:"dropoff_longitude"`
	DropoffNotes        string               `json:"dropoff_notes"`
	DropoffVerification *verificationRequest `json:"dropoff_verification"`
	ManifestItems       []manifestItem       `json:"manifest_items"`
	ManifestReference   string               `json:"manifest_reference"`
	ManifestTotalValue  *int64               `json:"manifest_total_value"`
	PickupReadyDT       string               `json:"pickup_ready_dt"`
	ExternalID          string               `json:"external_id"`
	IdempotencyKey      string               `json:"idempotency_key"`
	Tip                 *int64               `json:"tip"`
}

var sizes = map[string]bool{"small": true, "medium": true, "large": true, "xlarge": true, "big": true}

func (s *Server) createDelivery(body []byte) answer {
	var in createBody
	if err := json.Unmarshal(body, &in); err != nil {
		return invalidParams("param_details", "request body is not valid JSON")
	}
	required := []struct{ field, value string }{
		{"pickup_name", in.PickupName}, {"pickup_address", in.PickupAddress}, {"pickup_phone_number", in.PickupPhoneNumber},
		{"dropoff_name", in.DropoffName}, {"dropoff_address", in.DropoffAddress}, {"dropoff_phone_number", in.DropoffPhoneNumber},
	}
	for _, f := range required {
		if strings.TrimSpace(f.value) == "" {
			return invalidParams(f.field, "This field is required.")
		}
	}
	if len(in.ManifestItems) == 0 {
		return invalidParams("manifest_items", "This field is required.")
	}
	for i, it := range in.ManifestItems {
		switch {
		case strings.TrimSpace(it.Name) == "":
			return invalidParams("manifest_items", fmt.Sprintf("item %d: name is required.", i))
		case it.Quantity < 1:
			return invalidParams("manifest_items", fmt.Sprintf("item %d: quantity must be at least 1.", i))
		case it.Size != "" && !sizes[it.Size]:
			return invalidParams("manifest_items", fmt.Sprintf("item %d: size %q is not valid.", i, it.Size))
		}
	}
	pickupAddr, a, bad := parseAddress("pickup", in.PickupAddress)
	if bad {
		return a
	}
	dropoffAddr, a, bad := parseAddress("dropoff", in.DropoffAddress)
	if bad {
		return a
	}
	for field, v := range map[string]string{"pickup_phone_number": in.PickupPhoneNumber, "dropoff_phone_number": in.DropoffPhoneNumber} {
		if !phonePattern.MatchString(v) {
			return invalidParams(field, strings.ReplaceAll(field, "_", " ")+" is not valid.")
		}
	}
	if len([]rune(in.PickupNotes)) > maxNotes || len([]rune(in.DropoffNotes)) > maxNotes {
		return invalidParams("param_details", "notes are limited to 280 characters")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if a, bad := checkReady(in.PickupReadyDT, now); bad {
		return a
	}
	if in.IdempotencyKey != "" {
		if e, ok := s.idem[in.IdempotencyKey]; ok && now.Sub(e.at) < idemWindow {
			return duplicate(e.deliveryID)
		}
	}
	if in.ExternalID != "" && in.ManifestReference != "" {
		for _, id := range s.order {
			if d := s.deliveries[id]; d.ExternalID == in.ExternalID && d.ManifestReference == in.ManifestReference {
				return duplicate(id)
			}
		}
	}
	fee, currency, eta := s.fee, s.currency, s.eta
	if in.QuoteID != "" {
		q := s.quotes[in.QuoteID]
		switch {
		case q == nil:
			return invalidParams("quote_id", "quote not found")
		case q.UsedByDelivery != "":
			return apiErr(http.StatusBadRequest, "used_quote", "The price quote specified has been used.", nil)
		case !now.Before(q.Expires):
			return apiErr(http.StatusBadRequest, "expired_quote", "The price quote specified has expired.", nil)
		case q.PickupAddress != in.PickupAddress || q.DropoffAddress != in.DropoffAddress:
			return apiErr(http.StatusBadRequest, "mismatched_price_quote", "Quote mismatch, please recreate the quote.", nil)
		}
		fee, currency, eta = q.Fee, q.Currency, q.ETA
	}
	if in.Tip != nil && *in.Tip > 0 {
		fee += *in.Tip
	}
	uuid := strings.ToUpper(token(16))
	d := &delivery{
		ID:                "del_" + token(11),
		UUID:              uuid,
		QuoteID:           in.QuoteID,
		Status:            statusPending,
		Created:           now,
		Updated:           now,
		Fee:               fee,
		Currency:          currency,
		ExternalID:        in.ExternalID,
		ManifestReference: in.ManifestReference,
		Items:             in.ManifestItems,
		TrackingURL:       s.api.URL() + "/orders/" + strings.ToLower(uuid),
		PickupETA:         now.Add(eta / 3),
		DropoffETA:        now.Add(eta),
		Pickup:            stop{Name: in.PickupName, Phone: in.PickupPhoneNumber, Address: pickupAddr, Notes: in.PickupNotes, Location: point(in.PickupLatitude, in.PickupLongitude, -33.4263, -70.6170)},
		Dropoff:           stop{Name: in.DropoffName, Phone: in.DropoffPhoneNumber, Address: dropoffAddr, Notes: in.DropoffNotes, Location: point(in.DropoffLatitude, in.DropoffLongitude, -33.4124, -70.5850)},
	}
	if v := in.DropoffVerification; v != nil {
		d.WantSignature = v.SignatureRequirement != nil && v.SignatureRequirement.Enabled
		if v.Pincode != nil && v.Pincode.Enabled {
			d.PIN = fmt.Sprintf("%04d", randInt(10000))
		}
	}
	if in.QuoteID != "" {
		s.quotes[in.QuoteID].UsedByDelivery = d.ID
	}
	if in.IdempotencyKey != "" {
		s.idem[in.IdempotencyKey] = idemEntry{deliveryID: d.ID, at: now}
	}
	s.deliveries[d.ID] = d
	s.order = append(s.order, d.ID)
	return answer{status: http.StatusOK, body: s.render(d)}
}

func duplicate(id string) answer {
	return apiErr(http.StatusConflict, "duplicate_delivery", "An active delivery like this already exists.", map[string]any{"delivery_id": id})
}

var listFilters = map[string]bool{
	"pending": true, "pickup": true, "pickup_complete": true, "dropoff": true,
	"delivered": true, "canceled": true, "returned": true, "ongoing": true,
}

func (s *Server) listDeliveries(q url.Values) answer {
	filter := q.Get("filter")
	if filter != "" && !listFilters[filter] {
		return invalidParams("filter", "filter is not valid.")
	}
	limit, offset := defaultLimit, 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return invalidParams("limit", fmt.Sprintf("limit must be between 1 and %d.", maxLimit))
		}
		limit = n
	}
	if v := firstNonEmpty(q.Get("offset"), q.Get("Offset")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return invalidParams("offset", "offset must be a non-negative integer.")
		}
		offset = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var matching []*delivery
	for i := len(s.order) - 1; i >= 0; i-- {
		d := s.deliveries[s.order[i]]
		if filter == "" || d.Status == filter || (filter == "ongoing" && !d.Complete) {
			matching = append(matching, d)
		}
	}
	data := []deliveryJSON{}
	for i := offset; i < len(matching) && i < offset+limit; i++ {
		data = append(data, s.render(matching[i]))
	}
	out := map[string]any{"data": data, "total_count": -1}
	if offset+limit < len(matching) {
		next := url.Values{"limit": {strconv.Itoa(limit)}, "offset": {strconv.Itoa(offset + limit)}}
		if filter != "" {
			next.Set("filter", filter)
		}
		out["next_href"] = s.api.URL() + "/v1/customers/" + CustomerID + "/deliveries?" + next.Encode()
	}
	return answer{status: http.StatusOK, body: out}
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

func (s *Server) getDelivery(id string) answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.deliveries[id]
	if d == nil {
		return apiErr(http.StatusNotFound, "delivery_not_found", "The requested delivery does not exist.", nil)
	}
	return answer{status: http.StatusOK, body: s.render(d)}
}

func (s *Server) cancelDelivery(id string) answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.deliveries[id]
	if d == nil {
		return apiErr(http.StatusNotFound, "delivery_not_found", "The requested delivery does not exist.", nil)
	}
	if d.Status != statusPending && d.Status != statusPickup {
		return apiErr(http.StatusBadRequest, "noncancelable_delivery", "Delivery cannot be cancelled", nil)
	}
	d.Status = statusCanceled
	d.Complete = true
	d.Updated = s.now()
	return answer{status: http.StatusOK, body: s.render(d)}
}

// Uber delivery statuses.
const (
	statusPending        = "pending"
	statusPickup         = "pickup"
	statusPickupComplete = "pickup_complete"
	statusDropoff        = "dropoff"
	statusDelivered      = "delivered"
	statusCanceled       = "canceled"
)

type latLng struct {
	Lat float64 `json:"lat"`
	Lng float64 `json:"lng"`
}

func point(lat, lng *float64, defLat, defLng float64) latLng {
	if lat == nil || lng == nil {
		return latLng{Lat: defLat, Lng: defLng}
	}
	return latLng{Lat: *lat, Lng: *lng}
}

type detailedAddress struct {
	Street1 string `json:"street_address_1"`
	Street2 string `json:"street_address_2"`
	City    string `json:"city"`
	State   string `json:"state"`
	ZipCode string `json:"zip_code"`
	Country string `json:"country"`
}

func (a detailedAddress) String() string {
	var parts []string
	for _, p := range []string{a.Street1, a.Street2, a.City, strings.TrimSpace(a.State + " " + a.ZipCode), a.Country} {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, ", ")
}

type stop struct {
	Name, Phone, Notes string
	Address            detailedAddress
	Location           latLng
	Status             string // completed, failed
	StatusAt           time.Time
}

type courier struct {
	Name        string  `json:"name"`
	PhoneNumber string  `json:"phone_number"`
	VehicleType string  `json:"vehicle_type"`
	VehicleMake string  `json:"vehicle_make,omitempty"`
	ImgHref     string  `json:"img_href"`
	Location    *latLng `json:"location,omitempty"`
}

func newCourier(d *delivery) *courier {
	loc := latLng{Lat: d.Pickup.Location.Lat + 0.004, Lng: d.Pickup.Location.Lng - 0.003}
	return &courier{
		Name:        "Matías R.",
		PhoneNumber: "+56955501234",
		VehicleType: "motorcycle",
		ImgHref:     "https://d1w2poirtb3as9.cloudfront.net/default.jpeg",
		Location:    &loc,
	}
}

type proof struct {
	PictureURL   string
	SignatureURL string
	PIN          string
}

// proofFor is what the courier collects at drop-off. The caller holds s.mu.
func (s *Server) proofFor(d *delivery) *proof {
	p := &proof{PictureURL: s.api.URL() + "/pod/" + d.ID + "/picture.jpg"}
	if d.WantSignature {
		p.SignatureURL = s.api.URL() + "/pod/" + d.ID + "/signature.png"
	}
	p.PIN = d.PIN
	return p
}

// delivery is a booked delivery.
type delivery struct {
	ID, UUID, QuoteID, Status     string
	ExternalID, ManifestReference string
	Created, Updated              time.Time
	Fee                           int64
	Currency                      string
	Items                         []manifestItem
	TrackingURL                   string
	PickupETA, DropoffETA         time.Time
	Pickup, Dropoff               stop
	Courier                       *courier
	Complete                      bool
	WantSignature                 bool
	PIN                           string
	Proof                         *proof
}

type waypointJSON struct {
	Name                     string          `json:"name"`
	PhoneNumber              string          `json:"phone_number"`
	Address                  string          `json:"address"`
	DetailedAddress          detailedAddress `json:"detailed_address"`
	Notes                    string          `json:"notes"`
	Location                 latLng          `json:"location"`
	Status                   string          `json:"status,omitempty"`
	StatusTimestamp          string          `json:"status_timestamp,omitempty"`
	Verification             map[string]any  `json:"verification,omitempty"`
	VerificationRequirements map[string]any  `json:"verification_requirements,omitempty"`
}

// deliveryJSON is Uber's delivery object [doc].
type deliveryJSON struct {
	ID                  string         `json:"id"`
	QuoteID             string         `json:"quote_id,omitempty"`
	Status              string         `json:"status"`
	Complete            bool           `json:"complete"`
	Kind                string         `json:"kind"`
	Pickup              waypointJSON   `json:"pickup"`
	Dropoff             waypointJSON   `json:"dropoff"`
	Manifest            map[string]any `json:"manifest"`
	ManifestItems       []manifestItem `json:"manifest_items"`
	Created             string         `json:"created"`
	Updated             string         `json:"updated"`
	PickupReady         string         `json:"pickup_ready"`
	PickupDeadline      string         `json:"pickup_deadline"`
	DropoffReady        string         `json:"dropoff_ready"`
	DropoffDeadline     string         `json:"dropoff_deadline"`
	PickupETA           string         `json:"pickup_eta"`
	DropoffETA          string         `json:"dropoff_eta"`
	Fee                 int64          `json:"fee"`
	Currency            string         `json:"currency"`
	Tip                 int64          `json:"tip"`
	TrackingURL         string         `json:"tracking_url"`
	UndeliverableAction string         `json:"undeliverable_action"`
	UndeliverableReason string         `json:"undeliverable_reason"`
	Courier             *courier       `json:"courier"`
	CourierImminent     bool           `json:"courier_imminent"`
	LiveMode            bool           `json:"live_mode"`
	UUID                string         `json:"uuid"`
	ExternalID          string         `json:"external_id,omitempty"`
	DeliverableAction   string         `json:"deliverable_action"`
}

// render is d as Uber's delivery object. The caller holds s.mu.
func (s *Server) render(d *delivery) deliveryJSON {
	wp := func(st stop) waypointJSON {
		w := waypointJSON{
			Name: st.Name, PhoneNumber: st.Phone, Address: st.Address.String(), DetailedAddress: st.Address,
			Notes: st.Notes, Location: st.Location, Status: st.Status,
		}
		if !st.StatusAt.IsZero() {
			w.StatusTimestamp = stamp(st.StatusAt)
		}
		return w
	}
	out := deliveryJSON{
		ID: d.ID, QuoteID: d.QuoteID, Status: d.Status, Complete: d.Complete, Kind: "delivery",
		Pickup: wp(d.Pickup), Dropoff: wp(d.Dropoff),
		Manifest:      map[string]any{"reference": d.ManifestReference, "description": describe(d.Items), "total_value": total(d.Items)},
		ManifestItems: d.Items,
		Created:       stamp(d.Created), Updated: stamp(d.Updated),
		PickupReady: stamp(d.Created), PickupDeadline: stamp(d.Created.Add(30 * time.Minute)),
		DropoffReady: stamp(d.Created), DropoffDeadline: stamp(d.DropoffETA.Add(30 * time.Minute)),
		PickupETA: stamp(d.PickupETA), DropoffETA: stamp(d.DropoffETA),
		Fee: d.Fee, Currency: strings.ToLower(d.Currency), TrackingURL: d.TrackingURL,
		Courier: d.Courier, UUID: d.UUID, ExternalID: d.ExternalID,
		DeliverableAction: "deliverable_action_meet_at_door",
	}
	if d.Courier != nil {
		c := *d.Courier
		out.Courier = &c
	}
	reqs := map[string]any{}
	if d.WantSignature {
		reqs["signature_requirement"] = map[string]any{"enabled": true, "collect_signer_name": false, "collect_signer_relationship": false}
	}
	if d.PIN != "" {
		reqs["pincode"] = map[string]any{"enabled": true, "value": d.PIN}
	}
	if len(reqs) > 0 {
		out.Dropoff.VerificationRequirements = reqs
	}
	if p := d.Proof; p != nil {
		v := map[string]any{"picture": map[string]string{"image_url": p.PictureURL}}
		if p.SignatureURL != "" {
			v["signature"] = map[string]string{"image_url": p.SignatureURL, "signer_name": d.Dropoff.Name}
		}
		if p.PIN != "" {
			v["pin_code"] = map[string]string{"entered": p.PIN}
		}
		out.Dropoff.Verification = v
	}
	return out
}

func describe(items []manifestItem) string {
	var b strings.Builder
	for _, it := range items {
		fmt.Fprintf(&b, "%d x %s\n", it.Quantity, it.Name)
	}
	return b.String()
}

func total(items []manifestItem) int64 {
	var t int64
	for _, it := range items {
		if it.Price != nil {
			t += *it.Price * int64(it.Quantity)
		}
	}
	return t
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// token returns n random bytes, URL-safe encoded.
func token(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func randInt(n int) int {
	var b [8]byte
	_, _ = rand.Read(b[:])
	v := uint64(0)
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return int(v % uint64(n))
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;").Replace(s)
}
