package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/provider"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/webhooks")

// webhookCases are the recorded payloads in testdata/webhooks and the
// event types they must yield; the full events are in <name>.golden.json.
var webhookCases = []struct {
	name string
	want []string
}{
	{"delivery_status_pending", nil},
	{"delivery_status_pickup", []string{eventAssigned}},
	{"delivery_status_pickup_imminent", []string{eventAssigned}},
	{"delivery_status_pickup_complete", []string{eventPickedUp}},
	{"delivery_status_dropoff", []string{eventPickedUp}},
	{"delivery_status_delivered", []string{eventCompleted}},
	{"delivery_status_canceled", []string{eventCancelled}},
	{"delivery_status_returned", []string{eventCancelled}},
	{"delivery_status_undeliverable", []string{eventFailed}},
	{"courier_update", []string{eventCourierLocation}},
	{"refund_request", nil},
}

func readPayload(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "webhooks", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goldenEvent is an event as stored in a golden file.
type goldenEvent struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Subject    string          `json:"subject"`
	OccurredAt time.Time       `json:"occurred_at"`
	Data       json.RawMessage `json:"data"`
}

func TestParseWebhookGolden(t *testing.T) {
	p := newProvider()
	for _, tc := range webhookCases {
		t.Run(tc.name, func(t *testing.T) {
			body := readPayload(t, tc.name)
			evs, err := p.ParseWebhook(context.Background(), provider.WebhookRequest{
				Tenant:  testTenant("http://127.0.0.1:1"), // never called: the payload is mapped as received
				Headers: map[string][]string{"X-Uber-Signature": {sign("whsk", body)}},
				Body:    body,
			})
			if err != nil {
				t.Fatalf("ParseWebhook: %v", err)
			}
			var types []string
			got := make([]goldenEvent, 0, len(evs))
			for _, e := range evs {
				types = append(types, e.Type)
				got = append(got, goldenEvent{ID: e.ID, Type: e.Type, Subject: e.Subject, OccurredAt: e.OccurredAt, Data: e.Data})
			}
			if strings.Join(types, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("event types = %v, want %v", types, tc.want)
			}
			out, err := json.MarshalIndent(got, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, '\n')
			path := filepath.Join("testdata", "webhooks", tc.name+".golden.json")
			if *update {
				if err := os.WriteFile(path, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("events differ from %s:\n got: %s\nwant: %s", path, out, want)
			}
		})
	}
}

// TestParseWebhookFields pins the catalog fields of the main cases.
func TestParseWebhookFields(t *testing.T) {
	p := newProvider()
	parse := func(t *testing.T, name string) (provider.Event, map[string]any) {
		t.Helper()
		evs, err := p.ParseWebhook(context.Background(), provider.WebhookRequest{Tenant: testTenant("http://127.0.0.1:1"), Body: readPayload(t, name)})
		if err != nil || len(evs) != 1 {
			t.Fatalf("ParseWebhook(%s) = %v, %v; want one event", name, evs, err)
		}
		var data map[string]any
		if err := json.Unmarshal(evs[0].Data, &data); err != nil {
			t.Fatal(err)
		}
		return evs[0], data
	}
	const delID = "del_Wq3kT9vXQ1uYb2dJpA7n_g"

	t.Run("pickup", func(t *testing.T) {
		e, d := parse(t, "delivery_status_pickup")
		if e.ID != "evt_6yR2pZk4T9mJb3Xq1LwA0e" || e.Subject != delID || !e.OccurredAt.Equal(time.Date(2026, 11, 27, 14, 2, 42, 318e6, time.UTC)) {
			t.Errorf("envelope = %+v", e)
		}
		c := d["courier"].(map[string]any)
		if d["status"] != "assigned" || d["provider_delivery_id"] != delID || c["name"] != "Matías R." || c["phone"] != "+56955501234" ||
			c["vehicle"] != "motorcycle" || c["location"].(map[string]any)["lat"] != -33.4251 {
			t.Errorf("data = %v", d)
		}
		if fee := d["fee"].(map[string]any); fee["amount"] != 2500.0 || fee["currency"] != "CLP" {
			t.Errorf("fee = %v", fee)
		}
		if !strings.HasPrefix(d["tracking_url"].(string), "https://www.ubereats.com/orders/") || d["eta"] != "2026-11-27T14:35:02Z" {
			t.Errorf("tracking_url/eta = %v / %v", d["tracking_url"], d["eta"])
		}
		if _, ok := d["proof_of_delivery"]; ok {
			t.Errorf("proof on an assignment: %v", d)
		}
	})
	t.Run("delivered with proof", func(t *testing.T) {
		_, d := parse(t, "delivery_status_delivered")
		pod := d["proof_of_delivery"].(map[string]any)
		if d["status"] != "delivered" || pod["pin"] != "4821" ||
			!strings.HasSuffix(pod["photo_url"].(string), "82a0d88e-100d-40d6-a0d0-ea9c4a2e55bb") ||
			!strings.HasSuffix(pod["signature_url"].(string), "5e0a9b3c-signature") {
			t.Errorf("data = %v", d)
		}
	})
	t.Run("canceled with reason", func(t *testing.T) {
		_, d := parse(t, "delivery_status_canceled")
		if d["status"] != "cancelled" || d["reason"] != "MERCHANT_CANCEL: customer changed the order" {
			t.Errorf("data = %v", d)
		}
		if _, ok := d["courier"]; ok {
			t.Errorf("a null courier became %v", d["courier"])
		}
	})
	t.Run("returned", func(t *testing.T) {
		_, d := parse(t, "delivery_status_returned")
		if d["status"] != "cancelled" || d["reason"] != "returned" {
			t.Errorf("data = %v", d)
		}
	})
	t.Run("undeliverable", func(t *testing.T) {
		e, d := parse(t, "delivery_status_undeliverable")
		if e.Type != eventFailed || d["status"] != "failed" || d["reason"] != "NO_SECURE_LOCATION_TO_DROPOFF" {
			t.Errorf("event %s data = %v", e.Type, d)
		}
	})
	t.Run("courier update", func(t *testing.T) {
		e, _ := parse(t, "courier_update")
		if e.ID != "evt_8Yt3rE6wQ1aS4dF7gH2jKl" || e.Subject != delID {
			t.Errorf("envelope = %+v", e)
		}
		if string(e.Data) != `{"courier":{"location":{"lat":-33.4189,"lng":-70.6012}}}` {
			t.Errorf("data = %s", e.Data)
		}
	})
}

func TestParseWebhookRejects(t *testing.T) {
	p := newProvider()
	tests := map[string]string{
		"not json":                   `{"kind":`,
		"array":                      `[1,2]`,
		"no kind":                    `{"id":"evt_1","status":"pickup","delivery_id":"del_1"}`,
		"status without delivery id": `{"id":"evt_1","kind":"event.delivery_status","status":"pickup"}`,
		"status without status":      `{"id":"evt_1","kind":"event.delivery_status","delivery_id":"del_1"}`,
		"courier without location":   `{"id":"evt_1","kind":"event.courier_update","delivery_id":"del_1","data":{"id":"del_1","courier":{"name":"A"}}}`,
		"courier without delivery":   `{"id":"evt_1","kind":"event.courier_update","location":{"lat":1,"lng":2}}`,
		"wrong field type":           `{"id":"evt_1","kind":"event.delivery_status","status":7,"delivery_id":"del_1"}`,
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			evs, err := p.ParseWebhook(context.Background(), provider.WebhookRequest{Tenant: testTenant(""), Body: []byte(body)})
			if provider.KindOf(err) != provider.KindInvalid || !errors.Is(err, errMalformedWebhook) || evs != nil {
				t.Fatalf("ParseWebhook(%s) = %v, %v (kind %s); want KindInvalid", body, evs, err, provider.KindOf(err))
			}
		})
	}
}

