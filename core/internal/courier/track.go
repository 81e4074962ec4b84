package courier

import (
	"context"
	"errors"
	"time"

	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/sdk/delivery"
)

// poll reads the provider's view of delivery r and records it.
func (s *Service) poll(ctx context.Context, t *tenant.Tenant, r store.Resource) error {
	dp, pt, err := s.plugin(t, r.Provider)
	if err != nil {
		return err
	}
	req := delivery.GetRequest{Tenant: pt, ID: r.ProviderID}
	var got delivery.Shipment
	err = s.call(ctx, t, r.Provider, "delivery.get", r.ID, 0, map[string]any{"id": req.ID}, func(ctx context.Context) (any, error) {
		var err error
		got, err = dp.GetShipment(ctx, req)
		return shipmentView(got), err
	})
	if err != nil {
		return err
	}
	return s.observe(ctx, t.ID, r.ID, observation{status: string(got.Status), shipment: &got, at: s.now()})
}

// Track polls, until ctx ends, every unfinished delivery that has gone
// PollInterval without news (a provider without webhooks, or a webhook
// that is late), checking every interval. A failed poll is retried with
// backoff, doubling from interval up to PollInterval.
func (s *Service) Track(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		s.TrackOnce(ctx, interval)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// TrackOnce polls the deliveries due now; retry is the first backoff step.
func (s *Service) TrackOnce(ctx context.Context, retry time.Duration) {
	due, err := s.cfg.Store.DueResources(ctx, KindDelivery, s.now(), 64)
	if err != nil {
		if ctx.Err() == nil {
			s.cfg.Logger.Warn("delivery tracking scan", "error", err)
		}
		return
	}
	for _, r := range due {
		if ctx.Err() != nil {
			return
		}
		t, ok := s.cfg.Tenants.Get(r.TenantID)
		if !ok || !t.Enabled(r.Provider) {
			s.reschedule(ctx, r, s.cfg.PollInterval, false)
			continue
		}
		err := s.poll(ctx, t, r)
		if err == nil {
			// News moved CheckAt already; no news waits a full interval.
			s.reschedule(ctx, r, s.cfg.PollInterval, true)
			continue
		}
		if errors.Is(err, ErrNotFound) {
			continue
		}
		d := decodeDoc(&r)
		wait := retry
		for i := 0; i < d.Polls && wait < s.cfg.PollInterval; i++ {
			wait *= 2
		}
		s.cfg.Logger.Info("delivery status poll failed; will retry", "tenant", r.TenantID, "delivery", r.ID, "provider", r.Provider, "in", min(wait, s.cfg.PollInterval), "error", err)
		s.reschedule(ctx, r, min(wait, s.cfg.PollInterval), false)
	}
}

// reschedule moves the next check of r (unless something else already
// moved it since r was read) and counts consecutive failed polls.
func (s *Service) reschedule(ctx context.Context, r store.Resource, after time.Duration, ok bool) {
	_, err := s.cfg.Store.UpdateResource(ctx, KindDelivery, r.TenantID, r.ID, func(cur *store.Resource) error {
		if Terminal(cur.Status) {
			cur.CheckAt = time.Time{}
			return nil
		}
		d := decodeDoc(cur)
		if ok {
			d.Polls = 0
		} else {
			d.Polls++
		}
		cur.Doc = mustJSON(d)
		if cur.CheckAt.Equal(r.CheckAt) {
			cur.CheckAt = s.now().Add(after)
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		s.cfg.Logger.Warn("delivery tracking reschedule", "delivery", r.ID, "error", err)
	}
}
