package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/provider"
)

const (
	// quoteValidity is Uber's documented quote lifetime, used when an
	// answer has no "expires".
	quoteValidity = 15 * time.Minute
	// readySlack: a ReadyAt closer than this to now means "as soon as
	// possible" and is not sent, because Uber refuses pickup_ready_dt in
	// the past (pickup_ready_too_early).
	readySlack = time.Minute
	// defaultItemName names the single manifest item sent when a create
	// request lists none (Uber requires manifest_items).
	defaultItemName = "Package"
)

// clock is the plugin's time source; tests move it.
var clock = time.Now

// errBadRequest is in the chain of every KindInvalid error the plugin
// raises before calling Uber.
var errBadRequest = errors.New("uberdirect: invalid request")

func invalid(format string, args ...any) error {
	return provider.Invalid(fmt.Errorf("%w: "+format, append([]any{errBadRequest}, args...)...))
}

// Quote prices a delivery: POST /delivery_quotes. The quote is valid for
// 15 minutes; pass its ID as CreateRequest.QuoteID to book it at that fee.
func (p *uberDirect) Quote(ctx context.Context, req delivery.QuoteRequest) (delivery.Quote, error) {
	c, err := p.client(req.Tenant)
	if err != nil {
		return delivery.Quote{}, err
	}
	body, err := buildQuote(req, clock())
	if err != nil {
		return delivery.Quote{}, err
	}
	var q quoteResponse
	if err := c.call(ctx, "quote", http.MethodPost, quotesPath, nil, body, &q); err != nil {
		return delivery.Quote{}, err
	}
	if q.ID == "" {
		return delivery.Quote{}, c.fail(ctx, "quote", http.StatusOK, provider.Retryable(errors.New("uberdirect: quote: answer has no id")))
	}
	return mapQuote(q, clock()), nil
}

// CreateShipment books a courier: POST /deliveries with quote_id (when
// given), external_id = DeliveryID and idempotency_key = IdempotencyKey.
//
// The same IdempotencyKey never books twice: a key this process has seen
// returns the delivery it booked (read fresh with GET), or, when an
// earlier attempt ended without an answer, is first looked up by
// external_id. After a create without an answer (network failure, 408,
// 5xx) the plugin looks the delivery up by external_id and, only when it
// is absent, sends the create once more. A 409 duplicate_delivery naming a
// delivery with the same external_id is that delivery. Reusing a key for
// a different request is KindInvalid.
func (p *uberDirect) CreateShipment(ctx context.Context, req delivery.CreateRequest) (delivery.Shipment, error) {
	c, err := p.client(req.Tenant)
	if err != nil {
		return delivery.Shipment{}, err
	}
	body, err := buildCreate(req, clock())
	if err != nil {
		return delivery.Shipment{}, err
	}
	if req.IdempotencyKey == "" {
		return c.book(ctx, body, req.DeliveryID)
	}
	sl, release, err := p.creates.acquire(ctx, idemKey(c, req.IdempotencyKey))
	if err != nil {
		return delivery.Shipment{}, err
	}
	defer release()
	rec := &sl.rec
	// The fingerprint ignores the clock: a retry whose ReadyAt has come
	// close to "now" (and so is no longer sent) is still the same request.
	stable, err := buildCreate(req, time.Time{})
	if err != nil {
		return delivery.Shipment{}, err
	}
	fp := fingerprint(stable)
	if rec.fingerprint != "" && rec.fingerprint != fp {
		return delivery.Shipment{}, invalid("idempotency key %q was used for a different request", clip(req.IdempotencyKey))
	}
	rec.fingerprint = fp
	if rec.shipment != nil {
		sh, err := c.get(ctx, rec.shipment.ID)
		if err != nil {
			provider.Log(ctx).Info("uberdirect: repeated create answered from memory", "delivery", rec.shipment.ID, "kind", provider.KindOf(err).String())
			return *rec.shipment, nil
		}
		return sh, nil
	}
	if rec.uncertain && req.DeliveryID != "" {
		sh, found, err := c.findByExternalID(ctx, req.DeliveryID)
		if err != nil {
			return delivery.Shipment{}, err
		}
		if found {
			rec.shipment, rec.uncertain = &sh, false
			return sh, nil
		}
	}
	sh, err := c.book(ctx, body, req.DeliveryID)
	if err != nil {
		if ambiguous(err) {
			rec.uncertain = true
		}
		return delivery.Shipment{}, err
	}
	rec.shipment, rec.uncertain = &sh, false
	return sh, nil
}

