package courier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/provider"
)

// Quote is one provider's priced offer, as the tenant sees it.
type Quote struct {
	ID         string    `json:"id"` // "dq_…"
	Provider   string    `json:"provider"`
	Fee        Money     `json:"fee"`
	ETAMinutes int       `json:"eta_minutes"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// QuoteError is why one provider gave no quote.
type QuoteError struct {
	Provider string `json:"provider"`
	Code     string `json:"code"` // "timeout", "unavailable", "invalid_request", ...
	Message  string `json:"message"`
}

// Quotes is the answer to a quote request.
type Quotes struct {
	Quotes []Quote      `json:"quotes"`
	Errors []QuoteError `json:"errors"`
}

// quoteDoc is what the store keeps of a quote: enough to book it.
type quoteDoc struct {
	ProviderQuoteID string    `json:"provider_quote_id"`
	Fee             Money     `json:"fee"`
	ETAMinutes      int       `json:"eta_minutes"`
	ExpiresAt       time.Time `json:"expires_at"`
	Request         Request   `json:"request"`
}

// Quote asks the named provider, or every delivery provider the tenant
// enabled, concurrently, each under QuoteTimeout. It returns the quotes
// that came back in time, cheapest first (then fastest), and an error per
// provider that failed. It fails as a whole only when the request is
// invalid or no provider is available.
func (s *Service) Quote(ctx context.Context, t *tenant.Tenant, req Request) (Quotes, error) {
	if err := req.Validate(); err != nil {
		return Quotes{}, err
	}
	names, err := s.providers(t, req.Provider)
	if err != nil {
		return Quotes{}, err
	}
	out := Quotes{Quotes: []Quote{}, Errors: []QuoteError{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Go(func() {
			q, err := s.quoteOne(ctx, t, name, req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				out.Errors = append(out.Errors, quoteError(name, err))
				return
			}
			out.Quotes = append(out.Quotes, q)
		})
	}
	wg.Wait()
	slices.SortFunc(out.Quotes, func(a, b Quote) int {
		if a.Fee.Amount != b.Fee.Amount {
			return compare(a.Fee.Amount, b.Fee.Amount)
		}
		if a.ETAMinutes != b.ETAMinutes {
			return compare(a.ETAMinutes, b.ETAMinutes)
		}
		return compare(a.Provider, b.Provider)
	})
	slices.SortFunc(out.Errors, func(a, b QuoteError) int { return compare(a.Provider, b.Provider) })
	return out, nil
}

func compare[T int | int64 | string](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *Service) quoteOne(ctx context.Context, t *tenant.Tenant, name string, req Request) (Quote, error) {
	dp, pt, err := s.plugin(t, name)
	if err != nil {
		return Quote{}, err
	}
	pickup, dropoff := req.stops()
	preq := delivery.QuoteRequest{Tenant: pt, Pickup: pickup, Dropoff: dropoff, Items: req.items(), ReadyAt: req.readyAt(), Reference: req.Reference}
	id := newID("dq_")
	var got delivery.Quote
	err = s.call(ctx, t, name, "delivery.quote", id, s.cfg.QuoteTimeout, quoteView(req), func(ctx context.Context) (any, error) {
		var err error
		got, err = dp.Quote(ctx, preq)
		return map[string]any{"id": got.ID, "fee": got.Fee, "eta_seconds": got.ETA.Seconds(), "expires_at": got.ExpiresAt}, err
	})
	if err != nil {
		return Quote{}, err
	}
	if got.Fee.Validate() != nil && got.Fee.Amount != 0 {
		return Quote{}, provider.Permanent(fmt.Errorf("plugin returned an invalid fee %+v", got.Fee))
	}
	now := s.now()
	expires := got.ExpiresAt.UTC().Truncate(time.Microsecond)
	if expires.IsZero() {
		expires = now.Add(10 * time.Minute)
	}
	q := Quote{ID: id, Provider: name, Fee: Money{got.Fee.Amount, got.Fee.Currency}, ETAMinutes: int((got.ETA + time.Minute - 1) / time.Minute), ExpiresAt: expires}
	doc := quoteDoc{ProviderQuoteID: got.ID, Fee: q.Fee, ETAMinutes: q.ETAMinutes, ExpiresAt: expires, Request: req}
	doc.Request.Provider = name
	err = s.cfg.Store.CreateResource(ctx, store.Resource{
		Kind: KindQuote, ID: id, TenantID: t.ID, Provider: name, Status: "open",
		Doc: mustJSON(doc), CreatedAt: now,
	})
	if err != nil {
		return Quote{}, fmt.Errorf("courier: store quote: %w", err)
	}
	return q, nil
}

// loadQuote returns the tenant's quote, or ErrNotFound / ErrQuoteExpired.
func (s *Service) loadQuote(ctx context.Context, t *tenant.Tenant, id string) (store.Resource, quoteDoc, error) {
	r, err := s.cfg.Store.GetResource(ctx, KindQuote, t.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		return r, quoteDoc{}, fmt.Errorf("%w: quote %s", ErrNotFound, id)
	}
	if err != nil {
		return r, quoteDoc{}, err
	}
	var doc quoteDoc
	if err := json.Unmarshal(r.Doc, &doc); err != nil {
		return r, quoteDoc{}, fmt.Errorf("courier: decode quote %s: %w", id, err)
	}
	if !s.now().Before(doc.ExpiresAt) {
		return r, doc, fmt.Errorf("%w: quote %s expired at %s; ask for a new quote", ErrQuoteExpired, id, doc.ExpiresAt.Format(time.RFC3339))
	}
	return r, doc, nil
}

// quoteError turns a provider's failure into what the tenant sees.
func quoteError(name string, err error) QuoteError {
	qe := QuoteError{Provider: name, Code: "provider_error", Message: err.Error()}
	switch {
	case provider.IsTimeout(err):
		qe.Code, qe.Message = "timeout", "the provider did not answer before the quote deadline"
	case errors.Is(err, ErrNoProvider):
		qe.Code = "provider_unavailable"
	default:
		switch provider.KindOf(err) {
		case provider.KindInvalid:
			qe.Code = "invalid_request"
		case provider.KindUnauthorized:
			qe.Code, qe.Message = "provider_unauthorized", "the provider refused the tenant's credentials"
		case provider.KindRetryable:
			qe.Code = "provider_unavailable"
		}
	}
	return qe
}

// quoteView is what the audit log keeps of a quote or booking request.
func quoteView(r Request) map[string]any {
	return map[string]any{"reference": r.Reference, "pickup": r.Pickup, "dropoff": r.Dropoff, "items": r.Items, "ready_at": r.ReadyAt}
}
