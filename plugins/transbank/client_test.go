package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

func TestNewClient(t *testing.T) {
	tests := map[string]struct {
		settings   map[string]string
		secrets    map[string]string
		wantKind   provider.Kind
		wantBase   string
		wantCode   string
		wantSecret string
	}{
		"integration by default": {
			wantBase: integrationHost, wantCode: integrationCommerceCode, wantSecret: integrationAPIKey,
		},
		"integration, own commerce code, shared key": {
			settings: map[string]string{fieldEnvironment: "Integration", fieldCommerceCode: "597055555540"},
			wantBase: integrationHost, wantCode: "597055555540", wantSecret: integrationAPIKey,
		},
		"production": {
			settings: map[string]string{fieldEnvironment: envProduction, fieldCommerceCode: prodCommerce},
			secrets:  map[string]string{fieldAPIKeySecret: prodSecret},
			wantBase: productionHost, wantCode: prodCommerce, wantSecret: prodSecret,
		},
		"base_url overrides the host": {
			settings: map[string]string{provider.BaseURLField: "http://127.0.0.1:9/"},
			wantBase: "http://127.0.0.1:9", wantCode: integrationCommerceCode, wantSecret: integrationAPIKey,
		},
		"production without secret": {
			settings: map[string]string{fieldEnvironment: envProduction, fieldCommerceCode: prodCommerce},
			wantKind: provider.KindUnauthorized,
		},
		"production without commerce code": {
			settings: map[string]string{fieldEnvironment: envProduction},
			secrets:  map[string]string{fieldAPIKeySecret: prodSecret},
			wantKind: provider.KindUnauthorized,
		},
		"unknown environment": {
			settings: map[string]string{fieldEnvironment: "staging"},
			wantKind: provider.KindInvalid,
		},
		"base_url without scheme": {
			settings: map[string]string{provider.BaseURLField: "webpay3gint.transbank.cl"},
			wantKind: provider.KindInvalid,
		},
		"base_url with query": {
			settings: map[string]string{provider.BaseURLField: "https://h.example/?x=1"},
			wantKind: provider.KindInvalid,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := newClient(provider.NewTenant("acme", tc.settings, tc.secrets))
			if tc.wantKind != 0 {
				wantKind(t, err, tc.wantKind)
				if err != nil && strings.Contains(err.Error(), prodSecret) {
					t.Errorf("error leaks the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("newClient: %v", err)
			}
			if c.base != tc.wantBase || c.commerceCode != tc.wantCode || c.secret.Reveal() != tc.wantSecret {
				t.Errorf("client = %s %s, want %s %s (secret match %v)", c.base, c.commerceCode, tc.wantBase, tc.wantCode, c.secret.Reveal() == tc.wantSecret)
			}
		})
	}
}

// TestErrors checks how every kind of Transbank answer is classified, with
// the fake answering in Transbank's error shape.
func TestErrors(t *testing.T) {
	f := newFakeWebpay(t)
	tn := prodTenant(f, prodSecret)
	tests := map[string]struct {
		status     int
		body       string
		header     map[string]string
		wantKind   provider.Kind
		wantCode   string
		wantRetry  time.Duration
		wantInText string
	}{
		"401":                 {status: 401, body: `{"error_message":"Not Authorized"}`, wantKind: provider.KindUnauthorized, wantInText: "API key rejected (HTTP 401)"},
		"403":                 {status: 403, body: `{"error_message":"Forbidden"}`, wantKind: provider.KindUnauthorized},
		"400":                 {status: 400, body: `{"error_message":"Invalid request body"}`, wantKind: provider.KindInvalid, wantCode: "Invalid request body"},
		"404 without JSON":    {status: 404, body: `<html>not found</html>`, wantKind: provider.KindInvalid, wantInText: "HTTP 404"},
		"422":                 {status: 422, body: `{"error_message":"Invalid value for parameter: amount"}`, wantKind: provider.KindInvalid, wantCode: "Invalid value for parameter: amount"},
		"422 echoing secret":  {status: 422, body: `{"error_message":"bad key ` + prodSecret + `"}`, wantKind: provider.KindInvalid, wantCode: "bad key [redacted]"},
		"429":                 {status: 429, body: `{"error_message":"Too many requests"}`, header: map[string]string{"Retry-After": "7"}, wantKind: provider.KindRateLimited, wantCode: "Too many requests", wantRetry: 7 * time.Second},
		"500":                 {status: 500, body: `{"error_message":"Internal error"}`, wantKind: provider.KindRetryable, wantCode: "Internal error"},
		"503 empty":           {status: 503, wantKind: provider.KindRetryable, wantInText: "HTTP 503"},
		"200 malformed JSON":  {status: 200, body: `{"token": 5`, wantKind: provider.KindRetryable, wantInText: "malformed response"},
		"200 without a token": {status: 200, body: `{}`, wantKind: provider.KindRetryable},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f.override(func(w http.ResponseWriter, _ *http.Request) bool {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
				return true
			})
			defer f.override(nil)
			var logs bytes.Buffer
			ctx := provider.WithLogger(testCtx(t), slog.New(slog.NewTextHandler(&logs, nil)))
			_, err := newProvider().CreatePayment(ctx, createReq(tn, "err_"+name, 1000))
			wantKind(t, err, tc.wantKind)
			if got := provider.CodeOf(err); got != tc.wantCode {
				t.Errorf("code = %q, want %q", got, tc.wantCode)
			}
			if got := provider.RetryAfter(err); got != tc.wantRetry {
				t.Errorf("RetryAfter = %s, want %s", got, tc.wantRetry)
			}
			if !strings.Contains(err.Error(), tc.wantInText) {
				t.Errorf("error %q does not contain %q", err, tc.wantInText)
			}
			if strings.Contains(err.Error(), prodSecret) || strings.Contains(logs.String(), prodSecret) {
				t.Errorf("the secret leaked: err %q, logs %q", err, logs.String())
			}
			if !strings.Contains(logs.String(), "transbank call failed") {
				t.Errorf("failure not logged: %q", logs.String())
			}
		})
	}
}

func TestDeadline(t *testing.T) {
	f := newFakeWebpay(t)
	release := f.stall()
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := newProvider().GetPayment(ctx, payments.GetRequest{Tenant: testTenant(f, nil, nil), ID: strings.Repeat("a", 64)})
	wantKind(t, err, provider.KindRetryable)
	if !provider.IsTimeout(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want it to wrap context.DeadlineExceeded", err)
	}
}