// book sends the create, looking the delivery up by externalID before the
// single retry an ambiguous failure earns.
func (c *client) book(ctx context.Context, body []byte, externalID string) (delivery.Shipment, error) {
	const op = "create delivery"
	for attempt := 1; ; attempt++ {
		var d deliveryObject
		err := c.call(ctx, op, http.MethodPost, deliveriesPath, nil, body, &d)
		if err == nil {
			if d.ID == "" {
				return delivery.Shipment{}, c.fail(ctx, op, http.StatusOK, provider.Retryable(errors.New("uberdirect: create delivery: answer has no id")))
			}
			return c.mapDelivery(ctx, d), nil
		}
		if se, ok := apiStatus(err); ok && se.status == http.StatusConflict && se.code == codeDuplicateDelivery && se.deliveryID != "" {
			return c.adoptDuplicate(ctx, se.deliveryID, externalID, err)
		}
		if !ambiguous(err) || attempt > 1 || externalID == "" || ctx.Err() != nil {
			return delivery.Shipment{}, err
		}
		sh, found, lerr := c.findByExternalID(ctx, externalID)
		if lerr != nil {
			return delivery.Shipment{}, err // still unknown: the caller keeps it uncertain
		}
		if found {
			provider.Log(ctx).Info("uberdirect: create without an answer had booked", "delivery", sh.ID)
			return sh, nil
		}
		provider.Log(ctx).Info("uberdirect: create without an answer had not booked; retrying once", "kind", provider.KindOf(err).String())
	}
}

// adoptDuplicate reads the delivery Uber says already exists and returns
// it when it carries our external_id; otherwise the 409 stands.
func (c *client) adoptDuplicate(ctx context.Context, id, externalID string, dupErr error) (delivery.Shipment, error) {
	d, err := c.getObject(ctx, id)
	if err != nil {
		return delivery.Shipment{}, provider.Retryable(fmt.Errorf("uberdirect: create delivery: reading the duplicate %s: %w", clip(id), err))
	}
	if externalID != "" && d.ExternalID == externalID {
		return c.mapDelivery(ctx, d), nil
	}
	return delivery.Shipment{}, dupErr
}

// findByExternalID lists the most recent deliveries (GET /deliveries,
// newest first, listPageSize per page, at most listMaxPages pages) and
// returns the newest whose external_id matches. Uber documents no
// external_id filter, so the plugin filters.
func (c *client) findByExternalID(ctx context.Context, externalID string) (delivery.Shipment, bool, error) {
	offset := 0
	for page := 0; page < listMaxPages; page++ {
		q := url.Values{queryLimit: {strconv.Itoa(listPageSize)}}
		if offset > 0 {
			q.Set(queryOffset, strconv.Itoa(offset))
		}
		var lr listResponse
		if err := c.call(ctx, "list deliveries", http.MethodGet, deliveriesPath, q, nil, &lr); err != nil {
			return delivery.Shipment{}, false, err
		}
		for _, d := range lr.Data {
			if d.ExternalID == externalID && d.ID != "" {
				return c.mapDelivery(ctx, d), true, nil
			}
		}
		if lr.NextHref == "" || len(lr.Data) == 0 {
			break
		}
		offset += len(lr.Data)
	}
	return delivery.Shipment{}, false, nil
}

// GetShipment reads a delivery: GET /deliveries/{id}.
func (p *uberDirect) GetShipment(ctx context.Context, req delivery.GetRequest) (delivery.Shipment, error) {
	c, err := p.client(req.Tenant)
	if err != nil {
		return delivery.Shipment{}, err
	}
	return c.get(ctx, req.ID)
}

func (c *client) get(ctx context.Context, id string) (delivery.Shipment, error) {
	d, err := c.getObject(ctx, id)
	if err != nil {
		return delivery.Shipment{}, err
	}
	return c.mapDelivery(ctx, d), nil
}

