package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"

	"github.com/pipecore/pipecore/plugins/pedidosya/internal/wire"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hookHeaders() map[string][]string {
	return map[string][]string{"Authorization": {hookKey}, "Content-Type": {"application/json"}}
}

// TestParseWebhookRecorded parses the recorded callbacks. Their shipping
// ids are unknown to the fake, so the enrichment read answers 404 and the
// events are built from the callback alone.
func TestParseWebhookRecorded(t *testing.T) {
	f := startFake(t)
	tn := tenantFor(f.URL(), nil)
	tests := map[string]struct {
		file     string
		typ      string // "" = no event
		id       string
		occurred string
		data     map[string]any
		kind     provider.Kind
	}{
		"confirmed":    {file: "callback_confirmed.json"},
		"near pickup":  {file: "callback_near_pickup.json"},
		"near dropoff": {file: "callback_near_dropoff.json"},
		"in progress": {
			file: "callback_in_progress.json", typ: "delivery.assigned", id: "8734215:IN_PROGRESS", occurred: "2026-11-27T14:06:41Z",
			data: map[string]any{"status": "assigned", "provider_delivery_id": "8734215", "eta": "2026-11-27T14:45:00Z"},
		},
		"picked up": {
			file: "callback_picked_up.json", typ: "delivery.picked_up", id: "8734215:PICKED_UP", occurred: "2026-11-27T14:17:30Z",
			data: map[string]any{"status": "picked_up", "provider_delivery_id": "8734215", "eta": "2026-11-27T14:44:00Z"},
		},
		"completed": {
			file: "callback_completed.json", typ: "delivery.completed", id: "8734215:COMPLETED", occurred: "2026-11-27T14:43:58Z",
			data: map[string]any{"status": "delivered", "provider_delivery_id": "8734215"},
		},
		"cancelled": {
			file: "callback_cancelled.json", typ: "delivery.cancelled", id: "8734290:CANCELLED", occurred: "2026-11-27T15:21:04Z",
			data: map[string]any{"status": "cancelled", "provider_delivery_id": "8734290", "reason": "NO_RIDER_AVAILABLE: No hay cadete disponible en este momento"},
		},
		"other topic": {file: "callback_other_topic.json"},
		"no status":   {file: "callback_no_status.json", kind: provider.KindInvalid},
		"not json":    {file: "callback_not_json.txt", kind: provider.KindInvalid},
	}
	p := newProvider()
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			evs, err := p.ParseWebhook(ctxT(t), provider.WebhookRequest{Tenant: tn, Headers: hookHeaders(), Body: readTestdata(t, tc.file)})
			if tc.kind != 0 {
				if provider.KindOf(err) != tc.kind {
					t.Fatalf("err = %v (kind %s), want %s", err, provider.KindOf(err), tc.kind)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseWebhook: %v", err)
			}
			if tc.typ == "" {
				if len(evs) != 0 {
					t.Fatalf("events = %+v, want none", evs)
				}
				return
			}
			if len(evs) != 1 {
				t.Fatalf("%d events, want 1", len(evs))
			}
			ev := evs[0]
			if ev.Type != tc.typ || ev.ID != tc.id || ev.Subject != tc.data["provider_delivery_id"] || ev.OccurredAt.Format(time.RFC3339) != tc.occurred {
				t.Errorf("event = %+v", ev)
			}
			var data map[string]any
			if err := json.Unmarshal(ev.Data, &data); err != nil {
				t.Fatal(err)
			}
			if len(data) != len(tc.data) {
				t.Errorf("data = %v, want %v", data, tc.data)
			}
			for k, v := range tc.data {
				if data[k] != v {
					t.Errorf("data[%s] = %v, want %v", k, data[k], v)
				}
			}
		})
	}
	for name, body := range map[string]string{
		"no topic": `{"id":"1","data":{"status":"COMPLETED"}}`,
		"no id":    `{"topic":"SHIPPING_STATUS","data":{"status":"COMPLETED"}}`,
	} {
		if _, err := p.ParseWebhook(ctxT(t), provider.WebhookRequest{Tenant: tn, Body: []byte(body)}); provider.KindOf(err) != provider.KindInvalid {
			t.Errorf("%s: err = %v, want invalid", name, err)
		}
	}
	if evs, err := p.ParseWebhook(ctxT(t), provider.WebhookRequest{Tenant: tn, Body: []byte(`{"topic":"SHIPPING_STATUS","id":"1","data":{"status":"BEAMED_UP"}}`)}); err != nil || len(evs) != 0 {
		t.Errorf("unknown status: %v, %v; want no events", evs, err)
	}
}

