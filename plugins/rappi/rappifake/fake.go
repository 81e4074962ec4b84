// Package rappifake is an in-process fake of Rappi's courier API for the
// Rappi plugin's tests and PipeCore's end-to-end tests. It speaks exactly
// the wire format the plugin does (the module's internal/wire package:
// paths, headers, JSON fields, status strings), and checks what Rappi
// would:
//
//   - POST /restaurants/auth/v1/token/login/integrations with
//     {client_id, client_secret} equal to ClientID and ClientSecret mints
//     an access token (expires_in one week); other credentials are a 401
//     {"code":"invalid_client"}, missing ones a 400.
//   - Every other endpoint needs "X-Authorization: Bearer <token>" with a
//     token it minted, else 401 {"code":"unauthorized","message":…}.
//   - Quote and create need a pickup and a dropoff (a street or a
//     location each) and at least one item with a name and a positive
//     quantity; create needs external_id, and a quote_id, when given,
//     must be one it issued in the last 15 minutes. Otherwise 400
//     {"code":"invalid_request"|"quote_expired","message":…}.
//   - Create is idempotent twice over: a repeated Idempotency-Key header,
//     or a repeated external_id, answers 200 with the delivery first
//     booked (a new one is 201).
//   - Deliveries move CREATED → ASSIGNED → PICKED_UP → DELIVERED only
//     through Advance. Cancel works until pickup (a cancelled delivery
//     cancels again harmlessly); after it the answer is 409
//     {"code":"cancel_not_allowed","message":…}.
//
// Unknown delivery ids are 404 {"code":"not_found"}. SetDelay and FailNext
// act on every endpoint except the token endpoint. Webhooks set with
// SetWebhook are signed "Rappi-Signature: t=<unix seconds>,sign=<hex
// HMAC-SHA256(secret, t + "." + body)>" and shaped like Rappi's documented
// order events: {"event":"ASSIGNED","order_id":"<delivery id>",
// "external_id":…,"event_time":"2006-01-02 15:04:05",
// "additional_information":{"courier_data":{…}}}.
//
// The server listens on 127.0.0.1 only. Every method is safe for
// concurrent use; Close stops everything, including delayed answers.
package rappifake

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pipecore/pipecore/plugins/rappi/internal/wire"
	"github.com/pipecore/pipecore/sdk/providertest/fakehttp"
)

// The only client credentials the fake accepts.
const (
	ClientID     = "rappi-test-client"
	ClientSecret = "rappi-test-secret"
)

// Defaults of a new Server.
const (
	defaultFee      = 1990
	defaultCurrency = "CLP"
	defaultETA      = 40 * time.Minute
	quoteTTL        = 15 * time.Minute
	tokenTTL        = wire.TokenLifetime
	maxBody         = 1 << 20
)

// Request is one request the fake received, as received.
type Request = fakehttp.Request

// Server is a running fake. Create it with Start and stop it with Close.
type Server struct {
	api *fakehttp.Server

	mu         sync.Mutex
	fee        wire.Money
	eta        time.Duration
	hookURL    string
	hookSecret string
	tokens     map[string]time.Time // token → expiry
	quotes     map[string]quote
	deliveries map[string]*wire.Delivery
	byKey      map[string]string // Idempotency-Key → delivery id
	byExternal map[string]string // external_id → delivery id
	seq        int64
	idBase     int64
}

type quote struct {
	fee     wire.Money
	expires time.Time
}

// Start starts a fake on 127.0.0.1 with a fee of 1990 CLP, an ETA of 40
// minutes, no delay, no failures and no webhook.
func Start() *Server {
	n, err := rand.Int(rand.Reader, big.NewInt(100_000_000))
	if err != nil {
		n = big.NewInt(0)
	}
	s := &Server{
		api:        fakehttp.New(fakehttp.Options{Name: "rappifake"}),
		fee:        wire.Money{Amount: defaultFee, Currency: defaultCurrency},
		eta:        defaultETA,
		tokens:     map[string]time.Time{},
		quotes:     map[string]quote{},
		deliveries: map[string]*wire.Delivery{},
		byKey:      map[string]string{},
		byExternal: map[string]string{},
		idBase:     300_000_000 + n.Int64(),
	}
	s.api.Start(http.HandlerFunc(s.serve))
	return s
}

// URL is the plugin's base_url: the token endpoint and the API share it.
func (s *Server) URL() string { return s.api.URL() }

// Close stops the server: delayed answers end at once, the listener
// closes, and in-flight webhooks are abandoned. It is safe to call twice.
func (s *Server) Close() { s.api.Close() }