func (c *client) getObject(ctx context.Context, id string) (deliveryObject, error) {
	id = strings.TrimSpace(id)
	if id == "" {
		return deliveryObject{}, invalid("delivery id is empty")
	}
	var d deliveryObject
	if err := c.call(ctx, "get delivery", http.MethodGet, deliveriesPath+"/"+url.PathEscape(id), nil, nil, &d); err != nil {
		return deliveryObject{}, err
	}
	return d, nil
}

// CancelShipment cancels a delivery: POST /deliveries/{id}/cancel. Uber
// refuses once the courier has picked up (noncancelable_delivery): that is
// KindPermanent with Uber's message. Cancelling a delivery that is already
// cancelled returns it, so a retry is harmless. Uber's cancel takes no
// reason; Reason is only logged.
func (p *uberDirect) CancelShipment(ctx context.Context, req delivery.CancelRequest) (delivery.Shipment, error) {
	c, err := p.client(req.Tenant)
	if err != nil {
		return delivery.Shipment{}, err
	}
	id := strings.TrimSpace(req.ID)
	if id == "" {
		return delivery.Shipment{}, invalid("delivery id is empty")
	}
	var d deliveryObject
	err = c.call(ctx, "cancel delivery", http.MethodPost, deliveriesPath+"/"+url.PathEscape(id)+cancelSuffix, nil, nil, &d)
	if err == nil {
		provider.Log(ctx).Info("uberdirect delivery cancelled", "delivery", id, "reason", clip(req.Reason))
		return c.mapDelivery(ctx, d), nil
	}
	if se, ok := apiStatus(err); ok && se.code == codeNoncancelable {
		if cur, gerr := c.getObject(ctx, id); gerr == nil && (cur.Status == uberCanceled || cur.Status == uberReturned) {
			return c.mapDelivery(ctx, cur), nil
		}
	}
	return delivery.Shipment{}, err
}

// buildQuote encodes a quote request.
func buildQuote(req delivery.QuoteRequest, now time.Time) ([]byte, error) {
	pickup, err := encodeAddress("pickup", req.Pickup.Address)
	if err != nil {
		return nil, err
	}
	dropoff, err := encodeAddress("dropoff", req.Dropoff.Address)
	if err != nil {
		return nil, err
	}
	q := quoteRequest{
		PickupAddress:      pickup,
		DropoffAddress:     dropoff,
		PickupPhoneNumber:  strings.TrimSpace(req.Pickup.Contact.Phone),
		DropoffPhoneNumber: strings.TrimSpace(req.Dropoff.Contact.Phone),
		PickupReadyDT:      readyAt(req.ReadyAt, now),
		ManifestTotalValue: totalValue(req.Items),
	}
	q.PickupLatitude, q.PickupLongitude = coords(req.Pickup.Location)
	q.DropoffLatitude, q.DropoffLongitude = coords(req.Dropoff.Location)
	return marshal(q)
}

// buildCreate encodes a create request.
func buildCreate(req delivery.CreateRequest, now time.Time) ([]byte, error) {
	pickup, err := encodeAddress("pickup", req.Pickup.Address)
	if err != nil {
		return nil, err
	}
	dropoff, err := encodeAddress("dropoff", req.Dropoff.Address)
	if err != nil {
		return nil, err
	}
	b := createRequest{
		QuoteID:            strings.TrimSpace(req.QuoteID),
		PickupName:         strings.TrimSpace(req.Pickup.Contact.Name),
		PickupAddress:      pickup,
		PickupPhoneNumber:  strings.TrimSpace(req.Pickup.Contact.Phone),
		PickupNotes:        truncate(req.Pickup.Notes, maxNotes),
		DropoffName:        strings.TrimSpace(req.Dropoff.Contact.Name),
		DropoffAddress:     dropoff,
		DropoffPhoneNumber: strings.TrimSpace(req.Dropoff.Contact.Phone),
		DropoffNotes:       truncate(req.Dropoff.Notes, maxNotes),
		ManifestItems:      manifest(req.Items),
		ManifestReference:  strings.TrimSpace(req.Reference),
		ManifestTotalValue: totalValue(req.Items),
		PickupReadyDT:      readyAt(req.ReadyAt, now),
		ExternalID:         strings.TrimSpace(req.DeliveryID),
		IdempotencyKey:     req.IdempotencyKey,
	}
	b.PickupLatitude, b.PickupLongitude = coords(req.Pickup.Location)
	b.DropoffLatitude, b.DropoffLongitude = coords(req.Dropoff.Location)
	return marshal(b)
}