// TestParseWebhookFromFake runs the whole path: the fake POSTs its
// callbacks to a receiver, and each is parsed and enriched from the fake.
func TestParseWebhookFromFake(t *testing.T) {
	f := startFake(t)
	var mu sync.Mutex
	var bodies [][]byte
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != hookKey {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, b)
		mu.Unlock()
	}))
	defer recv.Close()
	f.SetWebhook(recv.URL, hookKey)

	tn := tenantFor(f.URL(), map[string]string{fieldIsTest: "false"})
	p := newProvider()
	sh, err := p.CreateShipment(ctxT(t), createReq(tn, "hook"))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := f.Advance(sh.ID); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"delivery.assigned", "delivery.picked_up", "delivery.completed"}
	if len(bodies) != len(want) {
		t.Fatalf("%d callbacks, want %d", len(bodies), len(want))
	}
	for i, b := range bodies {
		evs, err := p.ParseWebhook(ctxT(t), provider.WebhookRequest{Tenant: tn, Headers: hookHeaders(), Body: b})
		if err != nil || len(evs) != 1 || evs[0].Type != want[i] || evs[0].Subject != sh.ID {
			t.Fatalf("callback %d: %+v, %v", i, evs, err)
		}
		var data eventData
		if err := json.Unmarshal(evs[0].Data, &data); err != nil {
			t.Fatal(err)
		}
		if data.Fee == nil || *data.Fee != (moneyData{Amount: 2990, Currency: "CLP"}) || data.TrackingURL != sh.TrackingURL || data.TrackingURL == "" {
			t.Errorf("callback %d: data %+v", i, data)
		}
		// The read happens after the fake moved on to COMPLETED, so only
		// a shipping still on its way would show the rider.
		if i < 2 && data.Courier != nil {
			t.Errorf("callback %d: courier %+v from a completed shipping", i, data.Courier)
		}
	}
}

func TestParseWebhookEnrichesCourier(t *testing.T) {
	f := startFake(t)
	tn := tenantFor(f.URL(), nil)
	p := newProvider()
	sh, err := p.CreateShipment(ctxT(t), createReq(tn, "rider"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Advance(sh.ID); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(wire.Callback{Topic: wire.TopicShippingStatus, ID: sh.ID, ReferenceID: "del_rider", Generated: wire.FormatTime(time.Now()), Data: wire.CallbackData{Status: wire.StatusInProgress}})
	evs, err := p.ParseWebhook(ctxT(t), provider.WebhookRequest{Tenant: tn, Body: body})
	if err != nil || len(evs) != 1 {
		t.Fatalf("%+v, %v", evs, err)
	}
	var data eventData
	if err := json.Unmarshal(evs[0].Data, &data); err != nil {
		t.Fatal(err)
	}
	c := data.Courier
	if c == nil || c.Name != "Rider de Prueba" || c.Vehicle != "Motorbike" || c.Location == nil || c.Location.Lat != -33.4263 || data.ETA == "" {
		t.Fatalf("data = %+v courier %+v", data, c)
	}
}

func TestParseWebhookEnrichmentFailures(t *testing.T) {
	f := startFake(t)
	body := readTestdata(t, "callback_completed.json")
	p := newProvider()

	// PedidosYa unavailable: retry the webhook later.
	f.FailNext(http.StatusServiceUnavailable, 1)
	if _, err := p.ParseWebhook(ctxT(t), provider.WebhookRequest{Tenant: tenantFor(f.URL(), nil), Body: body}); provider.KindOf(err) != provider.KindRetryable {
		t.Fatalf("503: err = %v (kind %s), want retryable", err, provider.KindOf(err))
	}
	// A rejected or missing token: the authenticated callback still counts.
	for name, tn := range map[string]provider.Tenant{
		"wrong token": tenantFor(f.URL(), map[string]string{fieldAPIToken: "wrong-token-123456"}),
		"no token":    tenantFor(f.URL(), map[string]string{fieldAPIToken: ""}),
	} {
		evs, err := p.ParseWebhook(ctxT(t), provider.WebhookRequest{Tenant: tn, Body: body})
		if err != nil || len(evs) != 1 || evs[0].Type != "delivery.completed" {
			t.Errorf("%s: %+v, %v", name, evs, err)
		}
	}
}
