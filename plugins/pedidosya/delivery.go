package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/provider/httpapi"

	"github.com/pipecore/pipecore/plugins/pedidosya/internal/wire"
)

// defaultQuoteTTL is how long a quote is said to be valid when the
// estimate's offer has no confirmationTimeLimit. Ten minutes is a guess:
// PedidosYa documents the field but no default.
const defaultQuoteTTL = 10 * time.Minute

// defaultCancelReason is the reasonText sent when a cancel request gives
// none; PedidosYa requires one.
const defaultCancelReason = "Cancelado por el comercio"

// fallbackItem is what is declared when a request lists no items: the
// Courier API requires at least one.
var fallbackItem = delivery.Item{Name: "Paquete", Quantity: 1}

// itemSizes maps delivery.Item.Size to the volume (cm³) and weight (kg)
// declared per unit. PedidosYa prices by them (max 80 840 cm³, 20 kg); the
// gateway only knows a size word, so these are PipeCore's conventions: a
// 10, 20 and 30 cm cube. Unknown or empty sizes count as medium.
var itemSizes = map[string]struct{ volume, weight float64 }{
	"small":  {1000, 1},
	"medium": {8000, 3},
	"large":  {27000, 8},
}

// phonePattern is PedidosYa's phone rule (wire.PhonePattern).
var phonePattern = regexp.MustCompile(wire.PhonePattern)

// Quote prices a delivery with POST /v3/shippings/estimates (the body of a
// create). The quote is the first EXPRESS offer with a price (else the
// first priced offer): ID is the estimateId, Fee the offer's total, ETA the
// time until its latest promised delivery (deliveryTimeTo, else
// deliveryTimeFrom, else pickup plus driving time), ExpiresAt its
// confirmationTimeLimit or defaultQuoteTTL from now. An estimate without
// offers (out of coverage) is KindPermanent.
func (*pedidosyaProvider) Quote(ctx context.Context, req delivery.QuoteRequest) (delivery.Quote, error) {
	c, err := newClient(req.Tenant)
	if err != nil {
		return delivery.Quote{}, err
	}
	ref := strings.TrimSpace(req.Reference)
	if ref == "" {
		ref = "quote-" + randomHex(6)
	}
	body, err := shippingRequest(ref, c.isTest, req.Pickup, req.Dropoff, req.Items)
	if err != nil {
		return delivery.Quote{}, err
	}
	var est wire.Estimate
	if err := c.do(ctx, "estimate shipping", http.MethodPost, wire.PathEstimates, nil, body, &est); err != nil {
		return delivery.Quote{}, err
	}
	offer, ok := pickOffer(est.DeliveryOffers)
	if !ok {
		return delivery.Quote{}, c.fail(ctx, "estimate shipping", http.StatusOK, provider.Permanent(errors.New("pedidosya: estimate shipping: no priced delivery offer for this route")))
	}
	fee, err := moneyOf(offer.Pricing)
	if err != nil {
		return delivery.Quote{}, c.fail(ctx, "estimate shipping", http.StatusOK, provider.Retryable(fmt.Errorf("pedidosya: estimate shipping: %w", err)))
	}
	id := est.EstimateID
	if id == "" {
		id = offer.DeliveryOfferID
	}
	if id == "" {
		return delivery.Quote{}, c.fail(ctx, "estimate shipping", http.StatusOK, provider.Retryable(errors.New("pedidosya: estimate shipping: answer has no estimateId")))
	}
	now := time.Now()
	expires := now.Add(defaultQuoteTTL)
	if t, ok := wire.ParseTime(offer.ConfirmationTimeLimit); ok && t.After(now) {
		expires = t
	}
	return delivery.Quote{ID: id, Fee: fee, ETA: offerETA(offer, now), ExpiresAt: expires}, nil
}

