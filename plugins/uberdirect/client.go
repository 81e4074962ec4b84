package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/provider/httpapi"
)

const (
	// httpTimeout bounds a single HTTP exchange when the caller's context
	// has no earlier deadline; it also bounds a shared token refresh.
	httpTimeout = httpapi.DefaultTimeout
	// maxCode bounds a provider code or message kept in an error.
	maxCode = 200
)

// api sends the plugin's calls: errors read "uberdirect: <op>: ...", and
// failures are logged as "uberdirect call failed".
var api = &httpapi.Client{Name: "uberdirect", MaxResponse: 4 << 20}

// config is one tenant's Uber Direct configuration for one call.
type config struct {
	tenant       string
	baseURL      string // scheme://host, no trailing slash
	authURL      string
	customerID   string
	clientID     provider.Secret
	clientSecret provider.Secret
}

// newConfig reads tenant t. Missing OAuth credentials are
// KindUnauthorized; a missing customer_id or a malformed URL is
// KindInvalid. The gateway validates required fields before calling, so
// these are defensive.
func newConfig(t provider.Tenant) (config, error) {
	c := config{
		tenant:       t.ID(),
		baseURL:      defaultBaseURL,
		authURL:      defaultAuthURL,
		customerID:   strings.TrimSpace(t.Setting(fieldCustomerID)),
		clientID:     t.Secret(fieldClientID),
		clientSecret: t.Secret(fieldClientSecret),
	}
	base := strings.TrimSpace(t.Setting(provider.BaseURLField))
	if base != "" {
		u, err := api.ParseURL(provider.BaseURLField, base)
		if err != nil {
			return config{}, err
		}
		c.baseURL = u
		c.authURL = u + tokenPath
	}
	if raw := strings.TrimSpace(t.Setting(fieldAuthURL)); raw != "" {
		u, err := api.ParseURL(fieldAuthURL, raw)
		if err != nil {
			return config{}, err
		}
		c.authURL = u
	}
	if c.customerID == "" {
		return config{}, provider.Invalid(fmt.Errorf("uberdirect: tenant %s has no %s", t.ID(), fieldCustomerID))
	}
	if c.clientID.IsZero() || c.clientSecret.IsZero() {
		return config{}, provider.Unauthorized(fmt.Errorf("uberdirect: tenant %s has no %s or %s", t.ID(), fieldClientID, fieldClientSecret))
	}
	return c, nil
}

// client is the Uber Direct API bound to one tenant for one call. It must
// not outlive the call; the token cache it uses is the provider's.
type client struct {
	cfg    config
	tokens *tokenCache
	key    tokenKey
}

func (p *uberDirect) client(t provider.Tenant) (*client, error) {
	cfg, err := newConfig(t)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(cfg.clientSecret.Reveal()))
	return &client{cfg: cfg, tokens: p.tokens, key: tokenKey{
		tenant:     cfg.tenant,
		clientID:   cfg.clientID.Reveal(),
		authURL:    cfg.authURL,
		secretHash: hex.EncodeToString(sum[:8]),
	}}, nil
}

