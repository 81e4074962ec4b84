// Package pedidosyafake is an in-process fake of the PedidosYa Envíos
// Courier API v3 for tests: the plugin's unit tests and PipeCore's
// end-to-end tests (through the real gateway binary) point a tenant's
// base_url at it.
//
// It follows the wire format the plugin assumes (internal/wire, from
// community sources; nothing is verified against PedidosYa):
//
//	POST /v3/shippings/estimates     estimate: one EXPRESS offer priced by
//	                                 SetFee, delivered within SetETA, to be
//	                                 confirmed within 5 minutes
//	POST /v3/shippings               create: status CONFIRMED; shareLocationUrl
//	                                 only when isTest is false (as documented)
//	GET  /v3/shippings?referenceId=R lookup by reference: {"data":[shipping…]}
//	                                 in creation order (a PipeCore assumption,
//	                                 not a documented endpoint)
//	GET  /v3/shippings/{id}          the shipping (shippingId and id both set)
//	GET  /v3/shippings/{id}/tracking rider name, vehicle and position once
//	                                 a rider is assigned
//	POST /v3/shippings/{id}/cancel   {reasonText} required; CANCELLED with
//	                                 cancelCode USER_CANCELLED; repeating it is
//	                                 a 200; refused with 400
//	                                 INVALID_STATUS_TRANSITION from PICKED_UP on
//
// Every API request must carry "Authorization: " + Token (the raw token,
// no "Bearer "): otherwise 401 {"status":401,"code":"INVALID_TOKEN",
// "message":…}. Bodies with missing required fields (referenceId, one
// PICK_UP and one DROP_OFF waypoint with addressStreet, city, name and a
// valid phone, 1 to 99 items with description and quantity) are 400
// {"status":400,"code":"INVALID_REQUEST","message":…}. Unknown ids are 404
// SHIPPING_NOT_FOUND. The fake does not refuse a second shipping with the
// same referenceId: deduplication is the plugin's job.
//
// Shippings move only when the test calls Advance (CONFIRMED → IN_PROGRESS
// → PICKED_UP → COMPLETED), which POSTs a SHIPPING_STATUS callback to the
// URL given to SetWebhook with "Authorization: <authorizationKey>", as
// PedidosYa does. No callback is sent for the creation (CONFIRMED) or for
// a cancellation through the API, so tests stay deterministic.
//
// A Server is safe for concurrent use, listens on 127.0.0.1 only and stops
// everything, stalled requests included, on Close.
package pedidosyafake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/providertest/fakehttp"

	"github.com/pipecore/pipecore/plugins/pedidosya/internal/wire"
)

// Token is the only API token the fake accepts.
const Token = "pedidosya-test-token"

// Defaults of a new Server.
const (
	defaultFee      = 2990
	defaultCurrency = "CLP"
	defaultETA      = 45 * time.Minute
	// offerValidity is how long an estimate's offer can be confirmed
	// (confirmationTimeLimit).
	offerValidity = 5 * time.Minute
	// callbackTimeout bounds one webhook POST.
	callbackTimeout = 10 * time.Second
	maxBody         = 1 << 20
)

// The rider every shipping gets.
const (
	riderName      = "Rider de Prueba"
	riderTransport = "Motorbike"
)

// Request is one API request as the fake received it. Its Path includes
// the query, if any.
type Request = fakehttp.Request

// Server is a running fake. Create it with Start and stop it with Close.
type Server struct {
	api *fakehttp.Server

	mu         sync.Mutex
	feeAmount  int64
	feeCur     string
	eta        time.Duration
	webhookURL string
	webhookKey string
	seq        int
	shippings  map[string]*wire.Shipping
	order      []string // shipping ids in creation order
	created    int
}

