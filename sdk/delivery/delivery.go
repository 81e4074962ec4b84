// Package delivery defines the capability implemented by last-mile delivery
// providers (Uber Direct, Rappi, PedidosYa, ...).
package delivery

import (
	"context"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
)

// Provider quotes, books, tracks and cancels deliveries. Every method must be
// safe for concurrent use and must honour ctx's deadline.
type Provider interface {
	provider.Provider

	// Quote prices a delivery without committing to it.
	Quote(ctx context.Context, req QuoteRequest) (Quote, error)
	// CreateShipment books a courier. The same IdempotencyKey must yield the
	// same shipment.
	CreateShipment(ctx context.Context, req CreateRequest) (Shipment, error)
	// GetShipment returns the current status and courier position if known.
	GetShipment(ctx context.Context, req GetRequest) (Shipment, error)
	// CancelShipment cancels a shipment that has not been picked up. It
	// returns an error of KindPermanent when the provider refuses.
	CancelShipment(ctx context.Context, req CancelRequest) (Shipment, error)
}

// Status is the normalised state of a delivery.
type Status string

// The delivery statuses of the gateway's catalog.
const (
	StatusPending   Status = "pending"
	StatusAssigned  Status = "assigned"
	StatusPickedUp  Status = "picked_up"
	StatusDelivered Status = "delivered"
	StatusCancelled Status = "cancelled"
	StatusFailed    Status = "failed"
)

// Valid reports whether s is one of the catalog's statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusPending, StatusAssigned, StatusPickedUp, StatusDelivered, StatusCancelled, StatusFailed:
		return true
	}
	return false
}

// Address is a postal address.
type Address struct {
	Street     string
	Number     string
	City       string
	Region     string
	Country    string // ISO 3166-1 alpha-2
	PostalCode string
}

// Location is a WGS84 coordinate.
type Location struct {
	Lat, Lng float64
}

// Contact is a person at a stop.
type Contact struct {
	Name  string
	Phone string // E.164
}

// Stop is a pickup or drop-off.
type Stop struct {
	Address  Address
	Location *Location
	Contact  Contact
	Notes    string
}

// Item is one thing to carry.
type Item struct {
	Name     string
	Quantity int
	Size     string // "small", "medium", "large"; empty means unknown
	Price    *provider.Money
}

// QuoteRequest prices a delivery.
type QuoteRequest struct {
	Tenant    provider.Tenant
	Pickup    Stop
	Dropoff   Stop
	Items     []Item
	ReadyAt   time.Time // zero means now
	Reference string
}

// Quote is a priced offer.
type Quote struct {
	ID        string // the provider's quote id, passed back in CreateRequest.QuoteID
	Fee       provider.Money
	ETA       time.Duration
	ExpiresAt time.Time
}

// CreateRequest books a delivery.
type CreateRequest struct {
	Tenant         provider.Tenant
	IdempotencyKey string
	DeliveryID     string // the gateway's id ("del_…")
	QuoteID        string // the provider's quote id, when booking a quote
	Pickup         Stop
	Dropoff        Stop
	Items          []Item
	ReadyAt        time.Time
	Reference      string
}

// GetRequest reads a delivery.
type GetRequest struct {
	Tenant provider.Tenant
	ID     string // the provider's delivery id
}

// CancelRequest cancels a delivery.
type CancelRequest struct {
	Tenant         provider.Tenant
	IdempotencyKey string
	ID             string
	Reason         string
}

// Courier is who carries the delivery.
type Courier struct {
	Name     string
	Phone    string
	Vehicle  string
	Location *Location
}

// ProofOfDelivery is what the provider gives when a delivery completes.
type ProofOfDelivery struct {
	PhotoURL     string
	SignatureURL string
	PIN          string
}

// Shipment is the provider's view of a delivery.
type Shipment struct {
	ID          string
	Status      Status
	Fee         provider.Money
	TrackingURL string
	Courier     *Courier
	ETA         time.Time
	Proof       *ProofOfDelivery
	Reason      string // why it was cancelled or failed
}
