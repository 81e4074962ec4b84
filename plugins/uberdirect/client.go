package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
)

const (
	// httpTimeout bounds a single HTTP exchange when the caller's context
	// has no earlier deadline; it also bounds a shared token refresh.
	httpTimeout = 30 * time.Second
	// maxResponse bounds how much of a response body is read.
	maxResponse = 4 << 20
	// maxCode bounds a provider code or message kept in an error.
	maxCode = 200
)

// httpClient is shared by every tenant: it holds connections, never
// credentials.
var httpClient = &http.Client{Timeout: httpTimeout}

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
		u, err := checkURL(provider.BaseURLField, base)
		if err != nil {
			return config{}, err
		}
		c.baseURL = u
		c.authURL = u + tokenPath
	}
	if raw := strings.TrimSpace(t.Setting(fieldAuthURL)); raw != "" {
		u, err := checkURL(fieldAuthURL, raw)
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

func checkURL(field, raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", provider.Invalid(fmt.Errorf("uberdirect: %s %q must be an http(s) URL without query or user info", field, clip(raw)))
	}
	return strings.TrimSuffix(u.String(), "/"), nil
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

// apiURL returns the URL of path under the tenant's customer.
func (c *client) apiURL(path string, query url.Values) string {
	u := c.cfg.baseURL + customerPrefix + url.PathEscape(c.cfg.customerID) + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	return u
}

// call sends one API request: method on the customer's path, with body
// (nil sends none) as JSON, and decodes a 2xx answer into out (nil
// ignores it). A 401 makes it refresh the token once (shared with
// concurrent callers) and send the request once more. Failures come back
// classified (see classify) and logged without secrets.
func (c *client) call(ctx context.Context, op, method, path string, query url.Values, body []byte, out any) error {
	token, err := c.tokens.get(ctx, c.key, c.fetchToken, "")
	if err != nil {
		return c.fail(ctx, op, 0, err)
	}
	status, header, data, err := c.send(ctx, op, method, c.apiURL(path, query), body, token)
	if err == nil && status == http.StatusUnauthorized {
		provider.Log(ctx).Debug("uberdirect token rejected; refreshing", "op", op)
		token, err = c.tokens.get(ctx, c.key, c.fetchToken, token)
		if err != nil {
			return c.fail(ctx, op, 0, err)
		}
		status, header, data, err = c.send(ctx, op, method, c.apiURL(path, query), body, token)
	}
	if err != nil {
		return c.fail(ctx, op, 0, err)
	}
	if status < 200 || status > 299 {
		return c.fail(ctx, op, status, classify(op, status, header, data, c.secrets(token)...))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return c.fail(ctx, op, status, provider.Retryable(fmt.Errorf("uberdirect: %s: malformed response: %v", op, err)))
	}
	return nil
}

// send performs one HTTP exchange. Only transport failures are errors.
func (c *client) send(ctx context.Context, op, method, u string, body []byte, token string) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, nil, provider.Invalid(fmt.Errorf("uberdirect: %s: %w", op, err))
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, nil, transportError(op, err, c.secrets(token)...)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return 0, nil, nil, transportError(op, err, c.secrets(token)...)
	}
	return resp.StatusCode, resp.Header, data, nil
}