// Start starts a fake on 127.0.0.1 with the defaults: fee 2990 CLP, ETA
// 45 minutes, no delay, no failures, webhooks off.
func Start() *Server {
	s := &Server{
		api:       fakehttp.New(fakehttp.Options{Name: "pedidosyafake", PathWithQuery: true, WebhookTimeout: callbackTimeout}),
		feeAmount: defaultFee,
		feeCur:    defaultCurrency,
		eta:       defaultETA,
		shippings: map[string]*wire.Shipping{},
	}
	s.api.Start(http.HandlerFunc(s.serve))
	return s
}

// URL is the fake's base URL, for a tenant's base_url setting.
func (s *Server) URL() string { return s.api.URL() }

// Close stops the fake. Stalled requests end at once; it is safe to call
// more than once.
func (s *Server) Close() { s.api.Close() }

// SetFee sets the price of later estimates and shippings, in the
// currency's minor unit (2990 CLP, 1250 for 12.50 UYU).
func (s *Server) SetFee(amount int64, currency string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.feeAmount, s.feeCur = amount, strings.ToUpper(currency)
}

// SetETA sets how long after the request later estimates and shippings
// promise delivery (deliveryTimeTo).
func (s *Server) SetETA(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.eta = d
}

// SetDelay delays every later API answer by d; zero answers at once (and
// releases answers already held back). A request whose client gives up,
// or a Close, ends the wait.
func (s *Server) SetDelay(d time.Duration) { s.api.SetDelay(d) }

// FailNext makes the next n API requests answer status with a PedidosYa
// error body (and Retry-After: 1 for 429), before the token is checked.
func (s *Server) FailNext(status, n int) { s.api.FailNext(status, n) }

// SetWebhook sets where Advance POSTs SHIPPING_STATUS callbacks, with
// "Authorization: <authorizationKey>". An empty url disables them.
func (s *Server) SetWebhook(url, authorizationKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.webhookURL, s.webhookKey = url, authorizationKey
}

// Deliveries is how many shippings POST /v3/shippings created.
func (s *Server) Deliveries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.created
}

// Requests returns a copy of every API request received, in order.
func (s *Server) Requests() []Request { return s.api.Requests() }

// Advance moves a shipping one step, CONFIRMED → IN_PROGRESS → PICKED_UP →
// COMPLETED, and returns its new status. When a webhook is set it then
// POSTs the callback synchronously and returns an error if that fails or
// is answered with a non-2xx status (the shipping has moved regardless).
// Advancing an unknown, completed or cancelled shipping is an error.
func (s *Server) Advance(shippingID string) (status string, err error) {
	s.mu.Lock()
	sh, ok := s.shippings[shippingID]
	if !ok {
		s.mu.Unlock()
		return "", fmt.Errorf("pedidosyafake: no shipping %q", shippingID)
	}
	var next string
	switch sh.Status {
	case wire.StatusPreorder:
		next = wire.StatusConfirmed
	case wire.StatusConfirmed:
		next = wire.StatusInProgress
	case wire.StatusInProgress, wire.StatusNearPickup:
		next = wire.StatusPickedUp
	case wire.StatusPickedUp, wire.StatusNearDropoff:
		next = wire.StatusCompleted
	default:
		st := sh.Status
		s.mu.Unlock()
		return st, fmt.Errorf("pedidosyafake: shipping %s is %s and cannot advance", shippingID, st)
	}
	sh.Status = next
	now := time.Now()
	cb := wire.Callback{
		Topic: wire.TopicShippingStatus, ID: shippingID, ReferenceID: sh.ReferenceID,
		Generated: wire.FormatTime(now), Transmitted: wire.FormatTime(now),
		Data: wire.CallbackData{Status: next},
	}
	if r := sh.Route; r != nil {
		if next == wire.StatusConfirmed || next == wire.StatusInProgress {
			cb.Data.EstimatedPickUpTime = r.EstimatedPickUpTime
		}
		if next != wire.StatusCompleted {
			cb.Data.EstimatedDropOffTime = r.EstimatedDeliveryTime
		}
	}
	hookURL, key := s.webhookURL, s.webhookKey
	s.mu.Unlock()

	if hookURL == "" {
		return next, nil
	}
	return next, s.post(hookURL, key, cb)
}