// CreateShipment books a shipping with POST /v3/shippings, referenceId =
// req.DeliveryID (else the idempotency key). PedidosYa has no idempotency
// header, so the plugin deduplicates on referenceId: before creating it
// looks the reference up (GET /v3/shippings?referenceId=…) and returns the
// shipping found; after an ambiguous failure (network, timeout, 5xx) it
// looks again before giving up. Within an hour a repeated IdempotencyKey
// returns the first shipment without calling PedidosYa; the same key with
// a different request is KindInvalid. req.QuoteID is not used: the v3
// estimate-confirm step would give the shipping the quote's referenceId,
// not the delivery id, and break the deduplication.
func (p *pedidosyaProvider) CreateShipment(ctx context.Context, req delivery.CreateRequest) (delivery.Shipment, error) {
	ref := strings.TrimSpace(req.DeliveryID)
	if ref == "" {
		ref = strings.TrimSpace(req.IdempotencyKey)
	}
	if ref == "" {
		return delivery.Shipment{}, provider.Invalid(errors.New("pedidosya: create shipping: DeliveryID and IdempotencyKey are both empty; one is needed as referenceId"))
	}
	c, err := newClient(req.Tenant)
	if err != nil {
		return delivery.Shipment{}, err
	}
	body, err := shippingRequest(ref, c.isTest, req.Pickup, req.Dropoff, req.Items)
	if err != nil {
		return delivery.Shipment{}, err
	}
	run := func() (delivery.Shipment, error) { return c.create(ctx, body) }
	if req.IdempotencyKey == "" {
		return run()
	}
	b, _ := json.Marshal(body) // cannot fail: shippingRequest built it
	sum := sha256.Sum256(b)
	return p.creates.Do(ctx, memoKey(req.Tenant, c, req.IdempotencyKey), hex.EncodeToString(sum[:]), run)
}

// create looks body's referenceId up, and creates the shipping when none
// exists. See CreateShipment.
func (c *client) create(ctx context.Context, body wire.ShippingRequest) (delivery.Shipment, error) {
	if s, found, err := c.lookup(ctx, body.ReferenceID); err != nil {
		return delivery.Shipment{}, err
	} else if found {
		provider.Log(ctx).Info("pedidosya: shipping already exists for this referenceId; not creating another", "shipping_id", s.Identifier(), "status", s.Status)
		return shipmentOf(ctx, s, ""), nil
	}
	var s wire.Shipping
	err := c.do(ctx, "create shipping", http.MethodPost, wire.PathShippings, nil, body, &s)
	if err == nil && s.Identifier() == "" {
		err = c.fail(ctx, "create shipping", http.StatusOK, provider.Retryable(errors.New("pedidosya: create shipping: answer has no shippingId")))
	}
	if err != nil {
		// Ambiguous: PedidosYa may have created it. Look once more while
		// the context allows; otherwise the gateway's retry looks first.
		if provider.KindOf(err) == provider.KindRetryable && ctx.Err() == nil {
			if s, found, lerr := c.lookup(ctx, body.ReferenceID); lerr == nil && found {
				provider.Log(ctx).Info("pedidosya: create failed ambiguously but the shipping exists", "shipping_id", s.Identifier())
				return shipmentOf(ctx, s, ""), nil
			}
		}
		return delivery.Shipment{}, err
	}
	return shipmentOf(ctx, s, ""), nil
}

// lookup finds the shipping created with referenceId ref. It prefers one
// that is not cancelled or rejected. A 4xx answer other than 401, 403 and
// 429 means the API has no such lookup (it is an assumption, see
// wire.QueryReferenceID): it is logged and reported as not found, so
// creates keep working; other failures are returned.
func (c *client) lookup(ctx context.Context, ref string) (wire.Shipping, bool, error) {
	var raw json.RawMessage
	err := c.do(ctx, "find shipping by referenceId", http.MethodGet, wire.PathShippings, url.Values{wire.QueryReferenceID: {ref}}, nil, &raw)
	if st := httpapi.StatusOf(err); st >= 400 && st < 500 && st != http.StatusUnauthorized && st != http.StatusForbidden && st != http.StatusTooManyRequests {
		provider.Log(ctx).Debug("pedidosya: lookup by referenceId unavailable; creating without it", "status", st)
		return wire.Shipping{}, false, nil
	}
	if err != nil {
		return wire.Shipping{}, false, err
	}
	list, err := wire.DecodeShippingList(raw)
	if err != nil {
		return wire.Shipping{}, false, c.fail(ctx, "find shipping by referenceId", http.StatusOK, provider.Retryable(fmt.Errorf("pedidosya: find shipping by referenceId: malformed response: %v", err)))
	}
	var found *wire.Shipping
	for i := range list {
		s := &list[i]
		if s.ReferenceID != ref || s.Identifier() == "" {
			continue // the filter may be ignored: trust only exact matches
		}
		if found == nil || (isDead(found.Status) && !isDead(s.Status)) {
			found = s
		}
	}
	if found == nil {
		return wire.Shipping{}, false, nil
	}
	return *found, true, nil
}

func isDead(status string) bool {
	return status == wire.StatusCancelled || status == wire.StatusRejected
}

