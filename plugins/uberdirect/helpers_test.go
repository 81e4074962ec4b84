package main

import (
	"context"
	"testing"
	"time"

	"github.com/pipecore/pipecore/plugins/uberdirect/uberfake"
	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/providertest"
)

// startFake starts an Uber Direct fake that stops with the test.
func startFake(t testing.TB) *uberfake.Server {
	t.Helper()
	f := uberfake.Start()
	t.Cleanup(f.Close)
	return f
}

// testTenant is a tenant with the fake's credentials and base_url.
func testTenant(baseURL string) provider.Tenant {
	return tenantWith(baseURL, uberfake.ClientSecret)
}

func tenantWith(baseURL, secret string) provider.Tenant {
	return providertest.Tenant("acme",
		map[string]string{provider.BaseURLField: baseURL, fieldCustomerID: uberfake.CustomerID},
		map[string]string{fieldClientID: uberfake.ClientID, fieldClientSecret: secret, fieldWebhookSigningKey: "whsk_test_signing_key"})
}

var (
	pickup   = providertest.DefaultPickup
	dropoff  = providertest.DefaultDropoff
	testItem = []delivery.Item{{Name: "Pedido de prueba", Quantity: 2, Size: "small", Price: &provider.Money{Amount: 6490, Currency: "CLP"}}}
)

func ctxT(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func quoteReq(f *uberfake.Server) delivery.QuoteRequest {
	return delivery.QuoteRequest{Tenant: testTenant(f.URL()), Pickup: pickup, Dropoff: dropoff, Items: testItem, Reference: "order-1"}
}

func createReq(f *uberfake.Server, key, quoteID string) delivery.CreateRequest {
	return delivery.CreateRequest{
		Tenant: testTenant(f.URL()), IdempotencyKey: key, DeliveryID: "del_gw_" + key, QuoteID: quoteID,
		Pickup: pickup, Dropoff: dropoff, Items: testItem, Reference: "order-" + key,
	}
}

// mustCreate quotes and books a delivery.
func mustCreate(t testing.TB, p *uberDirect, f *uberfake.Server, key string) delivery.Shipment {
	t.Helper()
	q, err := p.Quote(ctxT(t), quoteReq(f))
	if err != nil {
		t.Fatalf("Quote: %v", err)
	}
	sh, err := p.CreateShipment(ctxT(t), createReq(f, key, q.ID))
	if err != nil {
		t.Fatalf("CreateShipment: %v", err)
	}
	return sh
}