// post sends one callback as PedidosYa does: JSON body, the static key in
// Authorization. Close aborts it.
func (s *Server) post(hookURL, key string, cb wire.Callback) error {
	body, err := json.Marshal(cb)
	if err != nil {
		return fmt.Errorf("pedidosyafake: encode callback: %w", err)
	}
	return s.api.PostWebhook(hookURL, http.Header{
		wire.HeaderContentType:   {wire.ContentTypeJSON},
		wire.HeaderAuthorization: {key},
	}, body)
}

// serve records the request, applies the delay and FailNext, checks the
// token and routes.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, wire.CodeInvalidRequest, "unreadable body")
		return
	}
	s.api.Record(r, body)
	if err := s.api.Wait(r.Context(), time.Now()); err != nil {
		if errors.Is(err, fakehttp.ErrClosed) {
			writeError(w, http.StatusServiceUnavailable, wire.CodeInternalError, "server closing")
		}
		return
	}
	if status, fail := s.api.TakeFailure(); fail {
		if status == http.StatusTooManyRequests {
			w.Header().Set(wire.HeaderRetryAfter, "1")
		}
		writeError(w, status, failCode(status), "injected failure")
		return
	}

	if r.Header.Get(wire.HeaderAuthorization) != wire.AuthPrefix+Token {
		writeError(w, http.StatusUnauthorized, wire.CodeUnauthorized, "Invalid or missing authorization token")
		return
	}

	path := r.URL.Path
	switch {
	case path == wire.PathEstimates:
		if !method(w, r, http.MethodPost) {
			return
		}
		s.estimate(w, body)
	case path == wire.PathShippings:
		switch r.Method {
		case http.MethodPost:
			s.create(w, body)
		case http.MethodGet:
			s.lookup(w, r)
		default:
			writeError(w, http.StatusMethodNotAllowed, wire.CodeMethodNotAllowed, r.Method+" not allowed")
		}
	case strings.HasPrefix(path, wire.PathShippings+"/"):
		rest := strings.TrimPrefix(path, wire.PathShippings+"/")
		id, action, _ := strings.Cut(rest, "/")
		switch action {
		case "":
			if method(w, r, http.MethodGet) {
				s.get(w, id)
			}
		case "tracking":
			if method(w, r, http.MethodGet) {
				s.tracking(w, id)
			}
		case "cancel":
			if method(w, r, http.MethodPost) {
				s.cancel(w, id, body)
			}
		default:
			writeError(w, http.StatusNotFound, wire.CodeNotFound, "no such resource")
		}
	default:
		writeError(w, http.StatusNotFound, wire.CodeNotFound, "no such resource")
	}
}

func method(w http.ResponseWriter, r *http.Request, want string) bool {
	if r.Method != want {
		writeError(w, http.StatusMethodNotAllowed, wire.CodeMethodNotAllowed, r.Method+" not allowed")
		return false
	}
	return true
}

// estimate answers POST /v3/shippings/estimates.
func (s *Server) estimate(w http.ResponseWriter, body []byte) {
	req, ok := decodeShipping(w, body)
	if !ok {
		return
	}
	s.mu.Lock()
	pricing, times := s.priceLocked(), s.timesLocked(time.Now())
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, wire.Estimate{
		EstimateID:  randomID(16),
		ReferenceID: req.ReferenceID,
		IsTest:      req.IsTest,
		Items:       req.Items,
		Waypoints:   req.Waypoints,
		DeliveryOffers: []wire.DeliveryOffer{{
			DeliveryOfferID:       randomID(16),
			DeliveryMode:          wire.ModeExpress,
			EstimatedPickUpTime:   times.pickup,
			EstimatedDrivingTime:  times.driving,
			DeliveryTimeFrom:      times.from,
			DeliveryTimeTo:        times.to,
			ConfirmationTimeLimit: wire.FormatTime(time.Now().Add(offerValidity)),
			Pricing:               &pricing,
		}},
	})
}