// GetShipment reads a shipping (GET /v3/shippings/{id}). While a rider is
// on it (IN_PROGRESS to NEAR_DROPOFF) it also reads
// GET /v3/shippings/{id}/tracking for the rider's name, vehicle and
// position; a failing tracking call only leaves Courier empty.
func (*pedidosyaProvider) GetShipment(ctx context.Context, req delivery.GetRequest) (delivery.Shipment, error) {
	if strings.TrimSpace(req.ID) == "" {
		return delivery.Shipment{}, provider.Invalid(errors.New("pedidosya: get shipping: id is empty"))
	}
	c, err := newClient(req.Tenant)
	if err != nil {
		return delivery.Shipment{}, err
	}
	return c.get(ctx, req.ID)
}

func (c *client) get(ctx context.Context, id string) (delivery.Shipment, error) {
	var s wire.Shipping
	if err := c.do(ctx, "get shipping", http.MethodGet, wire.ShippingPath(id), nil, nil, &s); err != nil {
		return delivery.Shipment{}, err
	}
	sh := shipmentOf(ctx, s, id)
	switch s.Status {
	case wire.StatusInProgress, wire.StatusNearPickup, wire.StatusPickedUp, wire.StatusNearDropoff:
		var tr wire.Tracking
		if err := c.do(ctx, "track shipping", http.MethodGet, wire.TrackingPath(id), nil, nil, &tr); err != nil {
			provider.Log(ctx).Debug("pedidosya: no tracking; courier left empty", "shipping_id", id, "kind", provider.KindOf(err).String())
			break
		}
		sh.Courier = courierOf(tr)
		if t, ok := wire.ParseTime(tr.EstimatedDropOffTime); ok {
			sh.ETA = t
		}
	}
	return sh, nil
}

// CancelShipment cancels a shipping (POST /v3/shippings/{id}/cancel with
// reasonText = req.Reason, else defaultCancelReason, at most 255
// characters). When PedidosYa refuses (a 4xx other than 401, 403, 404 and
// 429, e.g. after PICKED_UP) the plugin reads the shipping: one already
// CANCELLED is returned as a success, so a repeated cancel is safe;
// otherwise the refusal is KindPermanent with PedidosYa's message. After an
// ambiguous failure it also reads the shipping and succeeds if it is
// cancelled. An unknown id is KindInvalid.
func (*pedidosyaProvider) CancelShipment(ctx context.Context, req delivery.CancelRequest) (delivery.Shipment, error) {
	if strings.TrimSpace(req.ID) == "" {
		return delivery.Shipment{}, provider.Invalid(errors.New("pedidosya: cancel shipping: id is empty"))
	}
	c, err := newClient(req.Tenant)
	if err != nil {
		return delivery.Shipment{}, err
	}
	reason := strings.TrimSpace(req.Reason)
	if reason == "" {
		reason = defaultCancelReason
	}
	reason = truncateRunes(reason, wire.MaxReasonText)
	var s wire.Shipping
	err = c.do(ctx, "cancel shipping", http.MethodPost, wire.CancelPath(req.ID), nil, wire.CancelRequest{ReasonText: reason}, &s)
	if err == nil {
		sh := shipmentOf(ctx, s, req.ID)
		if s.Status == "" {
			sh.Status = delivery.StatusCancelled // an answer without the shipping
		}
		if sh.Status == delivery.StatusCancelled && sh.Reason == "" {
			sh.Reason = reason
		}
		return sh, nil
	}
	st := httpapi.StatusOf(err)
	refused := st >= 400 && st < 500 && st != http.StatusUnauthorized && st != http.StatusForbidden && st != http.StatusNotFound && st != http.StatusTooManyRequests
	if !refused && provider.KindOf(err) != provider.KindRetryable {
		return delivery.Shipment{}, err
	}
	if ctx.Err() == nil {
		if sh, gerr := c.get(ctx, req.ID); gerr == nil && sh.Status == delivery.StatusCancelled {
			return sh, nil
		}
	}
	if refused {
		return delivery.Shipment{}, provider.WithCode(provider.Permanent(err), provider.CodeOf(err))
	}
	return delivery.Shipment{}, err
}