// SetFee sets the fee of later quotes and deliveries booked without a
// quote. currency is upper-cased.
func (s *Server) SetFee(amount int64, currency string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fee = wire.Money{Amount: amount, Currency: strings.ToUpper(currency)}
}

// SetETA sets the delivery time of later quotes and deliveries.
func (s *Server) SetETA(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.eta = d
}

// SetDelay makes every API answer, except the token endpoint's, wait d
// (zero: none; answers already waiting follow the change). A waiting
// answer ends early when its client gives up or the fake closes.
func (s *Server) SetDelay(d time.Duration) { s.api.SetDelay(d) }

// FailNext makes the next n API calls (not the token endpoint) answer
// status with {"code":"injected_failure","message":…}; a 429 carries
// "Retry-After: 1". The calls are still recorded and authenticated after
// the failure is spent, not before.
func (s *Server) FailNext(status, n int) { s.api.FailNext(status, n) }

// SetWebhook makes Advance POST a signed status webhook to url with
// secret; url "" disables webhooks.
func (s *Server) SetWebhook(url, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hookURL, s.hookSecret = url, secret
}

// Advance moves the delivery to its next status (created → assigned →
// picked_up → delivered) and returns the new status in lower case
// ("assigned", "picked_up" or "delivered"; the wire carries ASSIGNED,
// PICKED_UP, DELIVERED). A courier with a location is attached on
// assignment and moves on pickup; delivery adds a proof. When a webhook is
// set the status webhook is POSTed before Advance returns, and a transport
// failure or a non-2xx answer is an error (the status has changed
// regardless). An unknown id, or a delivery that is delivered, cancelled
// or failed, is an error and changes nothing.
func (s *Server) Advance(deliveryID string) (status string, err error) {
	s.mu.Lock()
	d, ok := s.deliveries[deliveryID]
	if !ok {
		s.mu.Unlock()
		return "", fmt.Errorf("rappifake: no delivery %q", deliveryID)
	}
	switch d.Status {
	case wire.StatusCreated:
		d.Status = wire.StatusAssigned
		d.Courier = &wire.Courier{
			ID: "729001", FullName: "Camila Rojas", FirstName: "Camila", LastName: "Rojas",
			Phone: "+56911112222", Vehicle: "motorcycle", Location: &wire.Location{Lat: -33.4263, Lng: -70.6200},
		}
	case wire.StatusAssigned:
		d.Status = wire.StatusPickedUp
		if d.Courier != nil {
			d.Courier.Location = &wire.Location{Lat: -33.4372, Lng: -70.6345}
		}
	case wire.StatusPickedUp:
		d.Status = wire.StatusDelivered
		if d.Courier != nil {
			d.Courier.Location = &wire.Location{Lat: -33.4489, Lng: -70.6693}
		}
		d.ProofOfDelivery = &wire.Proof{PhotoURL: s.api.URL() + "/proof/" + d.ID + ".jpg", PIN: "4321"}
	default:
		st := d.Status
		s.mu.Unlock()
		return "", fmt.Errorf("rappifake: delivery %q is %s and cannot advance", deliveryID, st)
	}
	status = strings.ToLower(d.Status)
	hook := wire.Webhook{
		Event:               d.Status,
		OrderID:             wire.FlexID(d.ID),
		ExternalID:          d.ExternalID,
		EventTime:           time.Now().UTC().Format(wire.EventTimeLayout),
		TrackingURL:         d.TrackingURL,
		EstimatedDeliveryAt: d.EstimatedDeliveryAt,
	}
	if d.Courier != nil || d.ProofOfDelivery != nil {
		info := &wire.WebhookDetails{ProofOfDelivery: d.ProofOfDelivery}
		if d.Courier != nil {
			c := *d.Courier
			if c.Location != nil {
				l := *c.Location
				c.Location = &l
			}
			info.CourierData = &c
		}
		hook.AdditionalInformation = info
	}
	url, secret := s.hookURL, s.hookSecret
	s.mu.Unlock()
	if url == "" {
		return status, nil
	}
	return status, s.post(url, secret, hook)
}

// post sends one signed webhook and waits for the answer.
func (s *Server) post(url, secret string, hook wire.Webhook) error {
	body, err := json.Marshal(hook)
	if err != nil {
		return fmt.Errorf("rappifake: encode webhook: %w", err)
	}
	return s.api.PostWebhook(url, http.Header{
		"Content-Type":       {wire.ContentType},
		wire.SignatureHeader: {sign(secret, time.Now(), body)},
	}, body)
}

// sign returns the Rappi-Signature value for body sent at t:
// "t=<unix seconds>,sign=<hex HMAC-SHA256(secret, t + "." + body)>".
func sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return wire.SignatureTimestamp + "=" + ts + "," + wire.SignatureSign + "=" + hex.EncodeToString(mac.Sum(nil))
}

