package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/provider/httpapi"

	"github.com/pipecore/pipecore/plugins/pedidosya/internal/wire"
)

const (
	// maxCode bounds the PedidosYa error code kept as an error's code.
	maxCode = 128
	// maxMessage bounds the PedidosYa message quoted in an error.
	maxMessage = 300
)

// api sends the plugin's calls: errors read "pedidosya: <op>: ...", and
// failures are logged as "pedidosya call failed".
var api = &httpapi.Client{Name: "pedidosya"}

// client is the Courier API bound to one tenant's token for one call. It is
// built by newClient for every call and must not outlive it.
type client struct {
	base   string // scheme://host, no trailing slash
	token  provider.Secret
	isTest bool
}

// newClient returns a client for tenant t. A missing api_token is
// KindUnauthorized; a malformed base_url or is_test is KindInvalid.
func newClient(t provider.Tenant) (*client, error) {
	c := &client{token: t.Secret(fieldAPIToken)}
	base, err := api.BaseURL(t, wire.DefaultBaseURL)
	if err != nil {
		return nil, err
	}
	c.base = base
	switch v := strings.ToLower(strings.TrimSpace(t.Setting(fieldIsTest))); v {
	case "", "false":
	case "true":
		c.isTest = true
	default:
		return nil, provider.Invalid(fmt.Errorf("pedidosya: %s %q must be \"true\" or \"false\"", fieldIsTest, v))
	}
	if c.token.IsZero() {
		return nil, provider.Unauthorized(fmt.Errorf("pedidosya: tenant %s has no %s", t.ID(), fieldAPIToken))
	}
	return c, nil
}

// do sends one call: method on path (with query, may be nil) and in encoded
// as JSON (nil sends no body), and decodes a 2xx answer into out (nil
// ignores it; a *json.RawMessage receives it as is). Failures come back
// classified (see refuse) and logged without the token.
func (c *client) do(ctx context.Context, op, method, path string, query url.Values, in, out any) error {
	_, err := api.Do(ctx, httpapi.Request{
		Op: op, Method: method, URL: c.base + path, Query: query, JSON: in,
		Header:   http.Header{wire.HeaderAuthorization: {wire.AuthPrefix + c.token.Reveal()}},
		Secrets:  []string{c.token.Reveal()},
		LogAttrs: c.logAttrs(),
	}, out, refuse)
	return err
}

// fail logs a classified failure (never the token) and returns it.
func (c *client) fail(ctx context.Context, op string, status int, err error) error {
	return api.Fail(ctx, op, status, err, c.logAttrs()...)
}

func (c *client) logAttrs() []any { return []any{"is_test", c.isTest} }

// refuse classifies a non-2xx answer; the message reads "pedidosya: <op>:
// HTTP <status>: <message>" and never contains the token:
//
//   - 401, 403: KindUnauthorized, with a fixed message
//   - 429: KindRateLimited, honouring Retry-After in seconds
//   - 5xx: KindRetryable
//   - 400, 404, 409, 422 and any other 4xx: KindInvalid
//
// PedidosYa's error code, when it sent one, becomes the error's code.
// Callers refine the kind for their operation (a refused cancel is
// KindPermanent) with httpapi.StatusOf.
func refuse(resp *httpapi.Response) error {
	if resp.Status == http.StatusUnauthorized || resp.Status == http.StatusForbidden {
		return api.Refuse(resp, httpapi.Refusal{Message: "API token rejected"})
	}
	var eb wire.Error
	_ = json.Unmarshal(resp.Body, &eb) // a non-JSON body leaves the message empty
	return api.Refuse(resp, httpapi.Refusal{
		Message: httpapi.Clip(resp.Request.Redact(eb.Text()), maxMessage),
		Code:    httpapi.Clip(resp.Request.Redact(strings.TrimSpace(eb.Code)), maxCode),
	})
}