// encodeAddress returns a as Uber's structured address, JSON-encoded into
// a string. A stop without a street is KindInvalid.
func encodeAddress(stop string, a delivery.Address) (string, error) {
	street := strings.TrimSpace(a.Street)
	if street == "" {
		return "", invalid("%s address has no street", stop)
	}
	if n := strings.TrimSpace(a.Number); n != "" {
		street += " " + n
	}
	b, err := marshal(structuredAddress{
		StreetAddress: []string{street},
		City:          strings.TrimSpace(a.City),
		State:         strings.TrimSpace(a.Region),
		ZipCode:       strings.TrimSpace(a.PostalCode),
		Country:       strings.ToUpper(strings.TrimSpace(a.Country)),
	})
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// marshal encodes v as compact JSON without HTML escaping.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, invalid("encode: %v", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func coords(l *delivery.Location) (*float64, *float64) {
	if l == nil {
		return nil, nil
	}
	lat, lng := l.Lat, l.Lng
	return &lat, &lng
}

// readyAt formats t for pickup_ready_dt; empty for zero or "now".
func readyAt(t, now time.Time) string {
	if t.IsZero() || t.Before(now.Add(readySlack)) {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// uberSizes are the manifest sizes Uber accepts.
var uberSizes = map[string]bool{"small": true, "medium": true, "large": true, "xlarge": true}

// manifest maps items to manifest_items; no items yields one generic
// package, as Uber requires at least one.
func manifest(items []delivery.Item) []manifestItem {
	if len(items) == 0 {
		return []manifestItem{{Name: defaultItemName, Quantity: 1}}
	}
	out := make([]manifestItem, 0, len(items))
	for _, it := range items {
		m := manifestItem{Name: strings.TrimSpace(it.Name), Quantity: it.Quantity}
		if m.Name == "" {
			m.Name = defaultItemName
		}
		if m.Quantity <= 0 {
			m.Quantity = 1
		}
		if s := strings.ToLower(strings.TrimSpace(it.Size)); uberSizes[s] {
			m.Size = s
		}
		if it.Price != nil {
			amount := it.Price.Amount
			m.Price = &amount
		}
		out = append(out, m)
	}
	return out
}

// totalValue is the manifest's value in minor units when every item has a
// price in one currency; nil otherwise.
func totalValue(items []delivery.Item) *int64 {
	if len(items) == 0 {
		return nil
	}
	var total int64
	currency := ""
	for _, it := range items {
		if it.Price == nil || (currency != "" && it.Price.Currency != currency) {
			return nil
		}
		currency = it.Price.Currency
		q := int64(it.Quantity)
		if q <= 0 {
			q = 1
		}
		total += it.Price.Amount * q
	}
	return &total
}

// truncate cuts s to at most n runes.
func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n])
}

