package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/providertest"
)

const recordedPreapproval = "2c938084726fca480172750000000000"

// TestParseSubscriptionWebhook feeds the recorded subscription
// notifications while the fake serves the recorded preapproval and
// authorized payment each points to, and compares the events with the
// golden files.
func TestParseSubscriptionWebhook(t *testing.T) {
	tests := map[string]struct {
		preapproval string // testdata/preapprovals/<name>.json
		authorized  string // testdata/authorized_payments/<name>.json, served for authorizedID
		authID      string
		want        string // catalog type; "" for none
		fetches     []string
	}{
		"subscription_preapproval.authorized": {preapproval: "authorized", want: catalogSubAuthorized, fetches: []string{"/preapproval/" + recordedPreapproval}},
		"subscription_preapproval.cancelled":  {preapproval: "cancelled", want: catalogSubCancelled, fetches: []string{"/preapproval/" + recordedPreapproval}},
		"subscription_preapproval.pending":    {preapproval: "pending", fetches: []string{"/preapproval/" + recordedPreapproval}},
		"subscription_preapproval.paused":     {preapproval: "paused", fetches: []string{"/preapproval/" + recordedPreapproval}},
		"subscription_authorized_payment.approved": {preapproval: "renewed", authorized: "approved", authID: "7108483460", want: catalogSubRenewed,
			fetches: []string{"/authorized_payments/7108483460", "/preapproval/" + recordedPreapproval}},
		"subscription_authorized_payment.rejected": {preapproval: "renewed", authorized: "rejected", authID: "7108483461", want: catalogSubFailed,
			fetches: []string{"/authorized_payments/7108483461", "/preapproval/" + recordedPreapproval}},
		"subscription_authorized_payment.scheduled": {preapproval: "authorized", authorized: "scheduled", authID: "7108483462",
			fetches: []string{"/authorized_payments/7108483462"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFakeMP(t)
			f.loadPreapproval(recordedPreapproval, tc.preapproval)
			if tc.authorized != "" {
				f.loadAuthorizedPayment(tc.authID, tc.authorized)
			}
			body, err := os.ReadFile(filepath.Join("testdata", "webhooks", name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			var n struct {
				Type string `json:"type"`
				Data struct {
					ID string `json:"id"`
				} `json:"data"`
			}
			if err := json.Unmarshal(body, &n); err != nil {
				t.Fatal(err)
			}
			req := provider.WebhookRequest{
				Tenant: tenant(f, nil),
				Headers: map[string][]string{"Content-Type": {"application/json"}, "X-Request-Id": {"4f0e3c2a-9b1d-4e6f-8a7c-" + strings.Repeat("0", 12)},
					"X-Signature": {"ts=1742505638683,v1=ignored-by-the-plugin"}},
				Query: map[string][]string{"data.id": {n.Data.ID}, "type": {n.Type}},
				Body:  body,
			}
			events, err := newProvider().ParseWebhook(ctxT(t), req)
			if err != nil {
				t.Fatalf("ParseWebhook: %v", err)
			}
			var fetched []string
			for _, r := range f.recorded() {
				if r.Method != http.MethodGet || r.Header.Get("Authorization") != "Bearer "+fakeToken {
					t.Errorf("unexpected %s %s (auth %q)", r.Method, r.Path, r.Header.Get("Authorization"))
				}
				fetched = append(fetched, r.Path)
			}
			if strings.Join(fetched, " ") != strings.Join(tc.fetches, " ") {
				t.Errorf("fetched %q, want %q", fetched, tc.fetches)
			}
			switch {
			case tc.want == "" && len(events) != 0:
				t.Fatalf("events = %+v, want none", events)
			case tc.want != "" && (len(events) != 1 || events[0].Type != tc.want):
				t.Fatalf("events = %+v, want one %s", events, tc.want)
			}
			for _, ev := range events {
				checkSubscriptionEvent(t, ev)
			}
			// The same notification again yields the same event id.
			again, err := newProvider().ParseWebhook(ctxT(t), req)
			if err != nil || len(again) != len(events) || (len(events) == 1 && again[0].ID != events[0].ID) {
				t.Errorf("redelivery = %+v, %v; want the same event ids", again, err)
			}
			checkGolden(t, filepath.Join("testdata", "webhooks", name+".golden.json"), events)
		})
	}
}

// checkSubscriptionEvent asserts what EVENTS.md promises of a subscription
// event from MercadoPago.
func checkSubscriptionEvent(t testing.TB, ev provider.Event) {
	t.Helper()
	if ev.ID == "" || ev.Subject != recordedPreapproval || ev.OccurredAt.IsZero() || ev.OccurredAt.Location() != time.UTC {
		t.Errorf("event %+v: want an id, Subject = the preapproval, a UTC time", ev)
	}
	var d map[string]any
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{"subscription_id": true, "provider_subscription_id": true, "status": true, "amount": true,
		"provider_payment_id": true, "current_period_end": true, "reason": true}
	for k, v := range d {
		if !allowed[k] {
			t.Errorf("field %q is not in the catalog", k)
		}
		if s, isString := v.(string); isString && s == "" {
			t.Errorf("field %q is empty", k)
		}
	}
	if d["subscription_id"] != "sub_01JDQF7H9K1M3N5P7Q9R1S3T5V" || d["provider_subscription_id"] != recordedPreapproval {
		t.Errorf("data = %s, want the gateway's and MercadoPago's subscription ids", ev.Data)
	}
	want := map[string]string{catalogSubAuthorized: "active", catalogSubRenewed: "active", catalogSubFailed: "past_due", catalogSubCancelled: "cancelled"}[ev.Type]
	if d["status"] != want {
		t.Errorf("%s: status = %v, want %s", ev.Type, d["status"], want)
	}
	if v, ok := d["current_period_end"].(string); ok {
		if _, err := time.Parse(time.RFC3339, v); err != nil || !strings.HasSuffix(v, "Z") {
			t.Errorf("current_period_end = %q, want RFC 3339 in UTC", v)
		}
	}
	if ev.Type == catalogSubRenewed || ev.Type == catalogSubFailed {
		if d["provider_payment_id"] == nil || d["amount"] == nil {
			t.Errorf("%s: data = %s, want provider_payment_id and amount", ev.Type, ev.Data)
		}
	}
}

func TestParseSubscriptionWebhookErrors(t *testing.T) {
	preapproval := func(id string) []byte {
		return []byte(`{"action":"updated","data":{"id":"` + id + `"},"entity":"preapproval","id":1,"type":"subscription_preapproval","version":1}`)
	}
	charge := func(id string) []byte {
		return []byte(`{"action":"created","data":{"id":"` + id + `"},"entity":"authorized_payment","id":2,"type":"subscription_authorized_payment","version":0}`)
	}
	tests := map[string]struct {
		body  []byte
		setup func(*fakeMP)
		want  provider.Kind
		code  string
	}{
		"preapproval id malformed":  {body: preapproval("../v1/payments/1"), want: provider.KindPermanent},
		"preapproval id empty":      {body: preapproval(""), want: provider.KindPermanent},
		"charge id not numeric":     {body: charge("abc"), want: provider.KindPermanent},
		"charge id signed":          {body: charge("+7108483460"), want: provider.KindPermanent},
		"preapproval not found":     {body: preapproval(recordedPreapproval), want: provider.KindRetryable, code: "not_found"},
		"charge not found":          {body: charge("7108483460"), want: provider.KindRetryable, code: "not_found"},
		"charge's preapproval gone": {body: charge("7108483460"), setup: func(f *fakeMP) { f.loadAuthorizedPayment("7108483460", "approved") }, want: provider.KindRetryable, code: "not_found"},
		"fetch 500": {body: preapproval(recordedPreapproval), setup: func(f *fakeMP) {
			f.failWith(500, `{"message":"oops","error":"internal_error","status":500,"cause":[]}`, nil)
		}, want: provider.KindRetryable, code: "internal_error"},
		"fetch stalled": {body: charge("7108483460"), setup: func(f *fakeMP) { f.stallAll() }, want: provider.KindRetryable},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFakeMP(t)
			if tc.setup != nil {
				tc.setup(f)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			evs, err := newProvider().ParseWebhook(ctx, provider.WebhookRequest{Tenant: tenant(f, nil), Body: tc.body})
			if evs != nil || provider.KindOf(err) != tc.want || provider.CodeOf(err) != tc.code {
				t.Fatalf("ParseWebhook = %v, %v (kind %s, code %q), want kind %s code %q", evs, err, provider.KindOf(err), provider.CodeOf(err), tc.want, tc.code)
			}
			if tc.want == provider.KindPermanent && !errors.Is(err, errMalformedWebhook) {
				t.Errorf("err = %v, want it to wrap errMalformedWebhook", err)
			}
			if tc.want == provider.KindPermanent && len(f.recorded()) != 0 {
				t.Error("a malformed notification made an API call")
			}
			if strings.Contains(err.Error(), fakeToken) {
				t.Errorf("error leaks the token: %v", err)
			}
		})
	}
}

// A charge without a preapproval cannot be linked to a subscription: no
// event, and nothing to retry.
func TestAuthorizedPaymentWithoutPreapproval(t *testing.T) {
	f := newFakeMP(t)
	f.mu.Lock()
	f.rawAuthorized["7108483460"] = []byte(`{"id":7108483460,"status":"processed","currency_id":"CLP","transaction_amount":9990,"payment":{"id":1,"status":"approved"}}`)
	f.mu.Unlock()
	evs, err := newProvider().ParseWebhook(ctxT(t), provider.WebhookRequest{Tenant: tenant(f, nil),
		Body: []byte(`{"type":"subscription_authorized_payment","data":{"id":"7108483460"}}`)})
	if err != nil || evs != nil {
		t.Fatalf("ParseWebhook = %v, %v; want no event and no error", evs, err)
	}
}

func TestChargeOutcome(t *testing.T) {
	tests := map[string]struct {
		body   string
		typ    string
		reason string
	}{
		"approved":                  {body: `{"status":"processed","payment":{"id":1,"status":"approved"}}`, typ: catalogSubRenewed},
		"processed, no payment":     {body: `{"status":"processed"}`, typ: catalogSubRenewed},
		"processed, pending":        {body: `{"status":"processed","payment":{"id":1,"status":"in_process"}}`},
		"rejected":                  {body: `{"status":"processed","payment":{"id":1,"status":"rejected","status_detail":"cc_rejected_other_reason"}}`, typ: catalogSubFailed, reason: "cc_rejected_other_reason"},
		"cancelled payment":         {body: `{"status":"cancelled","payment":{"id":1,"status":"cancelled"}}`, typ: catalogSubFailed, reason: "cancelled"},
		"recycling":                 {body: `{"status":"recycling","payment":{"id":1,"status":"in_process"}}`, typ: catalogSubFailed, reason: "recycling"},
		"scheduled":                 {body: `{"status":"scheduled"}`},
		"cancelled without payment": {body: `{"status":"cancelled"}`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFakeMP(t)
			f.loadPreapproval(recordedPreapproval, "authorized")
			body := strings.Replace(tc.body, "{", `{"id":7108483460,"preapproval_id":"`+recordedPreapproval+`","currency_id":"CLP","transaction_amount":9990,`, 1)
			f.mu.Lock()
			f.rawAuthorized["7108483460"] = []byte(body)
			f.mu.Unlock()
			evs, err := newProvider().ParseWebhook(ctxT(t), provider.WebhookRequest{Tenant: tenant(f, nil),
				Body: []byte(`{"type":"subscription_authorized_payment","data":{"id":"7108483460"}}`)})
			if err != nil {
				t.Fatal(err)
			}
			if tc.typ == "" {
				if evs != nil {
					t.Fatalf("events = %+v, want none", evs)
				}
				return
			}
			if len(evs) != 1 || evs[0].Type != tc.typ {
				t.Fatalf("events = %+v, want one %s", evs, tc.typ)
			}
			var d subscriptionData
			if err := json.Unmarshal(evs[0].Data, &d); err != nil {
				t.Fatal(err)
			}
			if d.Reason != tc.reason || d.Amount == nil || *d.Amount != (money{Amount: 9990, Currency: "CLP"}) {
				t.Errorf("data = %s, want reason %q and 9990 CLP", evs[0].Data, tc.reason)
			}
		})
	}
}

// Over the real gRPC path the subscription events arrive intact.
func TestParseSubscriptionWebhookOverGRPC(t *testing.T) {
	f := newFakeMP(t)
	f.loadPreapproval(recordedPreapproval, "authorized")
	f.loadAuthorizedPayment("7108483460", "approved")
	conn := providertest.Connect(t, newProvider())
	for _, name := range []string{"subscription_preapproval.authorized", "subscription_authorized_payment.approved"} {
		body, err := os.ReadFile(filepath.Join("testdata", "webhooks", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		req := provider.WebhookRequest{Tenant: tenant(f, nil), Body: body}
		direct, err := newProvider().ParseWebhook(ctxT(t), req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := conn.Webhooks.ParseWebhook(ctxT(t), req)
		if err != nil || len(got) != 1 || len(direct) != 1 {
			t.Fatalf("%s over gRPC = %+v, %v; directly %+v", name, got, err, direct)
		}
		g, d := got[0], direct[0]
		if g.ID != d.ID || g.Type != d.Type || g.Subject != d.Subject || !g.OccurredAt.Equal(d.OccurredAt) || string(g.Data) != string(d.Data) {
			t.Errorf("%s over gRPC = %+v, directly %+v", name, g, d)
		}
	}
}