// call sends one API request: method on the customer's path, with body
// (nil sends none) as JSON, and decodes a 2xx answer into out (nil
// ignores it). A 401 makes it refresh the token once (shared with
// concurrent callers) and send the request once more. Failures come back
// classified (see refuse) and logged without secrets.
func (c *client) call(ctx context.Context, op, method, path string, query url.Values, body []byte, out any) error {
	token, err := c.tokens.get(ctx, c.key, c.fetchToken, "")
	if err != nil {
		return c.fail(ctx, op, 0, err)
	}
	req := httpapi.Request{
		Op: op, Method: method, Query: query, Body: body,
		URL:      c.cfg.baseURL + customerPrefix + url.PathEscape(c.cfg.customerID) + path,
		Header:   http.Header{"Authorization": {"Bearer " + token}},
		Secrets:  c.secrets(token),
		LogAttrs: c.logAttrs(),
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := api.Send(ctx, req)
	if err == nil && resp.Status == http.StatusUnauthorized {
		provider.Log(ctx).Debug("uberdirect token rejected; refreshing", "op", op)
		token, err = c.tokens.get(ctx, c.key, c.fetchToken, token)
		if err != nil {
			return c.fail(ctx, op, 0, err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Secrets = c.secrets(token)
		resp, err = api.Send(ctx, req)
	}
	if err != nil {
		return c.fail(ctx, op, 0, err)
	}
	return api.Decode(ctx, resp, out, refuse)
}

// fetchToken runs the client-credentials grant and returns the token and
// its lifetime.
func (c *client) fetchToken(ctx context.Context) (string, time.Duration, error) {
	resp, err := api.Send(ctx, httpapi.Request{
		Op: "token", Method: http.MethodPost, URL: c.cfg.authURL,
		Form: url.Values{
			formClientID:     {c.cfg.clientID.Reveal()},
			formClientSecret: {c.cfg.clientSecret.Reveal()},
			formGrantType:    {grantClientCreds},
			formScope:        {scopeDeliveries},
		},
		Secrets: c.secrets(""),
	})
	if err != nil {
		return "", 0, err
	}
	if !resp.OK() {
		return "", 0, refuseToken(resp)
	}
	var tr tokenResponse
	if err := json.Unmarshal(resp.Body, &tr); err != nil || tr.AccessToken == "" {
		return "", 0, provider.Retryable(errors.New("uberdirect: token: malformed token response"))
	}
	ttl := time.Duration(tr.ExpiresIn) * time.Second
	if ttl <= 0 {
		ttl = defaultTokenTTL
	}
	return tr.AccessToken, ttl, nil
}

// secrets lists the values no message may contain.
func (c *client) secrets(token string) []string {
	return []string{c.cfg.clientSecret.Reveal(), c.cfg.clientID.Reveal(), token}
}

// fail logs a classified failure (never a secret) and returns it.
func (c *client) fail(ctx context.Context, op string, status int, err error) error {
	return api.Fail(ctx, op, status, err, c.logAttrs()...)
}

func (c *client) logAttrs() []any { return []any{"customer_id", c.cfg.customerID} }

// refuse classifies a non-2xx API answer; the message reads "uberdirect:
// <op>: HTTP <status>: <code>: <message>" and the error carries Uber's
// code:
//
//   - 401, 403: KindUnauthorized (401 only after one token refresh)
//   - 402 (customer_suspended, missing_payment): KindPermanent
//   - 400 noncancelable_delivery: KindPermanent
//   - 408 request_timeout, 5xx: KindRetryable (the outcome is unknown)
//   - 429 customer_limited: KindRateLimited, honouring Retry-After
//   - other 4xx: KindInvalid
func refuse(resp *httpapi.Response) error {
	var ae apiError
	_ = json.Unmarshal(resp.Body, &ae) // a non-JSON body leaves code and message empty
	code := clip(resp.Request.Redact(strings.TrimSpace(ae.Code)))
	message := clip(resp.Request.Redact(strings.TrimSpace(ae.Message)))
	r := httpapi.Refusal{Code: code, Message: joinNonEmpty(code, message)}
	if id, ok := ae.Metadata["delivery_id"].(string); ok {
		r.Data = id
	}
	switch {
	case resp.Status == http.StatusPaymentRequired:
		r.Kind = provider.KindPermanent
	case resp.Status == http.StatusBadRequest && code == codeNoncancelable:
		r.Kind = provider.KindPermanent
	case resp.Status == http.StatusRequestTimeout || code == codeRequestTimeout:
		r.Kind = provider.KindRetryable
	}
	return api.Refuse(resp, r)
}

// refuseToken classifies a non-2xx token answer: 429 is rate limited,
// 5xx retryable, and any other refusal (invalid_client, invalid_scope...)
// means the credentials cannot be used: KindUnauthorized.
func refuseToken(resp *httpapi.Response) error {
	var oe oauthError
	_ = json.Unmarshal(resp.Body, &oe)
	code := clip(resp.Request.Redact(strings.TrimSpace(oe.Error)))
	r := httpapi.Refusal{Code: code, Message: code, Kind: provider.KindUnauthorized}
	switch {
	case resp.Status == http.StatusTooManyRequests:
		r.Kind = provider.KindRateLimited
	case resp.Status >= 500:
		r.Kind = provider.KindRetryable
	}
	return api.Refuse(resp, r)
}

// joinNonEmpty joins the non-empty parts with ": ".
func joinNonEmpty(parts ...string) string {
	kept := parts[:0:0]
	for _, p := range parts {
		if p != "" {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, ": ")
}

// refusal is what Uber answered to a refused call.
type refusal struct {
	status     int
	code       string
	deliveryID string // for duplicate_delivery, the delivery that exists
}

// apiStatus returns the HTTP status, Uber code and duplicate delivery id
// of an API refusal; false when err is not one.
func apiStatus(err error) (refusal, bool) {
	var se *httpapi.StatusError
	if !errors.As(err, &se) {
		return refusal{}, false
	}
	id, _ := se.Data.(string)
	return refusal{status: se.Status, code: se.Code, deliveryID: id}, true
}

// ambiguous reports whether err leaves unknown whether Uber acted on the
// request: no answer, a 5xx or a 408.
func ambiguous(err error) bool {
	if httpapi.NoAnswer(err) {
		return true
	}
	se, ok := apiStatus(err)
	return ok && (se.status >= 500 || se.status == http.StatusRequestTimeout || se.code == codeRequestTimeout)
}

// clip bounds s, a provider-supplied string kept in errors and logs.
func clip(s string) string { return httpapi.Clip(s, maxCode) }
