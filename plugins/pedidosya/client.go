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

	"github.com/pipecore/pipecore/plugins/pedidosya/internal/wire"
)

const (
	// httpTimeout bounds a single call when the caller's context has no
	// earlier deadline.
	httpTimeout = 30 * time.Second
	// maxResponse bounds how much of a response body is read.
	maxResponse = 1 << 20
	// maxCode bounds the PedidosYa error code kept as an error's code.
	maxCode = 128
	// maxMessage bounds the PedidosYa message quoted in an error.
	maxMessage = 300
)

// httpClient is shared by every tenant: it holds connections, never
// credentials.
var httpClient = &http.Client{Timeout: httpTimeout}

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
	c := &client{base: wire.DefaultBaseURL, token: t.Secret(fieldAPIToken)}
	if raw := strings.TrimSpace(t.Setting(provider.BaseURLField)); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, provider.Invalid(fmt.Errorf("pedidosya: %s %q must be an http(s) URL without query", provider.BaseURLField, raw))
		}
		c.base = strings.TrimSuffix(u.String(), "/")
	}
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
// classified (see classify) and logged without the token.
func (c *client) do(ctx context.Context, op, method, path string, query url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return provider.Invalid(fmt.Errorf("pedidosya: %s: encode request: %w", op, err))
		}
		body = bytes.NewReader(b)
	}
	target := c.base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return provider.Invalid(fmt.Errorf("pedidosya: %s: %w", op, err))
	}
	req.Header.Set(wire.HeaderAuthorization, wire.AuthPrefix+c.token.Reveal())
	req.Header.Set("Accept", wire.ContentTypeJSON)
	if in != nil {
		req.Header.Set(wire.HeaderContentType, wire.ContentTypeJSON)
	}

	resp, err := httpClient.Do(req)
	if err != nil {
		return c.fail(ctx, op, 0, transportError(op, err, c.token.Reveal()))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return c.fail(ctx, op, resp.StatusCode, transportError(op, err, c.token.Reveal()))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.fail(ctx, op, resp.StatusCode, classify(op, resp, data, c.token.Reveal()))
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = append((*raw)[:0], data...)
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return c.fail(ctx, op, resp.StatusCode, provider.Retryable(fmt.Errorf("pedidosya: %s: malformed response: %v", op, redact(err.Error(), c.token.Reveal()))))
	}
	return nil
}

// fail logs a classified failure (never the token) and returns it.
func (c *client) fail(ctx context.Context, op string, status int, err error) error {
	attrs := []any{"op", op, "kind", provider.KindOf(err).String(), "is_test", c.isTest}
	if status != 0 {
		attrs = append(attrs, "status", status)
	}
	if code := provider.CodeOf(err); code != "" {
		attrs = append(attrs, "code", code)
	}
	provider.Log(ctx).Info("pedidosya call failed", attrs...)
	return err
}

// classify turns a non-2xx answer to operation op into a classified error
// whose message reads "pedidosya: <op>: HTTP <status>: <message>" and never
// contains the token:
//
//   - 401, 403: KindUnauthorized, with a fixed message
//   - 429: KindRateLimited, honouring Retry-After in seconds
//   - 5xx: KindRetryable
//   - 400, 404, 409, 422 and any other 4xx: KindInvalid
//
// PedidosYa's error code, when it sent one, becomes the error's code.
// Callers refine the kind for their operation (a refused cancel is
// KindPermanent) through the *statusError in the chain.
func classify(op string, resp *http.Response, body []byte, token string) error {
	status := resp.StatusCode
	if status == http.StatusUnauthorized || status == http.StatusForbidden {
		return provider.Unauthorized(&statusError{status: status, msg: fmt.Sprintf("pedidosya: %s: API token rejected (HTTP %d)", op, status)})
	}
	var eb wire.Error
	_ = json.Unmarshal(body, &eb) // a non-JSON body leaves the message empty
	reason := clip(redact(eb.Text(), token), maxMessage)
	code := clip(redact(strings.TrimSpace(eb.Code), token), maxCode)
	msg := fmt.Sprintf("pedidosya: %s: HTTP %d", op, status)
	if reason != "" {
		msg += ": " + reason
	}
	e := &statusError{status: status, code: code, reason: reason, msg: msg}
	out := provider.FromHTTPStatus(status, provider.RetryAfterHeader(resp.Header), e)
	if code != "" {
		out = provider.WithCode(out, code)
	}
	return out
}

// statusError is a non-2xx answer's redacted message with its HTTP status
// and PedidosYa's code and message.
type statusError struct {
	status int
	code   string
	reason string
	msg    string
}

func (e *statusError) Error() string { return e.msg }

// httpStatus returns the HTTP status of a non-2xx answer in err's chain, or
// 0 when err is not one (a transport failure, a malformed answer).
func httpStatus(err error) int {
	var se *statusError
	if errors.As(err, &se) {
		return se.status
	}
	return 0
}

// transportError classifies a failure to get an answer: always retryable,
// still wrapping the cause, so errors.Is(err, context.DeadlineExceeded)
// holds for an expired context and for network timeouts.
func transportError(op string, err error, token string) error {
	var ne net.Error
	timeout := errors.As(err, &ne) && ne.Timeout()
	return provider.Retryable(&callError{
		msg:     redact(fmt.Sprintf("pedidosya: %s: %v", op, err), token),
		err:     err,
		timeout: timeout,
	})
}

// callError is a transport failure's redacted message with its cause.
type callError struct {
	msg     string
	err     error
	timeout bool
}

func (e *callError) Error() string { return e.msg }
func (e *callError) Unwrap() error { return e.err }

// Is makes a network timeout match context.DeadlineExceeded, so
// provider.IsTimeout treats "PedidosYa did not answer in time" like an
// expired context.
func (e *callError) Is(target error) bool {
	return e.timeout && target == context.DeadlineExceeded
}

// minSecretLen is the shortest token redact removes verbatim; shorter
// values would mangle ordinary words and no real token is that short.
const minSecretLen = 8

// redact removes token from s.
func redact(s, token string) string {
	if len(token) >= minSecretLen {
		s = strings.ReplaceAll(s, token, "[redacted]")
	}
	return s
}

// clip cuts s to at most n bytes without splitting a UTF-8 sequence.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
