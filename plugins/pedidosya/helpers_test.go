package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/providertest"

	"github.com/pipecore/pipecore/plugins/pedidosya/internal/wire"
	"github.com/pipecore/pipecore/plugins/pedidosya/pedidosyafake"
)

// hookKey is the webhook authorization key of the test tenants.
const hookKey = "pdy-hook-key-7f3a9c2e"

func startFake(t testing.TB) *pedidosyafake.Server {
	t.Helper()
	f := pedidosyafake.Start()
	t.Cleanup(f.Close)
	return f
}

// tenantFor returns tenant "acme" pointed at base with the fake's token;
// extra settings override (a "" value removes one).
func tenantFor(base string, extra map[string]string) provider.Tenant {
	settings := map[string]string{provider.BaseURLField: base, fieldIsTest: "true"}
	creds := map[string]string{fieldAPIToken: pedidosyafake.Token, fieldWebhookKey: hookKey}
	for k, v := range extra {
		switch {
		case k == fieldAPIToken || k == fieldWebhookKey:
			creds[k] = v
		case v == "":
			delete(settings, k)
		default:
			settings[k] = v
		}
	}
	return providertest.Tenant("acme", settings, creds)
}

func ctxT(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var testItems = []delivery.Item{{Name: "Pedido 1042", Quantity: 2, Size: "small", Price: &provider.Money{Amount: 12990, Currency: "CLP"}}}

func quoteReq(tn provider.Tenant) delivery.QuoteRequest {
	return delivery.QuoteRequest{Tenant: tn, Pickup: providertest.DefaultPickup, Dropoff: providertest.DefaultDropoff, Items: testItems, Reference: "order-1042"}
}

func createReq(tn provider.Tenant, key string) delivery.CreateRequest {
	return delivery.CreateRequest{
		Tenant: tn, IdempotencyKey: key, DeliveryID: "del_" + key,
		Pickup: providertest.DefaultPickup, Dropoff: providertest.DefaultDropoff, Items: testItems, Reference: "order-" + key,
	}
}

// rewrite may change an answer passing through proxy.
type rewrite func(r *http.Request, status int, body []byte) (int, []byte)

// proxy starts a server forwarding to target and passing every answer
// through fn (nil forwards as is). It returns the proxy's URL and a counter
// of the requests it saw.
func proxy(t testing.TB, target string, fn rewrite) (string, *atomic.Int64) {
	t.Helper()
	return intercept(t, target, nil, fn)
}

// intercept is proxy with a hook that may answer a request itself, without
// forwarding it, by returning a non-zero status.
func intercept(t testing.TB, target string, before func(r *http.Request) (int, []byte), fn rewrite) (string, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if before != nil {
			if st, b := before(r); st != 0 {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(st)
				_, _ = w.Write(b)
				return
			}
		}
		body, _ := io.ReadAll(r.Body)
		req, err := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		rb, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		st := resp.StatusCode
		if fn != nil {
			st, rb = fn(r, st, rb)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(st)
		_, _ = w.Write(rb)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &n
}

// lastBody decodes the body of the last request to path.
func lastBody(t testing.TB, f *pedidosyafake.Server, method, path string, out any) pedidosyafake.Request {
	t.Helper()
	reqs := f.Requests()
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].Method == method && reqs[i].Path == path {
			if out != nil {
				if err := json.Unmarshal(reqs[i].Body, out); err != nil {
					t.Fatalf("%s %s body: %v", method, path, err)
				}
			}
			return reqs[i]
		}
	}
	t.Fatalf("no %s %s among %d requests", method, path, len(reqs))
	return pedidosyafake.Request{}
}

func paths(reqs []pedidosyafake.Request) []string {
	out := make([]string, len(reqs))
	for i, r := range reqs {
		out[i] = r.Method + " " + r.Path
	}
	return out
}

func wireErr(status int, code, msg string) []byte {
	b, _ := json.Marshal(wire.Error{Status: status, Code: code, Message: msg})
	return b
}