// create answers POST /v3/shippings.
func (s *Server) create(w http.ResponseWriter, body []byte) {
	req, ok := decodeShipping(w, body)
	if !ok {
		return
	}
	now := time.Now()
	s.mu.Lock()
	s.seq++
	id := strconv.Itoa(9_000_000 + s.seq)
	pricing, times := s.priceLocked(), s.timesLocked(now)
	sh := &wire.Shipping{
		ShippingID:       id,
		ID:               id,
		ConfirmationCode: strings.ToUpper(randomID(3)),
		IsTest:           req.IsTest,
		ReferenceID:      req.ReferenceID,
		Status:           wire.StatusConfirmed,
		Items:            req.Items,
		Waypoints:        req.Waypoints,
		Route: &wire.Route{
			DeliveryMode:          wire.ModeExpress,
			EstimatedPickUpTime:   times.pickup,
			EstimatedDeliveryTime: times.to,
			DeliveryTimeFrom:      times.from,
			DeliveryTimeTo:        times.to,
			Distance:              distance(req.Waypoints),
			Pricing:               &pricing,
		},
		CreatedAt: wire.FormatTime(now),
	}
	if !req.IsTest {
		sh.ShareLocationURL = s.api.URL() + "/tracking/" + id
	}
	s.shippings[id] = sh
	s.order = append(s.order, id)
	s.created++
	out := clone(sh)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// lookup answers GET /v3/shippings?referenceId=….
func (s *Server) lookup(w http.ResponseWriter, r *http.Request) {
	ref := r.URL.Query().Get(wire.QueryReferenceID)
	if ref == "" {
		writeError(w, http.StatusBadRequest, wire.CodeInvalidRequest, wire.QueryReferenceID+" is required")
		return
	}
	s.mu.Lock()
	list := wire.ShippingList{Data: []wire.Shipping{}}
	for _, id := range s.order {
		if sh := s.shippings[id]; sh.ReferenceID == ref {
			list.Data = append(list.Data, clone(sh))
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, list)
}

// get answers GET /v3/shippings/{id}.
func (s *Server) get(w http.ResponseWriter, id string) {
	s.mu.Lock()
	sh, ok := s.shippings[id]
	var out wire.Shipping
	if ok {
		out = clone(sh)
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, wire.CodeNotFound, "Shipping "+id+" not found")
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// tracking answers GET /v3/shippings/{id}/tracking: the rider waits at the
// pickup while IN_PROGRESS or NEAR_PICKUP and is half-way afterwards.
func (s *Server) tracking(w http.ResponseWriter, id string) {
	s.mu.Lock()
	sh, ok := s.shippings[id]
	var tr wire.Tracking
	if ok {
		if r := sh.Route; r != nil {
			tr.EstimatedPickUpTime, tr.EstimatedDropOffTime = r.EstimatedPickUpTime, r.EstimatedDeliveryTime
		}
		pu, do := waypoint(sh.Waypoints, wire.WaypointPickUp), waypoint(sh.Waypoints, wire.WaypointDropOff)
		switch sh.Status {
		case wire.StatusInProgress, wire.StatusNearPickup:
			tr.DeliveryName, tr.DeliveryTransport = riderName, riderTransport
			tr.Latitude, tr.Longitude = pu.Latitude, pu.Longitude
		case wire.StatusPickedUp, wire.StatusNearDropoff:
			tr.DeliveryName, tr.DeliveryTransport = riderName, riderTransport
			if pu.Latitude != nil && pu.Longitude != nil && do.Latitude != nil && do.Longitude != nil {
				lat, lng := (*pu.Latitude+*do.Latitude)/2, (*pu.Longitude+*do.Longitude)/2
				tr.Latitude, tr.Longitude = &lat, &lng
			}
		}
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, wire.CodeNotFound, "Shipping "+id+" not found")
		return
	}
	writeJSON(w, http.StatusOK, tr)
}

// cancel answers POST /v3/shippings/{id}/cancel.
func (s *Server) cancel(w http.ResponseWriter, id string, body []byte) {
	var req wire.CancelRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, wire.CodeInvalidRequest, "body must be JSON: "+err.Error())
		return
	}
	if strings.TrimSpace(req.ReasonText) == "" {
		writeError(w, http.StatusBadRequest, wire.CodeInvalidRequest, "reasonText is required")
		return
	}
	s.mu.Lock()
	sh, ok := s.shippings[id]
	if !ok {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, wire.CodeNotFound, "Shipping "+id+" not found")
		return
	}
	switch sh.Status {
	case wire.StatusPreorder, wire.StatusConfirmed, wire.StatusInProgress, wire.StatusNearPickup:
		sh.Status = wire.StatusCancelled
		sh.CancelCode, sh.CancelReason = wire.CancelCodeUserCancelled, wire.CancelReasonUserCancelled
	case wire.StatusCancelled:
	default:
		st := sh.Status
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, wire.CodeInvalidStatus, fmt.Sprintf("Shipping %s cannot be cancelled: its status is %s", id, st))
		return
	}
	out := clone(sh)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// decodeShipping reads and checks an estimate or create body, answering
