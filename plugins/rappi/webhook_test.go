package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/webhooks")

// webhookWant is the event type each recorded payload yields ("" = none).
var webhookWant = map[string]string{
	"assigned":             "delivery.assigned",
	"picked_up":            "delivery.picked_up",
	"delivered":            "delivery.completed",
	"canceled":             "delivery.cancelled",
	"failed":               "delivery.failed",
	"created":              "",
	"taken_visible_order":  "delivery.assigned",
	"canceled_with_charge": "delivery.cancelled",
	"numeric_order_id":     "delivery.assigned",
	"menu_approved":        "",
	"unknown_event":        "",
}

func readPayload(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "webhooks", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goldenEvent is how an event is written to a golden file.
type goldenEvent struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Subject    string          `json:"subject"`
	OccurredAt time.Time       `json:"occurred_at"`
	Data       json.RawMessage `json:"data"`
}

func TestParseWebhookGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "webhooks", "*.json"))
	if err != nil || len(files) != len(webhookWant) {
		t.Fatalf("found %d payloads (%v), want %d", len(files), err, len(webhookWant))
	}
	p := newProvider()
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			want, ok := webhookWant[name]
			if !ok {
				t.Fatalf("payload %s has no expectation", name)
			}
			body := readPayload(t, name)
			evs, err := p.ParseWebhook(context.Background(), provider.WebhookRequest{Tenant: testTenant("http://127.0.0.1:1"), Body: body})
			if err != nil {
				t.Fatalf("ParseWebhook: %v", err)
			}
			if want == "" {
				if len(evs) != 0 {
					t.Fatalf("got %d events, want none: %+v", len(evs), evs)
				}
				return
			}
			if len(evs) != 1 || evs[0].Type != want {
				t.Fatalf("events %+v, want one %s", evs, want)
			}
			again, _ := p.ParseWebhook(context.Background(), provider.WebhookRequest{Body: body})
			if len(again) != 1 || again[0].ID != evs[0].ID {
				t.Fatalf("event id not deterministic: %q then %+v", evs[0].ID, again)
			}
			g := make([]goldenEvent, len(evs))
			for i, e := range evs {
				g[i] = goldenEvent{ID: e.ID, Type: e.Type, Subject: e.Subject, OccurredAt: e.OccurredAt, Data: e.Data}
			}
			got, err := json.MarshalIndent(g, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", "webhooks", name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			wantBytes, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, wantBytes) {
				t.Fatalf("events differ from %s:\n got: %s\nwant: %s", path, got, wantBytes)
			}
		})
	}
}

func TestParseWebhookDetails(t *testing.T) {
	p := newProvider()
	parse := func(t *testing.T, name string) map[string]any {
		t.Helper()
		evs, err := p.ParseWebhook(context.Background(), provider.WebhookRequest{Body: readPayload(t, name)})
		if err != nil || len(evs) != 1 {
			t.Fatalf("%s: %v %v", name, evs, err)
		}
		var d map[string]any
		if err := json.Unmarshal(evs[0].Data, &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	t.Run("assigned carries the courier", func(t *testing.T) {
		d := parse(t, "assigned")
		c, _ := d["courier"].(map[string]any)
		loc, _ := c["location"].(map[string]any)
		if c["name"] != "Camila Rojas" || c["phone"] != "+56911112222" || c["vehicle"] != "motorcycle" || loc["lat"] != -33.4263 || loc["lng"] != -70.62 {
			t.Fatalf("courier = %v", d["courier"])
		}
		if d["status"] != "assigned" || d["provider_delivery_id"] != "312004518" || d["eta"] != "2026-11-27T14:43:00Z" {
			t.Fatalf("data = %v", d)
		}
		if _, ok := d["reason"]; ok {
			t.Fatal("assigned event has a reason")
		}
	})
	t.Run("courier name from first and last name", func(t *testing.T) {
		c, _ := parse(t, "numeric_order_id")["courier"].(map[string]any)
		if c["name"] != "Tomás Pérez" {
			t.Fatalf("courier = %v", c)
		}
	})
	t.Run("cancellation reason", func(t *testing.T) {
		if r := parse(t, "canceled")["reason"]; r != "no_courier_available" {
			t.Fatalf("reason = %v", r)
		}
		if r := parse(t, "canceled_with_charge")["reason"]; r != "canceled_with_charge" {
			t.Fatalf("reason = %v", r)
		}
	})
	t.Run("proof only on completion", func(t *testing.T) {
		pod, _ := parse(t, "delivered")["proof_of_delivery"].(map[string]any)
		if pod["photo_url"] != "https://static.rappi.cl/pod/312004518.jpg" || pod["pin"] != "4321" {
			t.Fatalf("proof = %v", pod)
		}
	})
	t.Run("occurred at is event_time in UTC", func(t *testing.T) {
		evs, _ := p.ParseWebhook(context.Background(), provider.WebhookRequest{Body: readPayload(t, "picked_up")})
		if want := time.Date(2026, 11, 27, 14, 11, 42, 0, time.UTC); !evs[0].OccurredAt.Equal(want) {
			t.Fatalf("OccurredAt = %s, want %s", evs[0].OccurredAt, want)
		}
	})
}

func TestParseWebhookInvalid(t *testing.T) {
	p := newProvider()
	tests := map[string]struct {
		body string
		kind provider.Kind // 0: no error, no events
	}{
		"not json":               {`event=ASSIGNED`, provider.KindInvalid},
		"array":                  {`[{"event":"ASSIGNED"}]`, provider.KindInvalid},
		"truncated":              {`{"event":"ASSIGNED","order_id":"1"`, provider.KindInvalid},
		"status without order":   {`{"event":"PICKED_UP","event_time":"2026-11-27 14:11:42"}`, provider.KindInvalid},
		"order id of a bad type": {`{"event":"PICKED_UP","order_id":{"id":1}}`, provider.KindInvalid},
		"null":                   {`null`, 0},
		"empty object":           {`{}`, 0},
		"ping-like":              {`{"store_id":"900109448"}`, 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			evs, err := p.ParseWebhook(context.Background(), provider.WebhookRequest{Body: []byte(tc.body)})
			if provider.KindOf(err) != tc.kind {
				t.Fatalf("err = %v (kind %s), want kind %s", err, provider.KindOf(err), tc.kind)
			}
			if len(evs) != 0 {
				t.Fatalf("events %+v, want none", evs)
			}
		})
	}
}

func TestParseWebhookEventIDs(t *testing.T) {
	p := newProvider()
	ids := map[string]string{}
	for name, want := range webhookWant {
		if want == "" {
			continue
		}
		evs, err := p.ParseWebhook(context.Background(), provider.WebhookRequest{Body: readPayload(t, name)})
		if err != nil || len(evs) != 1 {
			t.Fatalf("%s: %v %v", name, evs, err)
		}
		if other, dup := ids[evs[0].ID]; dup {
			t.Fatalf("%s and %s share event id %q", name, other, evs[0].ID)
		}
		ids[evs[0].ID] = name
	}
	// Without event_time the id is a digest of the body: another body,
	// another id.
	a, _ := p.ParseWebhook(context.Background(), provider.WebhookRequest{Body: []byte(`{"event":"canceled_with_charge","order_id":"106"}`)})
	b, _ := p.ParseWebhook(context.Background(), provider.WebhookRequest{Body: []byte(`{"event":"canceled_without_charge","order_id":"106"}`)})
	if len(a) != 1 || len(b) != 1 || a[0].ID == b[0].ID {
		t.Fatalf("ids %+v %+v", a, b)
	}
}
