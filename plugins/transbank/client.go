package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/provider/httpapi"
)

// Webpay Plus hosts, one per environment. They are the only place the hosts
// are spelled out.
const (
	integrationHost = "https://webpay3gint.transbank.cl"
	productionHost  = "https://webpay3g.transbank.cl"
)

// The environments the environment setting accepts.
const (
	envIntegration = "integration"
	envProduction  = "production"
)

// Transbank's public integration credentials (providers.md §3.1, from the
// official Node SDK): the Webpay Plus test commerce code and the API key
// shared by every integration commerce code. They are used only in the
// integration environment, when the tenant leaves the fields empty; they
// cannot move real money.
const (
	integrationCommerceCode = "597055555532"
	integrationAPIKey       = "579B532A7440BB0C9079DED94D31EA1615BACEB56610332264630D42D0A36B1C"
)

const (
	// basePath prefixes every Webpay Plus transaction endpoint.
	basePath = "/rswebpaytransaction/api/webpay/v1.2"
	// maxCode bounds the Transbank error message kept as an error code.
	maxCode = 128
)

// api sends the plugin's calls: errors read "transbank: <op>: ...", and
// failures are logged as "transbank call failed".
var api = &httpapi.Client{Name: "transbank"}

// client is the Webpay Plus API bound to one tenant's credentials for one
// call. It is built by newClient for every call and must not outlive it.
type client struct {
	base         string // scheme://host, no trailing slash
	env          string
	commerceCode string
	secret       provider.Secret
}

// newClient returns a client for tenant t. An unknown environment or a
// malformed base_url is KindInvalid. Missing credentials are
// KindUnauthorized in production; in integration they default to the
// public test commerce.
func newClient(t provider.Tenant) (*client, error) {
	env := strings.ToLower(strings.TrimSpace(t.Setting(fieldEnvironment)))
	var host string
	switch env {
	case "", envIntegration:
		env, host = envIntegration, integrationHost
	case envProduction:
		host = productionHost
	default:
		return nil, provider.Invalid(fmt.Errorf("transbank: %s %q must be %q or %q", fieldEnvironment, env, envIntegration, envProduction))
	}
	host, err := api.BaseURL(t, host)
	if err != nil {
		return nil, err
	}
	c := &client{
		base:         host,
		env:          env,
		commerceCode: strings.TrimSpace(t.Setting(fieldCommerceCode)),
		secret:       t.Secret(fieldAPIKeySecret),
	}
	if env == envIntegration {
		if c.commerceCode == "" {
			c.commerceCode = integrationCommerceCode
		}
		if c.secret.IsZero() {
			c.secret = provider.NewSecret(integrationAPIKey)
		}
	}
	if c.commerceCode == "" || c.secret.IsZero() {
		return nil, provider.Unauthorized(fmt.Errorf("transbank: tenant %s has no %s or %s for %s", t.ID(), fieldCommerceCode, fieldAPIKeySecret, env))
	}
	return c, nil
}

// errorBody is Transbank's error answer.
type errorBody struct {
	ErrorMessage string `json:"error_message"`
}

// do sends one call: method on basePath+path with in encoded as JSON (nil
// sends no body) and decodes a 2xx answer into out. Failures come back
// classified (see refuse) and logged without secrets.
func (c *client) do(ctx context.Context, op, method, path string, in, out any) error {
	_, err := api.Do(ctx, httpapi.Request{
		Op: op, Method: method, URL: c.base + basePath + path, JSON: in,
		Header: http.Header{
			"Tbk-Api-Key-Id":     {c.commerceCode},
			"Tbk-Api-Key-Secret": {c.secret.Reveal()},
			"Content-Type":       {"application/json"}, // on every call, as Transbank's SDKs send it
		},
		Secrets:  []string{c.secret.Reveal()},
		LogAttrs: c.logAttrs(),
	}, out, refuse)
	return err
}

// fail logs a classified failure (never the secret) and returns it.
func (c *client) fail(ctx context.Context, op string, status int, err error) error {
	return api.Fail(ctx, op, status, err, c.logAttrs()...)
}

func (c *client) logAttrs() []any {
	return []any{"environment", c.env, "commerce_code", c.commerceCode}
}

// refuse classifies a non-2xx answer; the message reads "transbank: <op>:
// <reason>" and never contains the secret:
//
//   - 401, 403: KindUnauthorized, with a fixed message
//   - 429: KindRateLimited, honouring Retry-After in seconds
//   - 5xx: KindRetryable
//   - 400, 404, 422 and any other 4xx: KindInvalid, Code = Transbank's
//     error_message
func refuse(resp *httpapi.Response) error {
	if resp.Status == http.StatusUnauthorized || resp.Status == http.StatusForbidden {
		return provider.Unauthorized(fmt.Errorf("transbank: %s: API key rejected (HTTP %d)", resp.Request.Op, resp.Status))
	}
	var eb errorBody
	_ = json.Unmarshal(resp.Body, &eb) // a non-JSON body leaves the message empty
	reason := resp.Request.Redact(strings.TrimSpace(eb.ErrorMessage))
	return api.Refuse(resp, httpapi.Refusal{Message: reason, Code: httpapi.Clip(reason, maxCode)})
}