// Deliveries returns how many deliveries have been booked (a repeated
// create does not count).
func (s *Server) Deliveries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.deliveries)
}

// Requests returns every request received so far, token logins included,
// in arrival order.
func (s *Server) Requests() []Request { return s.api.Requests() }

// serve records the request and routes it.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, wire.CodeInvalidRequest, "unreadable body")
		return
	}
	s.api.Record(r, body)

	if r.URL.Path == wire.TokenPath {
		s.login(w, r, body)
		return
	}
	if err := s.api.Wait(r.Context(), time.Now()); err != nil {
		if errors.Is(err, fakehttp.ErrClosed) {
			writeError(w, http.StatusServiceUnavailable, "shutting_down", "the fake is closing")
		}
		return
	}
	if status, ok := s.api.TakeFailure(); ok {
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		writeError(w, status, "injected_failure", "failure injected by FailNext")
		return
	}
	if !s.authorized(r.Header.Get(wire.AuthHeader)) {
		writeError(w, http.StatusUnauthorized, wire.CodeUnauthorized, "missing, unknown or expired access token")
		return
	}
	if r.Method == http.MethodPost && len(body) > 0 && !strings.HasPrefix(r.Header.Get("Content-Type"), wire.ContentType) {
		writeError(w, http.StatusBadRequest, wire.CodeInvalidRequest, "Content-Type must be "+wire.ContentType)
		return
	}
	s.route(w, r, body)
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, body []byte) {
	path := r.URL.Path
	switch {
	case path == wire.QuotesPath:
		if r.Method != http.MethodPost {
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
			return
		}
		s.quote(w, body)
	case path == wire.DeliveriesPath:
		if r.Method != http.MethodPost {
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
			return
		}
		s.create(w, r.Header.Get(wire.IdempotencyHeader), body)
	case strings.HasPrefix(path, wire.DeliveriesPath+"/"):
		rest := strings.TrimPrefix(path, wire.DeliveriesPath+"/")
		if id, ok := strings.CutSuffix(rest, wire.CancelSuffix); ok && id != "" && !strings.Contains(id, "/") {
			if r.Method != http.MethodPost {
				writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
				return
			}
			s.cancelDelivery(w, id, body)
			return
		}
		if rest == "" || strings.Contains(rest, "/") {
			writeError(w, http.StatusNotFound, wire.CodeNotFound, "no such endpoint")
			return
		}
		if r.Method != http.MethodGet {
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
			return
		}
		s.get(w, rest)
	default:
		writeError(w, http.StatusNotFound, wire.CodeNotFound, "no such endpoint")
	}
}

// login implements the token endpoint.
func (s *Server) login(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
		return
	}
	var in wire.TokenRequest
	if err := json.Unmarshal(body, &in); err != nil || in.ClientID == "" || in.ClientSecret == "" {
		writeError(w, http.StatusBadRequest, wire.CodeInvalidRequest, "client_id and client_secret are required")
		return
	}
	if !hmac.Equal([]byte(in.ClientID), []byte(ClientID)) || !hmac.Equal([]byte(in.ClientSecret), []byte(ClientSecret)) {
		writeError(w, http.StatusUnauthorized, wire.CodeInvalidClient, "invalid client credentials")
		return
	}
	tok := "rappi_tok_" + randomHex(16)
	s.mu.Lock()
	s.tokens[tok] = time.Now().Add(tokenTTL)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, wire.TokenResponse{AccessToken: tok, TokenType: wire.AuthScheme, ExpiresIn: int64(tokenTTL / time.Second)})
}

// authorized checks an X-Authorization value: "Bearer <token>" (also
// "Bearer: <token>", any case), with a token this fake minted and that has
// not expired.
func (s *Server) authorized(h string) bool {
	h = strings.TrimSpace(h)
	if len(h) < len(wire.AuthScheme) || !strings.EqualFold(h[:len(wire.AuthScheme)], wire.AuthScheme) {
		return false
	}
	tok := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(h[len(wire.AuthScheme):]), ":"))
	if tok == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[tok]
	return ok && time.Now().Before(exp)
}

func (s *Server) quote(w http.ResponseWriter, body []byte) {
	var in wire.QuoteRequest
	if err := decode(body, &in); err != nil {
		writeError(w, http.StatusBadRequest, wire.CodeInvalidRequest, err.Error())
		return
	}
	if msg := validate(in); msg != "" {
		writeError(w, http.StatusBadRequest, wire.CodeInvalidRequest, msg)
		return
	}
	now := time.Now()
	id := "rq_" + randomHex(8)
	s.mu.Lock()
	q := quote{fee: s.fee, expires: now.Add(quoteTTL)}
	s.quotes[id] = q
	eta := s.eta
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, wire.QuoteResponse{
		QuoteID:    id,
		Fee:        q.fee,
		ETAMinutes: int64((eta + time.Minute - 1) / time.Minute),
		ExpiresAt:  q.expires.UTC().Format(time.RFC3339),
	})
}