func TestParseWebhookEdgeCases(t *testing.T) {
	p := newProvider()
	parse := func(t *testing.T, body string) []provider.Event {
		t.Helper()
		evs, err := p.ParseWebhook(context.Background(), provider.WebhookRequest{Tenant: testTenant(""), Body: []byte(body)})
		if err != nil {
			t.Fatalf("ParseWebhook(%s): %v", body, err)
		}
		return evs
	}
	t.Run("pickup without courier yields nothing", func(t *testing.T) {
		if evs := parse(t, `{"id":"evt_1","kind":"event.delivery_status","status":"pickup","delivery_id":"del_1","data":{"id":"del_1","status":"pickup","courier":null}}`); len(evs) != 0 {
			t.Fatalf("events = %+v", evs)
		}
	})
	t.Run("unknown status yields nothing", func(t *testing.T) {
		if evs := parse(t, `{"id":"evt_1","kind":"event.delivery_status","status":"teleported","delivery_id":"del_1"}`); len(evs) != 0 {
			t.Fatalf("events = %+v", evs)
		}
	})
	t.Run("envelope status wins over data", func(t *testing.T) {
		evs := parse(t, `{"id":"evt_1","kind":"event.delivery_status","status":"delivered","delivery_id":"del_1","data":{"id":"del_1","status":"dropoff"}}`)
		if len(evs) != 1 || evs[0].Type != eventCompleted {
			t.Fatalf("events = %+v", evs)
		}
	})
	t.Run("missing id is derived deterministically", func(t *testing.T) {
		body := `{"kind":"event.delivery_status","status":"pickup_complete","delivery_id":"del_1","created":"2026-11-27T14:00:00Z"}`
		a, b := parse(t, body), parse(t, body)
		if len(a) != 1 || a[0].ID == "" || a[0].ID != b[0].ID || a[0].Subject != "del_1" {
			t.Fatalf("events = %+v / %+v", a, b)
		}
		c := parse(t, `{"kind":"event.courier_update","delivery_id":"del_1","created":"2026-11-27T14:00:00Z","location":{"lat":1.5,"lng":2}}`)
		if len(c) != 1 || c[0].ID != "uberdirect:event.courier_update:del_1:1.5,2:2026-11-27T14:00:00Z" {
			t.Fatalf("courier events = %+v", c)
		}
	})
	t.Run("courier location from data", func(t *testing.T) {
		evs := parse(t, `{"id":"evt_2","kind":"event.courier_update","data":{"id":"del_1","courier":{"location":{"lat":-33.1,"lng":-70.2}}}}`)
		if len(evs) != 1 || evs[0].Subject != "del_1" || string(evs[0].Data) != `{"courier":{"location":{"lat":-33.1,"lng":-70.2}}}` {
			t.Fatalf("events = %+v", evs)
		}
	})
}