// shippingRequest builds the body of an estimate or a create. Missing or
// malformed stops and items are KindInvalid.
func shippingRequest(ref string, isTest bool, pickup, dropoff delivery.Stop, items []delivery.Item) (wire.ShippingRequest, error) {
	pu, err := waypointOf("pickup", wire.WaypointPickUp, pickup)
	if err != nil {
		return wire.ShippingRequest{}, err
	}
	do, err := waypointOf("dropoff", wire.WaypointDropOff, dropoff)
	if err != nil {
		return wire.ShippingRequest{}, err
	}
	if len(items) == 0 {
		items = []delivery.Item{fallbackItem}
	}
	out := make([]wire.Item, 0, len(items))
	var total float64
	for i, it := range items {
		if it.Quantity < 0 {
			return wire.ShippingRequest{}, provider.Invalid(fmt.Errorf("pedidosya: item %d: quantity %d is negative", i, it.Quantity))
		}
		qty := max(it.Quantity, 1)
		size, ok := itemSizes[strings.ToLower(strings.TrimSpace(it.Size))]
		if !ok {
			size = itemSizes["medium"]
		}
		desc := strings.TrimSpace(it.Name)
		if desc == "" {
			desc = fallbackItem.Name
		}
		var value float64
		if it.Price != nil {
			if it.Price.Amount < 0 {
				return wire.ShippingRequest{}, provider.Invalid(fmt.Errorf("pedidosya: item %d: price %s is negative", i, it.Price))
			}
			value = majorUnits(*it.Price)
		}
		total += value * float64(qty)
		out = append(out, wire.Item{Type: wire.ItemStandard, Value: value, Description: desc, Quantity: qty, Volume: size.volume, Weight: size.weight})
	}
	if total >= wire.MaxItemValue {
		return wire.ShippingRequest{}, provider.Invalid(fmt.Errorf("pedidosya: items declare %.2f in total; PedidosYa accepts less than %d", total, wire.MaxItemValue))
	}
	return wire.ShippingRequest{ReferenceID: ref, IsTest: isTest, Items: out, Waypoints: []wire.Waypoint{pu, do}}, nil
}

// waypointOf maps a stop: street and number → addressStreet, city, the
// coordinates when known, the contact and the notes (instructions). A stop
// without street, city, contact name or a valid phone is KindInvalid.
func waypointOf(which, typ string, s delivery.Stop) (wire.Waypoint, error) {
	street := strings.TrimSpace(strings.TrimSpace(s.Address.Street) + " " + strings.TrimSpace(s.Address.Number))
	phone := strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '(' || r == ')' || r == '.' {
			return -1
		}
		return r
	}, s.Contact.Phone)
	w := wire.Waypoint{
		Type:          typ,
		AddressStreet: street,
		City:          strings.TrimSpace(s.Address.City),
		Phone:         phone,
		Name:          strings.TrimSpace(s.Contact.Name),
		Instructions:  strings.TrimSpace(s.Notes),
	}
	switch {
	case w.AddressStreet == "":
		return w, provider.Invalid(fmt.Errorf("pedidosya: %s address has no street", which))
	case w.City == "":
		return w, provider.Invalid(fmt.Errorf("pedidosya: %s address has no city", which))
	case w.Name == "":
		return w, provider.Invalid(fmt.Errorf("pedidosya: %s has no contact name", which))
	case !phonePattern.MatchString(w.Phone):
		return w, provider.Invalid(fmt.Errorf("pedidosya: %s contact phone %q is not a phone number (optional +, 6 to 15 digits)", which, s.Contact.Phone))
	}
	if s.Location != nil {
		lat, lng := s.Location.Lat, s.Location.Lng
		w.Latitude, w.Longitude = &lat, &lng
	}
	return w, nil
}

// pickOffer returns the first EXPRESS offer with a price, else the first
// priced offer.
func pickOffer(offers []wire.DeliveryOffer) (wire.DeliveryOffer, bool) {
	var first *wire.DeliveryOffer
	for i := range offers {
		o := &offers[i]
		if o.Pricing == nil {
			continue
		}
		if o.DeliveryMode == wire.ModeExpress {
			return *o, true
		}
		if first == nil {
			first = o
		}
	}
	if first == nil {
		return wire.DeliveryOffer{}, false
	}
	return *first, true
}

// offerETA is the time from now until the offer's latest promised
// delivery, zero when the offer gives no time.
func offerETA(o wire.DeliveryOffer, now time.Time) time.Duration {
	for _, s := range []string{o.DeliveryTimeTo, o.DeliveryTimeFrom} {
		if t, ok := wire.ParseTime(s); ok && t.After(now) {
			return t.Sub(now)
		}
	}
	drive := time.Duration(o.EstimatedDrivingTime) * time.Minute
	if t, ok := wire.ParseTime(o.EstimatedPickUpTime); ok && t.Add(drive).After(now) {
		return t.Add(drive).Sub(now)
	}
	return drive
}

