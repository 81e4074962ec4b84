package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/provider/httpapi"
)

// api is declared once per plugin.
var api = &httpapi.Client{Name: "acme"}

// refuse reads Acme's error body, {"error":{"code","message"}}.
func refuse(resp *httpapi.Response) error {
	var eb struct {
		Error struct{ Code, Message string }
	}
	_ = json.Unmarshal(resp.Body, &eb)
	r := httpapi.Refusal{
		Code:    httpapi.Clip(resp.Request.Redact(eb.Error.Code), 128),
		Message: httpapi.Clip(resp.Request.Redact(eb.Error.Message), 300),
	}
	if r.Code == "card_declined" {
		r.Kind = provider.KindPermanent
	}
	return api.Refuse(resp, r)
}

func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer sk_test_123456" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if strings.Contains(r.URL.Path, "declined") {
			w.WriteHeader(http.StatusPaymentRequired)
			_, _ = w.Write([]byte(`{"error":{"code":"card_declined","message":"The card was declined."}}`))
			return
		}
		_, _ = w.Write([]byte(`{"id":"ch_1"}`))
	}))
	defer srv.Close()

	charge := func(ctx context.Context, key provider.Secret, path string) (string, error) {
		var out struct{ ID string }
		_, err := api.Do(ctx, httpapi.Request{
			Op: "create charge", Method: http.MethodPost, URL: srv.URL + path,
			Header:  http.Header{"Authorization": {"Bearer " + key.Reveal()}},
			JSON:    map[string]any{"amount": 1000, "currency": "CLP"},
			Secrets: []string{key.Reveal()},
		}, &out, refuse)
		return out.ID, err
	}

	ctx := context.Background()
	id, err := charge(ctx, provider.NewSecret("sk_test_123456"), "/v1/charges")
	fmt.Println(id, err)
	_, err = charge(ctx, provider.NewSecret("sk_test_123456"), "/v1/declined")
	fmt.Println(provider.KindOf(err), provider.CodeOf(err), httpapi.StatusOf(err))
	fmt.Println(err)
	_, err = charge(ctx, provider.NewSecret("sk_wrong_key"), "/v1/charges")
	fmt.Println(provider.KindOf(err), err)
	// Output:
	// ch_1 <nil>
	// permanent card_declined 402
	// acme: create charge: HTTP 402: The card was declined.
	// unauthorized acme: create charge: HTTP 401
}