// TestFakeWebhooksEndToEnd books a delivery on the fake, lets it post its
// signed webhooks to a receiver that verifies X-Uber-Signature like the
// gateway, and parses each body.
func TestFakeWebhooksEndToEnd(t *testing.T) {
	f := startFake(t)
	const key = "whsk_test_signing_key"
	var mu sync.Mutex
	var events []provider.Event
	p := newProvider()
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sig := r.Header.Get("X-Uber-Signature")
		if !hmac.Equal([]byte(sig), []byte(sign(key, body))) || r.Header.Get("X-Postmates-Signature") != sig {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		evs, err := p.ParseWebhook(r.Context(), provider.WebhookRequest{Tenant: testTenant(f.URL()), Headers: r.Header, Body: body})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		events = append(events, evs...)
		mu.Unlock()
	}))
	defer rcv.Close()
	f.SetWebhook(rcv.URL, key)

	sh := mustCreate(t, p, f, "hook-1")
	var statuses []string
	for range 2 {
		st, err := f.Advance(sh.ID)
		if err != nil {
			t.Fatalf("Advance: %v", err)
		}
		statuses = append(statuses, st)
	}
	if err := f.CourierUpdate(sh.ID, -33.42, -70.61); err != nil {
		t.Fatalf("CourierUpdate: %v", err)
	}
	for range 2 {
		st, err := f.Advance(sh.ID)
		if err != nil {
			t.Fatalf("Advance: %v", err)
		}
		statuses = append(statuses, st)
	}
	if _, err := f.Advance(sh.ID); err == nil {
		t.Fatal("Advance past delivered succeeded")
	}
	if strings.Join(statuses, ",") != "pickup,pickup_complete,dropoff,delivered" {
		t.Fatalf("statuses = %v", statuses)
	}
	mu.Lock()
	defer mu.Unlock()
	var types []string
	for _, e := range events {
		types = append(types, e.Type)
		if e.Subject != sh.ID || !strings.HasPrefix(e.ID, "evt_") {
			t.Errorf("event %+v: want subject %s and an evt_ id", e, sh.ID)
		}
	}
	want := []string{eventAssigned, eventPickedUp, eventCourierLocation, eventPickedUp, eventCompleted}
	if strings.Join(types, ",") != strings.Join(want, ",") {
		t.Fatalf("events = %v, want %v", types, want)
	}
	var last deliveryData
	if err := json.Unmarshal(events[4].Data, &last); err != nil {
		t.Fatal(err)
	}
	if last.ProofOfDelivery == nil || last.ProofOfDelivery.PhotoURL == "" || last.Courier == nil || last.Fee == nil || last.Fee.Amount != 2500 {
		t.Fatalf("completed data = %s", events[4].Data)
	}

	// A receiver refusing the webhook makes Advance fail, the status moves.
	f.SetWebhook(rcv.URL, "another-key")
	sh2 := mustCreate(t, p, f, "hook-2")
	if st, err := f.Advance(sh2.ID); err == nil || st != "pickup" {
		t.Fatalf("Advance to a refusing receiver = %q, %v; want pickup and an error", st, err)
	}
	got, err := p.GetShipment(context.Background(), delivery.GetRequest{Tenant: testTenant(f.URL()), ID: sh2.ID})
	if err != nil || got.Status != delivery.StatusAssigned {
		t.Fatalf("GetShipment after a refused webhook = %+v, %v", got, err)
	}
}

func sign(key string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}
