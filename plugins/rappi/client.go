package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/pipecore/pipecore/plugins/rappi/internal/wire"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/provider/httpapi"
)

// maxCode bounds the Rappi code kept as an error code.
const maxCode = 128

// api sends the plugin's calls: errors read "rappi: <op>: ...", and
// failures are logged as "rappi call failed".
var api = &httpapi.Client{Name: "rappi"}

// client is Rappi's API bound to one tenant's credentials for one call.
// It is built by newClient for every call and must not outlive it.
type client struct {
	tokens   *tokenCache
	tenantID string
	base     string // scheme://host[/prefix], no trailing slash
	country  string
	id       provider.Secret
	secret   provider.Secret
}

// newClient returns a client for tenant t. An unknown country or a
// malformed base_url is KindInvalid; missing credentials are
// KindUnauthorized. Nothing is sent.
func (p *rappiProvider) newClient(t provider.Tenant) (*client, error) {
	country := strings.ToUpper(strings.TrimSpace(t.Setting(fieldCountry)))
	if country == "" {
		country = wire.DefaultCountry
	}
	host, known := wire.CountryHosts[country]
	if raw := strings.TrimSpace(t.Setting(provider.BaseURLField)); raw != "" {
		u, err := api.ParseURL(provider.BaseURLField, raw)
		if err != nil {
			return nil, err
		}
		host = u
	} else if !known {
		return nil, provider.Invalid(fmt.Errorf("rappi: %s %q has no known Rappi host; set %s", fieldCountry, country, provider.BaseURLField))
	}
	c := &client{
		tokens:   p.tokens,
		tenantID: t.ID(),
		base:     host,
		country:  country,
		id:       t.Secret(fieldClientID),
		secret:   t.Secret(fieldClientSecret),
	}
	if c.id.IsZero() || c.secret.IsZero() {
		return nil, provider.Unauthorized(fmt.Errorf("rappi: tenant %s has no %s or %s", t.ID(), fieldClientID, fieldClientSecret))
	}
	return c, nil
}

// call sends one authenticated API call: method on path with in encoded
// as JSON (nil sends no body) and, when idemKey is set, the
// Idempotency-Key header; a 2xx answer is decoded into out. A 401 drops
// the cached token and the call is sent once more with a fresh one; a
// second 401 is KindUnauthorized. Failures come back classified (see
// refuse) and logged without secrets.
func (c *client) call(ctx context.Context, op, method, path, idemKey string, in, out any) error {
	for attempt := 0; ; attempt++ {
		tok, err := c.token(ctx)
		if err != nil {
			return err
		}
		req := httpapi.Request{
			Op: op, Method: method, URL: c.base + path, JSON: in,
			Header:   http.Header{wire.AuthHeader: {wire.AuthScheme + " " + tok.Reveal()}},
			Secrets:  []string{tok.Reveal(), c.id.Reveal(), c.secret.Reveal()},
			LogAttrs: c.logAttrs(),
		}
		if idemKey != "" {
			req.Header.Set(wire.IdempotencyHeader, idemKey)
		}
		resp, err := api.Do(ctx, req, out, refuse)
		if resp != nil && resp.Status == http.StatusUnauthorized && attempt == 0 {
			// The token was revoked or expired early: mint a new one once.
			c.tokens.drop(c.cacheKey(), tok)
			provider.Log(ctx).Info("rappi token rejected, refreshing", "op", op)
			continue
		}
		return err
	}
}

// fail logs a classified failure (never a secret) and returns it.
func (c *client) fail(ctx context.Context, op string, status int, err error) error {
	return api.Fail(ctx, op, status, err, c.logAttrs()...)
}

func (c *client) logAttrs() []any { return []any{"country", c.country} }

// refuse classifies a non-2xx answer; the message reads "rappi: <op>: HTTP
// <status>: <message>" and never contains a secret:
//
//   - 401, 403: KindUnauthorized
//   - 409 cancel_not_allowed: KindPermanent (Rappi refuses for good)
//   - 429: KindRateLimited, honouring Retry-After in seconds
//   - other 4xx: KindInvalid
//   - 5xx: KindRetryable
//
// Code is Rappi's error code when it gave one.
func refuse(resp *httpapi.Response) error {
	var eb wire.ErrorBody
	_ = json.Unmarshal(resp.Body, &eb) // a non-JSON body leaves both empty
	r := httpapi.Refusal{
		Message: resp.Request.Redact(strings.TrimSpace(eb.Message)),
		Code:    httpapi.Clip(resp.Request.Redact(strings.TrimSpace(eb.Code)), maxCode),
	}
	if resp.Status == http.StatusConflict && r.Code == wire.CodeCancelNotAllowed {
		r.Kind = provider.KindPermanent
	}
	return api.Refuse(resp, r)
}
