package messenger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pipecore/pipecore/core/internal/plugincall"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/provider"
)

// Run sends due messages until ctx ends: on Wake, and every scan interval
// for retries that came due.
func (s *Service) Run(ctx context.Context, scan time.Duration) {
	sem := make(chan struct{}, s.cfg.Workers)
	tick := time.NewTicker(scan)
	defer tick.Stop()
	for {
		due, err := s.cfg.Store.DueResources(ctx, KindMessage, s.now(), 4*s.cfg.Workers)
		if err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("message scan", "error", err)
		}
		for _, r := range due {
			if _, busy := s.busy.LoadOrStore(r.ID, struct{}{}); busy {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				s.busy.Delete(r.ID)
				return
			}
			go func() {
				defer func() { <-sem; s.busy.Delete(r.ID) }()
				s.attempt(ctx, r)
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-tick.C:
		}
	}
}

// attempt sends one queued message and records the outcome.
func (s *Service) attempt(ctx context.Context, r store.Resource) {
	if r.Status != string(messaging.StatusQueued) {
		s.unschedule(ctx, r)
		return
	}
	t, ok := s.cfg.Tenants.Get(r.TenantID)
	d := decodeDoc(&r)
	if !ok || !t.Enabled(r.Provider) {
		s.fail(ctx, r, &ErrorInfo{Code: "provider_not_enabled", Message: "the provider is no longer enabled for this tenant"})
		return
	}
	pt, _ := t.ProviderTenant(r.Provider)
	mp, err := s.cfg.Plugins.Messaging(r.Provider)
	var got messaging.Receipt
	if err == nil {
		req := messaging.SendRequest{
			Tenant: pt, IdempotencyKey: "pipecore:" + r.TenantID + ":" + r.ID, MessageID: r.ID,
			Channel: messaging.Channel(d.Channel), To: d.To, Template: d.WhatsApp, Subject: d.Subject, Text: d.Text, HTML: d.HTML,
		}
		av := map[string]any{"message_id": r.ID, "channel": d.Channel, "to": d.To, "template": d.WhatsApp, "subject": d.Subject,
			"text": d.Text, "idempotency_key": req.IdempotencyKey, "rule": d.Rule}
		err = s.runner.Run(provider.WithRequestID(ctx, d.CorrelationID), plugincall.Call{
			TenantID: r.TenantID, Provider: r.Provider, Action: "messaging.send", Resource: r.ID,
			Request: av, Secrets: t.SecretValues(r.Provider), Timeout: s.cfg.CallTimeout,
		}, func(ctx context.Context) (any, error) {
			var err error
			got, err = mp.Send(ctx, req)
			return map[string]any{"id": got.ID, "status": got.Status}, err
		})
	}
	switch {
	case err == nil:
		s.sent(ctx, r, got)
	case retryable(err):
		s.retry(ctx, r, err)
	default:
		s.fail(ctx, r, &ErrorInfo{Code: errorCode(err), Message: providerMessage(err)})
	}
}

func retryable(err error) bool {
	switch provider.KindOf(err) {
	case provider.KindRetryable, provider.KindRateLimited:
		return true
	}
	return false
}

func errorCode(err error) string {
	if c := provider.CodeOf(err); c != "" {
		return c
	}
	return plugincall.ErrorKind(err)
}

// providerMessage is the provider's own words in err.
func providerMessage(err error) string {
	var pe *provider.Error
	if errors.As(err, &pe) && pe.Err != nil {
		return pe.Err.Error()
	}
	return err.Error()
}

// sent records the provider's acceptance: status sent, its message id,
// and message.sent (once).
func (s *Service) sent(ctx context.Context, r store.Resource, got messaging.Receipt) {
	st := string(got.Status)
	if rank(st) < rank(string(messaging.StatusSent)) || st == string(messaging.StatusFailed) {
		st = string(messaging.StatusSent)
	}
	d := decodeDoc(&r)
	d.Attempts++
	probe := r
	probe.ProviderID, probe.Status = got.ID, st
	err := s.record(ctx, probe, "message."+st, eventData(&probe, &d, st), func(cur *store.Resource) bool {
		if cur.Status != string(messaging.StatusQueued) {
			return false
		}
		cd := decodeDoc(cur)
		cd.Attempts++
		cd.LastError = ""
		cur.Status, cur.ProviderID, cur.CheckAt, cur.Doc = st, got.ID, time.Time{}, mustJSON(cd)
		return true
	})
	if err != nil {
		s.cfg.Logger.Error("message sent but not recorded; it will be sent again with the same idempotency key", "message", r.ID, "error", err)
	}
}

// retry schedules the next attempt, or fails the message after the last.
func (s *Service) retry(ctx context.Context, r store.Resource, cause error) {
	d := decodeDoc(&r)
	if d.Attempts >= len(s.cfg.Schedule) {
		s.fail(ctx, r, &ErrorInfo{Code: errorCode(cause), Message: fmt.Sprintf("gave up after %d attempts: %s", d.Attempts+1, providerMessage(cause))})
		return
	}
	wait := s.cfg.Schedule[d.Attempts]
	if ra := provider.RetryAfter(cause); ra > wait {
		wait = ra
	}
	s.cfg.Logger.Info("message send failed; will retry", "tenant", r.TenantID, "message", r.ID, "provider", r.Provider, "in", wait, "error", cause)
	_, err := s.cfg.Store.UpdateResource(ctx, KindMessage, r.TenantID, r.ID, func(cur *store.Resource) error {
		if cur.Status != string(messaging.StatusQueued) {
			return nil
		}
		cd := decodeDoc(cur)
		cd.Attempts++
		cd.LastError = providerMessage(cause)
		cur.Doc, cur.CheckAt = mustJSON(cd), s.now().Add(wait)
		return nil
	})
	if err != nil && ctx.Err() == nil {
		s.cfg.Logger.Warn("message retry not scheduled; the next scan retries it", "message", r.ID, "error", err)
	}
}

// fail marks a queued message failed and announces message.failed.
func (s *Service) fail(ctx context.Context, r store.Resource, why *ErrorInfo) {
	d := decodeDoc(&r)
	d.Error = why
	probe := r
	probe.Status = string(messaging.StatusFailed)
	err := s.record(ctx, probe, "message.failed", eventData(&probe, &d, probe.Status), func(cur *store.Resource) bool {
		if cur.Status != string(messaging.StatusQueued) {
			return false
		}
		cd := decodeDoc(cur)
		cd.Attempts++
		cd.Error = why
		cur.Status, cur.CheckAt, cur.Doc = string(messaging.StatusFailed), time.Time{}, mustJSON(cd)
		return true
	})
	if err != nil {
		s.cfg.Logger.Error("message failure not recorded", "message", r.ID, "error", err)
	}
}

func (s *Service) unschedule(ctx context.Context, r store.Resource) {
	_, _ = s.cfg.Store.UpdateResource(ctx, KindMessage, r.TenantID, r.ID, func(cur *store.Resource) error {
		cur.CheckAt = time.Time{}
		return nil
	})
}