// shipmentOf maps a shipping; fallbackID is used when the answer carries no
// id. Unknown statuses are pending (logged).
func shipmentOf(ctx context.Context, s wire.Shipping, fallbackID string) delivery.Shipment {
	sh := delivery.Shipment{ID: s.Identifier(), TrackingURL: s.ShareLocationURL}
	if sh.ID == "" {
		sh.ID = fallbackID
	}
	st, known := statusOf(s.Status)
	if !known && s.Status != "" {
		provider.Log(ctx).Warn("pedidosya: unknown shipping status; reported as pending", "status", s.Status, "shipping_id", sh.ID)
	}
	sh.Status = st
	if st == delivery.StatusCancelled || st == delivery.StatusFailed {
		sh.Reason = reasonOf(s.CancelCode, s.CancelReason)
	}
	if r := s.Route; r != nil {
		if fee, err := moneyOf(r.Pricing); err == nil {
			sh.Fee = fee
		}
		for _, v := range []string{r.EstimatedDeliveryTime, r.DeliveryTimeTo} {
			if t, ok := wire.ParseTime(v); ok {
				sh.ETA = t
				break
			}
		}
	}
	return sh
}

// statusOf maps a PedidosYa status to the catalog:
//
//	PREORDER, CONFIRMED          pending
//	IN_PROGRESS, NEAR_PICKUP     assigned
//	PICKED_UP, NEAR_DROPOFF      picked_up
//	COMPLETED                    delivered
//	CANCELLED                    cancelled
//	REJECTED                     failed
//	anything else                pending, known = false
func statusOf(s string) (st delivery.Status, known bool) {
	switch s {
	case wire.StatusPreorder, wire.StatusConfirmed:
		return delivery.StatusPending, true
	case wire.StatusInProgress, wire.StatusNearPickup:
		return delivery.StatusAssigned, true
	case wire.StatusPickedUp, wire.StatusNearDropoff:
		return delivery.StatusPickedUp, true
	case wire.StatusCompleted:
		return delivery.StatusDelivered, true
	case wire.StatusCancelled:
		return delivery.StatusCancelled, true
	case wire.StatusRejected:
		return delivery.StatusFailed, true
	}
	return delivery.StatusPending, false
}

// reasonOf joins a cancel code and its text: "NO_RIDER_AVAILABLE: No hay
// cadete disponible en este momento", or whichever is set.
func reasonOf(code, text string) string {
	code, text = strings.TrimSpace(code), strings.TrimSpace(text)
	switch {
	case code != "" && text != "":
		return code + ": " + text
	case code != "":
		return code
	}
	return text
}

// courierOf maps a tracking answer; nil when it names nobody and has no
// position.
func courierOf(tr wire.Tracking) *delivery.Courier {
	c := &delivery.Courier{Name: strings.TrimSpace(tr.DeliveryName), Vehicle: strings.TrimSpace(tr.DeliveryTransport)}
	if tr.Latitude != nil && tr.Longitude != nil {
		c.Location = &delivery.Location{Lat: *tr.Latitude, Lng: *tr.Longitude}
	}
	if c.Name == "" && c.Vehicle == "" && c.Location == nil {
		return nil
	}
	return c
}

// moneyOf converts a price in major units to provider.Money.
func moneyOf(p *wire.Pricing) (provider.Money, error) {
	if p == nil {
		return provider.Money{}, errors.New("no pricing")
	}
	cur := strings.ToUpper(strings.TrimSpace(p.Currency))
	m := provider.Money{Amount: int64(math.Round(p.Total * math.Pow10(provider.MinorUnits(cur)))), Currency: cur}
	if err := m.Validate(); err != nil {
		return provider.Money{}, fmt.Errorf("price %v %q: %w", p.Total, p.Currency, err)
	}
	return m, nil
}

// majorUnits converts m to the major-unit number PedidosYa expects.
func majorUnits(m provider.Money) float64 {
	return float64(m.Amount) / math.Pow10(provider.MinorUnits(m.Currency))
}

// memoKey scopes an idempotency key to the tenant, the API host and the
// token (hashed), so tenants and credentials never share an entry.
func memoKey(t provider.Tenant, c *client, key string) string {
	sum := sha256.Sum256([]byte(c.base + "\x00" + c.token.Reveal()))
	return t.ID() + "\x00" + hex.EncodeToString(sum[:8]) + "\x00" + key
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
