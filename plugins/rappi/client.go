package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pipecore/pipecore/plugins/rappi/internal/wire"
	"github.com/pipecore/pipecore/sdk/provider"
)

const (
	// httpTimeout bounds a single call when the caller's context has no
	// earlier deadline.
	httpTimeout = 30 * time.Second
	// maxResponse bounds how much of a response body is read.
	maxResponse = 1 << 20
	// maxCode bounds the Rappi message kept as an error code.
	maxCode = 128
)

// httpClient is shared by every tenant: it holds connections, never
// credentials.
var httpClient = &http.Client{Timeout: httpTimeout}

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
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return nil, provider.Invalid(fmt.Errorf("rappi: %s %q must be an http(s) URL without credentials or query", provider.BaseURLField, raw))
		}
		host = strings.TrimSuffix(u.String(), "/")
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
// classify) and logged without secrets.
func (c *client) call(ctx context.Context, op, method, path, idemKey string, in, out any) error {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return provider.Invalid(fmt.Errorf("rappi: %s: encode request: %w", op, err))
		}
		body = b
	}
	for attempt := 0; ; attempt++ {
		tok, err := c.token(ctx)
		if err != nil {
			return err
		}
		status, err := c.send(ctx, op, method, path, tok, idemKey, body, out)
		if status == http.StatusUnauthorized && attempt == 0 {
			// The token was revoked or expired early: mint a new one once.
			c.tokens.drop(c.cacheKey(), tok)
			provider.Log(ctx).Info("rappi token rejected, refreshing", "op", op)
			continue
		}
		return err
	}
}

// send performs one HTTP exchange with token tok and returns the HTTP
// status (0 when none arrived) and the classified error.
func (c *client) send(ctx context.Context, op, method, path string, tok provider.Secret, idemKey string, body []byte, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, provider.Invalid(fmt.Errorf("rappi: %s: %w", op, err))
	}
	req.Header.Set(wire.AuthHeader, wire.AuthScheme+" "+tok.Reveal())
	req.Header.Set("Accept", wire.ContentType)
	if body != nil {
		req.Header.Set("Content-Type", wire.ContentType)
	}
	if idemKey != "" {
		req.Header.Set(wire.IdempotencyHeader, idemKey)
	}
	secrets := []string{tok.Reveal(), c.id.Reveal(), c.secret.Reveal()}
	status, data, err := roundTrip(req, op, secrets)
	if err != nil {
		return status, c.fail(ctx, op, status, err)
	}
	if out == nil {
		return status, nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return status, c.fail(ctx, op, status, provider.Retryable(fmt.Errorf("rappi: %s: malformed response: %v", op, redact(err.Error(), secrets))))
	}
	return status, nil
}

// roundTrip sends req and reads at most maxResponse bytes of the answer.
// It returns the HTTP status (0 when none arrived), the body, and a
// classified error for a transport failure or a non-2xx answer.
func roundTrip(req *http.Request, op string, secrets []string) (int, []byte, error) {
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, transportError(op, err, secrets)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return resp.StatusCode, nil, transportError(op, err, secrets)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, data, classify(op, resp.StatusCode, provider.RetryAfterHeader(resp.Header), data, secrets)
	}
	return resp.StatusCode, data, nil
}

// fail logs a classified failure (never a secret) and returns it.
func (c *client) fail(ctx context.Context, op string, status int, err error) error {
	attrs := []any{"op", op, "kind", provider.KindOf(err).String(), "country", c.country}
	if status != 0 {
		attrs = append(attrs, "status", status)
	}
	if code := provider.CodeOf(err); code != "" {
		attrs = append(attrs, "code", code)
	}
	provider.Log(ctx).Info("rappi call failed", attrs...)
	return err
}

// classify turns a non-2xx answer to operation op into a classified error
// whose message reads "rappi: <op>: HTTP <status>: <message>" and never
// contains a secret:
//
//   - 401, 403: KindUnauthorized
//   - 409 cancel_not_allowed: KindPermanent (Rappi refuses for good)
//   - 429: KindRateLimited, honouring Retry-After in seconds
//   - other 4xx: KindInvalid
//   - 5xx: KindRetryable
//
// Code is Rappi's error code when it gave one.
func classify(op string, status int, retryAfter time.Duration, body []byte, secrets []string) error {
	var eb wire.ErrorBody
	_ = json.Unmarshal(body, &eb) // a non-JSON body leaves both empty
	reason := redact(strings.TrimSpace(eb.Message), secrets)
	code := redact(strings.TrimSpace(eb.Code), secrets)
	if len(code) > maxCode {
		code = code[:maxCode]
	}
	msg := fmt.Sprintf("rappi: %s: HTTP %d", op, status)
	if reason != "" {
		msg += ": " + reason
	}
	e := &statusError{status: status, code: code, msg: msg}
	var out error
	if status == http.StatusConflict && code == wire.CodeCancelNotAllowed {
		out = provider.Permanent(e)
	} else {
		out = provider.FromHTTPStatus(status, retryAfter, e)
	}
	if code != "" {
		out = provider.WithCode(out, code)
	}
	return out
}

// transportError classifies a failure to get an answer: always retryable,
// still wrapping the cause, so errors.Is(err, context.DeadlineExceeded)
// holds for an expired context and for network timeouts.
func transportError(op string, err error, secrets []string) error {
	var ne net.Error
	timeout := errors.As(err, &ne) && ne.Timeout()
	return provider.Retryable(&callError{
		msg:     redact(fmt.Sprintf("rappi: %s: %v", op, err), secrets),
		err:     err,
		timeout: timeout,
	})
}

// statusError is a non-2xx answer's redacted message with its HTTP status
// and Rappi's code.
type statusError struct {
	status int
	code   string
	msg    string
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
// provider.IsTimeout treats "Rappi did not answer in time" like an expired
// context.
func (e *callError) Is(target error) bool {
	return e.timeout && target == context.DeadlineExceeded
}

// minSecretLen is the shortest secret redact removes verbatim; shorter
// values would mangle ordinary words and no real credential is that short.
const minSecretLen = 4

// redact removes every secret from s.
func redact(s string, secrets []string) string {
	for _, secret := range secrets {
		if len(secret) >= minSecretLen {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}
