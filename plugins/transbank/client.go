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

	"github.com/pipecore/pipecore/sdk/provider"
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
	// httpTimeout bounds a single call when the caller's context has no
	// earlier deadline.
	httpTimeout = 30 * time.Second
	// maxResponse bounds how much of a response body is read.
	maxResponse = 1 << 20
	// maxCode bounds the Transbank error message kept as an error code.
	maxCode = 128
)

// httpClient is shared by every tenant: it holds connections, never
// credentials.
var httpClient = &http.Client{Timeout: httpTimeout}

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
	if raw := strings.TrimSpace(t.Setting(provider.BaseURLField)); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, provider.Invalid(fmt.Errorf("transbank: %s %q must be an http(s) URL without query", provider.BaseURLField, raw))
		}
		host = strings.TrimSuffix(u.String(), "/")
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
// classified (see classify) and logged without secrets.
func (c *client) do(ctx context.Context, op, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return provider.Invalid(fmt.Errorf("transbank: %s: encode request: %w", op, err))
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+basePath+path, body)
	if err != nil {
		return provider.Invalid(fmt.Errorf("transbank: %s: %w", op, err))
	}
	req.Header.Set("Tbk-Api-Key-Id", c.commerceCode)
	req.Header.Set("Tbk-Api-Key-Secret", c.secret.Reveal())
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")

	resp, err := httpClient.Do(req)
	if err != nil {
		return c.fail(ctx, op, 0, transportError(op, err, c.secret.Reveal()))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return c.fail(ctx, op, resp.StatusCode, transportError(op, err, c.secret.Reveal()))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.fail(ctx, op, resp.StatusCode, classify(op, resp, data, c.secret.Reveal()))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return c.fail(ctx, op, resp.StatusCode, provider.Retryable(fmt.Errorf("transbank: %s: malformed response: %v", op, redact(err.Error(), c.secret.Reveal()))))
	}
	return nil
}

// fail logs a classified failure (never the secret) and returns it.
func (c *client) fail(ctx context.Context, op string, status int, err error) error {
	attrs := []any{"op", op, "kind", provider.KindOf(err).String(), "environment", c.env, "commerce_code", c.commerceCode}
	if status != 0 {
		attrs = append(attrs, "status", status)
	}
	if code := provider.CodeOf(err); code != "" {
		attrs = append(attrs, "code", code)
	}
	provider.Log(ctx).Info("transbank call failed", attrs...)
	return err
}

// classify turns a non-2xx answer to operation op into a classified error
// whose message reads "transbank: <op>: <reason>" and never contains
// secret:
//
//   - 401, 403: KindUnauthorized, with a fixed message
//   - 429: KindRateLimited, honouring Retry-After in seconds
//   - 5xx: KindRetryable
//   - 400, 404, 422 and any other 4xx: KindInvalid, Code = Transbank's
//     error_message
func classify(op string, resp *http.Response, body []byte, secret string) error {
	status := resp.StatusCode
	if status == http.StatusUnauthorized || status == http.StatusForbidden {
		return provider.Unauthorized(fmt.Errorf("transbank: %s: API key rejected (HTTP %d)", op, status))
	}
	var eb errorBody
	_ = json.Unmarshal(body, &eb) // a non-JSON body leaves the message empty
	reason := redact(strings.TrimSpace(eb.ErrorMessage), secret)
	msg := fmt.Sprintf("transbank: %s: HTTP %d", op, status)
	if reason != "" {
		msg += ": " + reason
	}
	e := &statusError{status: status, msg: msg}
	out := provider.FromHTTPStatus(status, provider.RetryAfterHeader(resp.Header), e)
	if reason != "" {
		if len(reason) > maxCode {
			reason = reason[:maxCode]
		}
		out = provider.WithCode(out, reason)
	}
	return out
}

// transportError classifies a failure to get an answer: always retryable,
// still wrapping the cause, so errors.Is(err, context.DeadlineExceeded)
// holds for an expired context and for network timeouts.
func transportError(op string, err error, secret string) error {
	var ne net.Error
	timeout := errors.As(err, &ne) && ne.Timeout()
	return provider.Retryable(&callError{
		msg:     redact(fmt.Sprintf("transbank: %s: %v", op, err), secret),
		err:     err,
		timeout: timeout,
	})
}

// statusError is a non-2xx answer's redacted message with its HTTP status.
type statusError struct {
	status int
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
// provider.IsTimeout treats "Transbank did not answer in time" like an
// expired context.
func (e *callError) Is(target error) bool {
	return e.timeout && target == context.DeadlineExceeded
}

// minSecretLen is the shortest secret redact removes verbatim; shorter
// values would mangle ordinary words and no real key is that short.
const minSecretLen = 8

// redact removes secret from s.
func redact(s, secret string) string {
	if len(secret) >= minSecretLen {
		s = strings.ReplaceAll(s, secret, "[redacted]")
	}
	return s
}