func fingerprint(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// idemKey scopes an idempotency key to the tenant, the credential and the
// customer.
func idemKey(c *client, key string) string {
	return strings.Join([]string{c.key.tenant, c.key.clientID, c.key.secretHash, c.cfg.baseURL, c.cfg.customerID, key}, "\x00")
}

// mapQuote turns Uber's quote into the gateway's.
func mapQuote(q quoteResponse, now time.Time) delivery.Quote {
	out := delivery.Quote{
		ID:        q.ID,
		Fee:       provider.Money{Amount: q.Fee, Currency: currencyOf(q.CurrencyType, q.Currency)},
		ExpiresAt: parseTime(q.Expires),
	}
	switch {
	case q.Duration > 0:
		out.ETA = time.Duration(q.Duration) * time.Minute
	case q.DropoffETA != "":
		if eta := parseTime(q.DropoffETA); !eta.IsZero() {
			out.ETA = eta.Sub(now).Round(time.Second)
		}
	}
	if out.ExpiresAt.IsZero() {
		created := parseTime(q.Created)
		if created.IsZero() {
			created = now
		}
		out.ExpiresAt = created.Add(quoteValidity)
	}
	return out
}

func currencyOf(values ...string) string {
	for _, v := range values {
		if v = strings.TrimSpace(v); v != "" {
			return strings.ToUpper(v)
		}
	}
	return ""
}

// mapDelivery turns Uber's delivery object into a Shipment, logging a
// status it does not know.
func (c *client) mapDelivery(ctx context.Context, d deliveryObject) delivery.Shipment {
	sh, known := shipmentOf(d)
	if !known {
		provider.Log(ctx).Warn("uberdirect: unknown delivery status mapped to pending", "delivery", d.ID, "status", clip(d.Status))
	}
	return sh
}

// shipmentOf maps a delivery object; known is false for a status the
// plugin does not recognise (mapped to pending).
func shipmentOf(d deliveryObject) (sh delivery.Shipment, known bool) {
	st, reason, known := mapStatus(d)
	sh = delivery.Shipment{
		ID:          d.ID,
		Status:      st,
		TrackingURL: d.TrackingURL,
		ETA:         parseTime(d.DropoffETA),
		Reason:      reason,
		Courier:     mapCourier(d.Courier),
		Proof:       mapProof(d.Dropoff),
	}
	if d.Fee != nil {
		if cur := currencyOf(d.Currency); cur != "" {
			sh.Fee = provider.Money{Amount: *d.Fee, Currency: cur}
		}
	}
	return sh, known
}

// mapStatus is the status table of README.md:
//
//	pending                       → pending
//	pickup                        → assigned with a courier, else pending
//	pickup_complete, dropoff      → picked_up
//	delivered                     → delivered
//	canceled                      → cancelled (reason: Uber's cancelation
//	                                reason), or failed when Uber gives an
//	                                undeliverable_reason
//	returned                      → cancelled, reason "returned"
func mapStatus(d deliveryObject) (st delivery.Status, reason string, known bool) {
	switch d.Status {
	case uberPending:
		return delivery.StatusPending, "", true
	case uberPickup:
		if hasCourier(d.Courier) {
			return delivery.StatusAssigned, "", true
		}
		return delivery.StatusPending, "", true
	case uberPickupComplete, uberDropoff:
		return delivery.StatusPickedUp, "", true
	case uberDelivered:
		return delivery.StatusDelivered, "", true
	case uberCanceled:
		if r := strings.TrimSpace(d.UndeliverableReason); r != "" {
			return delivery.StatusFailed, clip(r), true
		}
		return delivery.StatusCancelled, cancelReason(d.CancelationReason), true
	case uberReturned:
		return delivery.StatusCancelled, uberReturned, true
	}
	return delivery.StatusPending, "", false
}

func cancelReason(r *cancelationReason) string {
	if r == nil {
		return ""
	}
	p, s := strings.TrimSpace(r.PrimaryReason), strings.TrimSpace(r.SecondaryReason)
	switch {
	case p != "" && s != "":
		return clip(p + ": " + s)
	case p != "":
		return clip(p)
	}
	return clip(s)
}

func hasCourier(c *courierInfo) bool {
	return c != nil && (c.Name != "" || c.PhoneNumber != "" || c.VehicleType != "" || c.Location != nil)
}

func mapCourier(c *courierInfo) *delivery.Courier {
	if !hasCourier(c) {
		return nil
	}
	out := &delivery.Courier{Name: c.Name, Phone: c.PhoneNumber, Vehicle: c.VehicleType}
	if c.Location != nil {
		out.Location = &delivery.Location{Lat: c.Location.Lat, Lng: c.Location.Lng}
	}
	return out
}

// mapProof reads the drop-off verification: picture, signature and PIN.
func mapProof(w *waypoint) *delivery.ProofOfDelivery {
	if w == nil || w.Verification == nil {
		return nil
	}
	v := w.Verification
	var p delivery.ProofOfDelivery
	if v.Picture != nil {
		p.PhotoURL = v.Picture.ImageURL
	}
	if v.Signature != nil {
		p.SignatureURL = v.Signature.ImageURL
	}
	if v.PinCode != nil {
		p.PIN = v.PinCode.Entered
	}
	if p == (delivery.ProofOfDelivery{}) {
		return nil
	}
	return &p
}
