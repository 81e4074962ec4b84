package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/pipecore/pipecore/sdk/provider"
)

func TestInfo(t *testing.T) {
	info := newProvider().Info()
	if err := info.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if info.Name != "mercadopago" {
		t.Errorf("Name = %q", info.Name)
	}
	tok, ok := info.Field(fieldAccessToken)
	if !ok || !tok.Secret || !tok.Required {
		t.Errorf("access_token = %+v, want a required secret", tok)
	}
	ws, ok := info.Field(fieldWebhookSecret)
	if !ok || !ws.Secret || ws.Required {
		t.Errorf("webhook_secret = %+v, want an optional secret", ws)
	}
	w := info.Webhook
	if w == nil || w.Scheme != provider.SchemeMercadoPago || w.Header != "x-signature" || w.SecretField != fieldWebhookSecret ||
		len(w.DedupKey) != 2 || w.DedupKey[0] != "header:X-Request-Id" || w.DedupKey[1] != "query:data.id" {
		t.Errorf("Webhook = %+v", w)
	}
}

func TestRewriter(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r }))
	defer srv.Close()
	base, _ := url.Parse(srv.URL)
	rw := rewriter{base: base, hc: srv.Client()}
	tests := map[string]struct {
		method string
		key    string
		want   string
	}{
		"post with key":    {method: http.MethodPost, key: "gw-key", want: "gw-key"},
		"put with key":     {method: http.MethodPut, key: "gw-key", want: "gw-key"},
		"get keeps none":   {method: http.MethodGet, key: "gw-key", want: ""},
		"post without key": {method: http.MethodPost, want: "sdk-random"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			if tc.key != "" {
				ctx = withIdempotencyKey(ctx, tc.key)
			}
			req, _ := http.NewRequestWithContext(ctx, tc.method, "https://api.mercadopago.com/v1/payments?x=1", nil)
			if tc.method != http.MethodGet {
				req.Header.Set("X-Idempotency-Key", "sdk-random")
			}
			res, err := rw.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = res.Body.Close()
			if got.Header.Get("X-Idempotency-Key") != tc.want || got.URL.Path != "/v1/payments" || got.URL.RawQuery != "x=1" || got.Host != base.Host {
				t.Errorf("request = %s %s?%s host %s key %q, want key %q", got.Method, got.URL.Path, got.URL.RawQuery, got.Host, got.Header.Get("X-Idempotency-Key"), tc.want)
			}
		})
	}
}