// 400 itself when it is not acceptable.
func decodeShipping(w http.ResponseWriter, body []byte) (wire.ShippingRequest, bool) {
	var req wire.ShippingRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, wire.CodeInvalidRequest, "body must be JSON: "+err.Error())
		return req, false
	}
	if err := validate(req); err != nil {
		writeError(w, http.StatusBadRequest, wire.CodeInvalidRequest, err.Error())
		return req, false
	}
	return req, true
}

var phone = regexp.MustCompile(wire.PhonePattern)

// validate applies the documented constraints of a shipping body.
func validate(req wire.ShippingRequest) error {
	if strings.TrimSpace(req.ReferenceID) == "" {
		return errors.New("referenceId is required")
	}
	if n := len(req.Items); n < 1 || n > wire.MaxItems {
		return fmt.Errorf("items must hold 1 to %d items, got %d", wire.MaxItems, n)
	}
	var total float64
	for i, it := range req.Items {
		switch {
		case strings.TrimSpace(it.Description) == "":
			return fmt.Errorf("items[%d].description is required", i)
		case it.Quantity < 1 || it.Quantity > wire.MaxItemQuantity:
			return fmt.Errorf("items[%d].quantity must be 1 to %d", i, wire.MaxItemQuantity)
		case it.Value < 0:
			return fmt.Errorf("items[%d].value must not be negative", i)
		case it.Volume < 0 || it.Volume > wire.MaxItemVolume:
			return fmt.Errorf("items[%d].volume must be 0 to %d", i, wire.MaxItemVolume)
		case it.Weight < 0 || it.Weight > wire.MaxItemWeight:
			return fmt.Errorf("items[%d].weight must be 0 to %d", i, wire.MaxItemWeight)
		}
		total += it.Value * float64(it.Quantity)
	}
	if total >= wire.MaxItemValue {
		return fmt.Errorf("the items' declared value must be less than %d", wire.MaxItemValue)
	}
	if len(req.Waypoints) != 2 {
		return fmt.Errorf("waypoints must hold one %s and one %s, got %d waypoints", wire.WaypointPickUp, wire.WaypointDropOff, len(req.Waypoints))
	}
	seen := map[string]bool{}
	for i, wp := range req.Waypoints {
		switch {
		case wp.Type != wire.WaypointPickUp && wp.Type != wire.WaypointDropOff:
			return fmt.Errorf("waypoints[%d].type must be %s or %s", i, wire.WaypointPickUp, wire.WaypointDropOff)
		case seen[wp.Type]:
			return fmt.Errorf("waypoints hold two %s", wp.Type)
		case strings.TrimSpace(wp.AddressStreet) == "":
			return fmt.Errorf("waypoints[%d].addressStreet is required", i)
		case strings.TrimSpace(wp.City) == "":
			return fmt.Errorf("waypoints[%d].city is required", i)
		case strings.TrimSpace(wp.Name) == "":
			return fmt.Errorf("waypoints[%d].name is required", i)
		case !phone.MatchString(wp.Phone):
			return fmt.Errorf("waypoints[%d].phone is not a valid phone number", i)
		}
		seen[wp.Type] = true
	}
	return nil
}