// fetchToken runs the client-credentials grant and returns the token and
// its lifetime.
func (c *client) fetchToken(ctx context.Context) (string, time.Duration, error) {
	const op = "token"
	form := url.Values{
		formClientID:     {c.cfg.clientID.Reveal()},
		formClientSecret: {c.cfg.clientSecret.Reveal()},
		formGrantType:    {grantClientCreds},
		formScope:        {scopeDeliveries},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.authURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, provider.Invalid(fmt.Errorf("uberdirect: %s: %w", op, err))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return "", 0, transportError(op, err, c.secrets("")...)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return "", 0, transportError(op, err, c.secrets("")...)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", 0, classifyToken(resp.StatusCode, resp.Header, data, c.secrets("")...)
	}
	var tr tokenResponse
	if err := json.Unmarshal(data, &tr); err != nil || tr.AccessToken == "" {
		return "", 0, provider.Retryable(fmt.Errorf("uberdirect: %s: malformed token response", op))
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
	attrs := []any{"op", op, "kind", provider.KindOf(err).String(), "customer_id", c.cfg.customerID}
	if status != 0 {
		attrs = append(attrs, "status", status)
	}
	if code := provider.CodeOf(err); code != "" {
		attrs = append(attrs, "code", code)
	}
	provider.Log(ctx).Info("uberdirect call failed", attrs...)
	return err
}

// classify turns a non-2xx API answer to operation op into a classified
// error whose message reads "uberdirect: <op>: HTTP <status>: <code>:
// <message>" and carries Uber's code:
//
//   - 401, 403: KindUnauthorized (401 only after one token refresh)
//   - 402 (customer_suspended, missing_payment): KindPermanent
//   - 400 noncancelable_delivery: KindPermanent
//   - 408 request_timeout, 5xx: KindRetryable (the outcome is unknown)
//   - 429 customer_limited: KindRateLimited, honouring Retry-After
//   - other 4xx: KindInvalid
func classify(op string, status int, header http.Header, body []byte, secrets ...string) error {
	var ae apiError
	_ = json.Unmarshal(body, &ae) // a non-JSON body leaves code and message empty
	code := clip(redact(strings.TrimSpace(ae.Code), secrets...))
	message := clip(redact(strings.TrimSpace(ae.Message), secrets...))
	msg := fmt.Sprintf("uberdirect: %s: HTTP %d", op, status)
	if code != "" {
		msg += ": " + code
	}
	if message != "" {
		msg += ": " + message
	}
	se := &statusError{status: status, code: code, msg: msg}
	if id, ok := ae.Metadata["delivery_id"].(string); ok {
		se.deliveryID = id
	}
	var out error
	switch {
	case status == http.StatusPaymentRequired:
		out = provider.Permanent(se)
	case status == http.StatusBadRequest && code == codeNoncancelable:
		out = provider.Permanent(se)
	case status == http.StatusRequestTimeout || code == codeRequestTimeout:
		out = provider.Retryable(se)
	default:
		out = provider.FromHTTPStatus(status, provider.RetryAfterHeader(header), se)
	}
	if code != "" {
		out = provider.WithCode(out, code)
	}
	return out
}

// classifyToken classifies a non-2xx token answer: 429 is rate limited,
// 5xx retryable, and any other refusal (invalid_client, invalid_scope...)
// means the credentials cannot be used: KindUnauthorized.
func classifyToken(status int, header http.Header, body []byte, secrets ...string) error {
	var oe oauthError
	_ = json.Unmarshal(body, &oe)
	code := clip(redact(strings.TrimSpace(oe.Error), secrets...))
	msg := fmt.Sprintf("uberdirect: token: HTTP %d", status)
	if code != "" {
		msg += ": " + code
	}
	se := &statusError{status: status, code: code, msg: msg}
	var out error
	switch {
	case status == http.StatusTooManyRequests:
		out = provider.RateLimited(se, provider.RetryAfterHeader(header))
	case status >= 500:
		out = provider.Retryable(se)
	default:
		out = provider.Unauthorized(se)
	}
	if code != "" {
		out = provider.WithCode(out, code)
	}
	return out
}

// transportError classifies a failure to get an answer: always retryable,
// still wrapping the cause, so errors.Is(err, context.DeadlineExceeded)
// holds for an expired context and for network timeouts.
func transportError(op string, err error, secrets ...string) error {
	var ne net.Error
	timeout := errors.As(err, &ne) && ne.Timeout()
	return provider.Retryable(&callError{
		msg:     redact(fmt.Sprintf("uberdirect: %s: %v", op, err), secrets...),
		err:     err,
		timeout: timeout,
	})
}

// statusError is a non-2xx answer: its redacted message, HTTP status,
// Uber's code and, for duplicate_delivery, the existing delivery's id.
type statusError struct {
	status     int
	code       string
	msg        string
	deliveryID string
}

func (e *statusError) Error() string { return e.msg }

// callError is a transport failure's redacted message with its cause.
type callError struct {
	msg     string
	err     error
	timeout bool
}

func (e *callError) Error() string { return e.msg }
func (e *callError) Unwrap() error { return e.err }

// Is makes a network timeout match context.DeadlineExceeded, so
// provider.IsTimeout treats "Uber did not answer in time" like an expired
// context.
func (e *callError) Is(target error) bool {
	return e.timeout && target == context.DeadlineExceeded
}

// ambiguous reports whether err leaves unknown whether Uber acted on the
// request: no answer, a 5xx or a 408.
func ambiguous(err error) bool {
	var ce *callError
	if errors.As(err, &ce) {
		return true
	}
	var se *statusError
	return errors.As(err, &se) && (se.status >= 500 || se.status == http.StatusRequestTimeout || se.code == codeRequestTimeout)
}

// apiStatus returns the HTTP status and Uber code of an API refusal.
func apiStatus(err error) (*statusError, bool) {
	var se *statusError
	ok := errors.As(err, &se)
	return se, ok
}

// minSecretLen is the shortest secret redact removes verbatim; shorter
// values would mangle ordinary words.
const minSecretLen = 6

// redact removes every secret from s.
func redact(s string, secrets ...string) string {
	for _, v := range secrets {
		if len(v) >= minSecretLen {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
	}
	return s
}

// clip bounds s, a provider-supplied string kept in errors and logs.
func clip(s string) string {
	if len(s) <= maxCode {
		return s
	}
	cut := maxCode
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
