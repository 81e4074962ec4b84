package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/webhooks")

// TestParseWebhook feeds recorded notifications from testdata/webhooks to
// ParseWebhook while the fake API serves the recorded payment each one
// points to (testdata/payments), and compares the events with
// testdata/webhooks/<name>.golden.json.
func TestParseWebhook(t *testing.T) {
	tests := map[string]struct {
		payment   string // testdata/payments/<payment>.json, served for its id
		id        int
		query     map[string][]string
		requestID string
		wantKind  provider.Kind // 0: success, compared with the golden file
	}{
		"payment.approved":           {payment: "approved", id: 1234567890, requestID: "bb56a2f1-6aae-46ac-982e-9dcd3581d08e", query: map[string][]string{"data.id": {"1234567890"}, "type": {"payment"}}},
		"payment.rejected":           {payment: "rejected", id: 1234567891, requestID: "c4a2f1b0-0000-4000-8000-000000000002"},
		"payment.refunded":           {payment: "refunded", id: 1234567892, requestID: "c4a2f1b0-0000-4000-8000-000000000003"},
		"payment.partially_refunded": {payment: "partially_refunded", id: 1234567893},
		"payment.cancelled":          {payment: "cancelled", id: 1234567894, requestID: "c4a2f1b0-0000-4000-8000-000000000005"},
		"payment.pending":            {payment: "pending", id: 1234567895, requestID: "c4a2f1b0-0000-4000-8000-000000000006"},
		"merchant_order":             {query: map[string][]string{"id": {"9876543210"}, "topic": {"merchant_order"}}},
		"malformed":                  {wantKind: provider.KindPermanent},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFakeMP(t)
			if tc.payment != "" {
				f.loadPayment(tc.id, tc.payment)
			}
			body, err := os.ReadFile(filepath.Join("testdata", "webhooks", name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			headers := map[string][]string{"Content-Type": {"application/json"}, "X-Signature": {"ts=1742505638683,v1=ignored-by-the-plugin"}}
			if tc.requestID != "" {
				headers["X-Request-Id"] = []string{tc.requestID}
			}
			events, err := newProvider().ParseWebhook(ctxT(t), provider.WebhookRequest{Tenant: tenant(f, nil), Headers: headers, Query: tc.query, Body: body})
			if tc.wantKind != 0 {
				if provider.KindOf(err) != tc.wantKind || !errors.Is(err, errMalformedWebhook) {
					t.Fatalf("err = %v (kind %s), want kind %s wrapping errMalformedWebhook", err, provider.KindOf(err), tc.wantKind)
				}
				if len(f.recorded()) != 0 {
					t.Error("a malformed notification made an API call")
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseWebhook: %v", err)
			}
			if tc.payment != "" {
				rec := lastRequest(t, f, http.MethodGet, "/v1/payments/"+itoa(tc.id))
				if rec.Header.Get("Authorization") != "Bearer "+fakeToken {
					t.Errorf("fetch Authorization = %q", rec.Header.Get("Authorization"))
				}
			} else if len(f.recorded()) != 0 {
				t.Error("an ignored topic made an API call")
			}
			checkGolden(t, filepath.Join("testdata", "webhooks", name+".golden.json"), events)
		})
	}
}

func checkGolden(t *testing.T, path string, events []provider.Event) {
	t.Helper()
	if events == nil {
		events = []provider.Event{}
	}
	got, err := json.MarshalIndent(events, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("events differ from %s:\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestParseWebhookQueryOnly(t *testing.T) {
	// A notification with an empty body is read from its query string.
	f := newFakeMP(t)
	f.loadPayment(1234567890, "approved")
	events, err := newProvider().ParseWebhook(ctxT(t), provider.WebhookRequest{
		Tenant: tenant(f, nil),
		Query:  map[string][]string{"data.id": {"1234567890"}, "type": {"payment"}},
	})
	if err != nil || len(events) != 1 || events[0].Type != catalogConfirmed || events[0].ID != "1234567890:approved" {
		t.Fatalf("events = %+v, err = %v", events, err)
	}
}

func TestParseWebhookErrors(t *testing.T) {
	payment := []byte(`{"id":1,"type":"payment","action":"payment.updated","data":{"id":"1234567890"}}`)
	tests := map[string]struct {
		body  []byte
		setup func(*fakeMP)
		want  provider.Kind
		code  string
	}{
		"fetch 500": {body: payment, setup: func(f *fakeMP) {
			f.failWith(500, `{"message":"oops","error":"internal_error","status":500,"cause":[]}`, nil)
		}, want: provider.KindRetryable, code: "internal_error"},
		"fetch 404": {body: payment, want: provider.KindRetryable, code: "not_found"},
		"fetch 401": {body: payment, setup: func(f *fakeMP) {
			f.failWith(401, `{"message":"bad token","error":"unauthorized","status":401,"cause":[]}`, nil)
		}, want: provider.KindRetryable, code: "unauthorized"},
		"fetch stalled":    {body: payment, setup: func(f *fakeMP) { f.stallAll() }, want: provider.KindRetryable},
		"not json":         {body: []byte("id=1&topic=payment"), want: provider.KindPermanent},
		"no topic":         {body: []byte(`{"id":1,"data":{"id":"1"}}`), want: provider.KindPermanent},
		"non numeric id":   {body: []byte(`{"type":"payment","data":{"id":"../1"}}`), want: provider.KindPermanent},
		"json array":       {body: []byte(`[1,2]`), want: provider.KindPermanent},
		"empty everything": {body: nil, want: provider.KindPermanent},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFakeMP(t)
			if tc.setup != nil {
				tc.setup(f)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			_, err := newProvider().ParseWebhook(ctx, provider.WebhookRequest{Tenant: tenant(f, nil), Body: tc.body})
			if provider.KindOf(err) != tc.want || provider.CodeOf(err) != tc.code {
				t.Fatalf("err = %v (kind %s, code %q), want kind %s code %q", err, provider.KindOf(err), provider.CodeOf(err), tc.want, tc.code)
			}
			if strings.Contains(err.Error(), fakeToken) {
				t.Errorf("error leaks the token: %v", err)
			}
		})
	}
}
