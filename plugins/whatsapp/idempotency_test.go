package main

import (
	"errors"
	"testing"

	"github.com/pipecore/pipecore/plugins/whatsapp/metafake"
	"github.com/pipecore/pipecore/plugins/whatsapp/twiliofake"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/provider/idem"
)

// fakeAPI is what the idempotency tests need of either fake.
type fakeAPI struct {
	url      string
	requests func() int
	failNext func(status, n int)
	tenant   func(id string) provider.Tenant
}

func fakes(t *testing.T) map[string]fakeAPI {
	m := metafake.Start()
	t.Cleanup(m.Close)
	tw := twiliofake.Start()
	t.Cleanup(tw.Close)
	return map[string]fakeAPI{
		transportCloud: {
			url: m.URL(), requests: func() int { return len(m.Requests()) }, failNext: m.FailNext,
			tenant: func(id string) provider.Tenant {
				tn := cloudTenant(m.URL(), nil)
				return provider.NewTenant(id, tn.Settings(), tn.RevealSecrets())
			},
		},
		transportTwilio: {
			url: tw.URL(), requests: func() int { return len(tw.Requests()) }, failNext: tw.FailNext,
			tenant: func(id string) provider.Tenant {
				tn := twilioTenant(tw.URL(), nil)
				return provider.NewTenant(id, tn.Settings(), tn.RevealSecrets())
			},
		},
	}
}

func TestSendIdempotency(t *testing.T) {
	for tr, f := range fakes(t) {
		t.Run(tr, func(t *testing.T) {
			p := newProvider()
			req := func(tenant, key, text string) messaging.SendRequest {
				return messaging.SendRequest{Tenant: f.tenant(tenant), IdempotencyKey: key, Channel: messaging.ChannelWhatsApp, To: "+56987654321", Text: text}
			}
			send := func(r messaging.SendRequest) (messaging.Receipt, error) { return p.Send(testCtx(t), r) }

			a, err := send(req("acme", "k1", "hola"))
			if err != nil {
				t.Fatal(err)
			}
			b, err := send(req("acme", "k1", "hola"))
			if err != nil || b != a {
				t.Fatalf("retry = %+v, %v; want the first receipt %+v", b, err, a)
			}
			if n := f.requests(); n != 1 {
				t.Errorf("%d API requests after a retry, want 1", n)
			}
			if _, err := send(req("acme", "k1", "chao")); !errors.Is(err, idem.ErrKeyReused) || provider.KindOf(err) != provider.KindInvalid {
				t.Errorf("same key, other text: err = %v (kind %s), want invalid", err, provider.KindOf(err))
			}
			if c, err := send(req("other", "k1", "hola")); err != nil || c.ID == a.ID {
				t.Errorf("another tenant's key: %+v, %v; want a new message", c, err)
			}
			for range 2 {
				if _, err := send(req("acme", "", "hola")); err != nil {
					t.Fatal(err)
				}
			}
			if n := f.requests(); n != 4 {
				t.Errorf("%d API requests, want 4 (an empty key is never remembered)", n)
			}

			f.failNext(503, 1)
			if _, err := send(req("acme", "k2", "hola")); provider.KindOf(err) != provider.KindRetryable {
				t.Fatalf("503: err = %v (kind %s), want retryable", err, provider.KindOf(err))
			}
			if _, err := send(req("acme", "k2", "hola")); err != nil {
				t.Errorf("retry after a failure: %v, want a new attempt that succeeds", err)
			}
			if n := f.requests(); n != 6 {
				t.Errorf("%d API requests, want 6 (failures are not remembered)", n)
			}
		})
	}
}