// priceLocked renders the configured fee as PedidosYa pricing: major units,
// with Chile's 19 % VAT split out. The caller holds s.mu.
func (s *Server) priceLocked() wire.Pricing {
	scale := math.Pow10(provider.MinorUnits(s.feeCur))
	total := float64(s.feeAmount) / scale
	taxes := math.Round(total*0.19/1.19*scale) / scale
	return wire.Pricing{Subtotal: math.Round((total-taxes)*scale) / scale, Taxes: taxes, Total: total, Currency: s.feeCur}
}

type promise struct {
	pickup, from, to string
	driving          int // minutes
}

// timesLocked derives an offer's times from now and the ETA: pickup after
// a third of it, delivery promised between ETA-10m and ETA. The caller
// holds s.mu.
func (s *Server) timesLocked(now time.Time) promise {
	pickup := now.Add(s.eta / 3)
	to := now.Add(s.eta)
	from := to.Add(-10 * time.Minute)
	if from.Before(pickup) {
		from = pickup
	}
	return promise{
		pickup:  wire.FormatTime(pickup),
		from:    wire.FormatTime(from),
		to:      wire.FormatTime(to),
		driving: int(to.Sub(pickup).Round(time.Minute) / time.Minute),
	}
}

func waypoint(wps []wire.Waypoint, typ string) wire.Waypoint {
	for _, wp := range wps {
		if wp.Type == typ {
			return wp
		}
	}
	return wire.Waypoint{}
}

// distance is the great-circle distance between the waypoints in metres,
// zero without coordinates.
func distance(wps []wire.Waypoint) float64 {
	a, b := waypoint(wps, wire.WaypointPickUp), waypoint(wps, wire.WaypointDropOff)
	if a.Latitude == nil || a.Longitude == nil || b.Latitude == nil || b.Longitude == nil {
		return 0
	}
	rad := func(d float64) float64 { return d * math.Pi / 180 }
	dLat, dLng := rad(*b.Latitude-*a.Latitude), rad(*b.Longitude-*a.Longitude)
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(rad(*a.Latitude))*math.Cos(rad(*b.Latitude))*math.Sin(dLng/2)*math.Sin(dLng/2)
	return math.Round(2 * 6371000 * math.Asin(math.Sqrt(h)))
}

// clone deep-copies a stored shipping for an answer.
func clone(sh *wire.Shipping) wire.Shipping {
	b, _ := json.Marshal(sh)
	var out wire.Shipping
	_ = json.Unmarshal(b, &out)
	return out
}

func failCode(status int) string {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return wire.CodeUnauthorized
	case status == http.StatusNotFound:
		return wire.CodeNotFound
	case status == http.StatusTooManyRequests:
		return wire.CodeTooManyRequests
	case status >= 500:
		return wire.CodeInternalError
	}
	return wire.CodeInvalidRequest
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, wire.Error{Status: status, Code: code, Message: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"status":500,"code":"INTERNAL_ERROR","message":"encode"}`)
	}
	w.Header().Set(wire.HeaderContentType, wire.ContentTypeJSON)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