func (s *Server) create(w http.ResponseWriter, key string, body []byte) {
	var in wire.OrderRequest
	if err := decode(body, &in); err != nil {
		writeError(w, http.StatusBadRequest, wire.CodeInvalidRequest, err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// A repeat answers before any validation, as a replay of the first
	// answer would.
	if id, ok := s.byKey[key]; ok && key != "" {
		writeJSON(w, http.StatusOK, s.deliveries[id])
		return
	}
	if id, ok := s.byExternal[in.ExternalID]; ok && in.ExternalID != "" {
		if key != "" {
			s.byKey[key] = id
		}
		writeJSON(w, http.StatusOK, s.deliveries[id])
		return
	}
	if in.ExternalID == "" {
		writeError(w, http.StatusBadRequest, wire.CodeInvalidRequest, "external_id is required")
		return
	}
	if msg := validate(in.QuoteRequest); msg != "" {
		writeError(w, http.StatusBadRequest, wire.CodeInvalidRequest, msg)
		return
	}
	now := time.Now()
	fee := s.fee
	if in.QuoteID != "" {
		q, ok := s.quotes[in.QuoteID]
		if !ok || now.After(q.expires) {
			writeError(w, http.StatusBadRequest, wire.CodeQuoteExpired, "quote "+in.QuoteID+" is unknown or expired")
			return
		}
		fee = q.fee
	}
	s.seq++
	id := strconv.FormatInt(s.idBase+s.seq, 10)
	d := &wire.Delivery{
		ID:                  id,
		ExternalID:          in.ExternalID,
		Status:              wire.StatusCreated,
		Fee:                 &fee,
		TrackingURL:         s.api.URL() + "/track/" + id,
		EstimatedDeliveryAt: now.Add(s.eta).UTC().Format(time.RFC3339),
		CreatedAt:           now.UTC().Format(time.RFC3339),
	}
	s.deliveries[id] = d
	s.byExternal[in.ExternalID] = id
	if key != "" {
		s.byKey[key] = id
	}
	writeJSON(w, http.StatusCreated, d)
}

func (s *Server) get(w http.ResponseWriter, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.deliveries[id]
	if !ok {
		writeError(w, http.StatusNotFound, wire.CodeNotFound, "delivery "+id+" not found")
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) cancelDelivery(w http.ResponseWriter, id string, body []byte) {
	var in wire.CancelRequest
	if len(bytes.TrimSpace(body)) > 0 {
		if err := decode(body, &in); err != nil {
			writeError(w, http.StatusBadRequest, wire.CodeInvalidRequest, err.Error())
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.deliveries[id]
	if !ok {
		writeError(w, http.StatusNotFound, wire.CodeNotFound, "delivery "+id+" not found")
		return
	}
	switch d.Status {
	case wire.StatusCreated, wire.StatusAssigned:
		d.Status = wire.StatusCanceled
		d.CancellationReason = in.Reason
		if d.CancellationReason == "" {
			d.CancellationReason = "canceled by partner"
		}
	case wire.StatusCanceled:
	default:
		writeError(w, http.StatusConflict, wire.CodeCancelNotAllowed, "delivery "+id+" is "+d.Status+" and can no longer be canceled")
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// validate checks the fields the courier contract requires; "" means
// valid.
func validate(in wire.QuoteRequest) string {
	for _, stop := range []struct {
		name string
		st   wire.Stop
	}{{"pickup", in.Pickup}, {"dropoff", in.Dropoff}} {
		name, st := stop.name, stop.st
		if strings.TrimSpace(st.Address.Street) == "" && st.Location == nil {
			return name + ".address.street or " + name + ".location is required"
		}
	}
	if len(in.Items) == 0 {
		return "items must not be empty"
	}
	for i, it := range in.Items {
		if strings.TrimSpace(it.Name) == "" || it.Quantity <= 0 {
			return fmt.Sprintf("items[%d] needs a name and a positive quantity", i)
		}
	}
	if in.ReadyAt != "" {
		if _, err := time.Parse(time.RFC3339, in.ReadyAt); err != nil {
			return "ready_at must be RFC 3339"
		}
	}
	return ""
}

func decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return errors.New("body is not valid JSON")
		}
		return fmt.Errorf("body does not match the schema: %v", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", wire.ContentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, wire.ErrorBody{Code: code, Message: msg})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
