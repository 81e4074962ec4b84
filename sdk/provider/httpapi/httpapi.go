// Package httpapi sends a plugin's calls to its provider's HTTP API and
// turns whatever goes wrong into classified errors (see provider.Kind)
// whose messages never contain a credential.
//
// A plugin declares one [Client] named after itself and describes each
// call as a [Request]: operation name, method, URL, headers (credentials
// included), a JSON, form or raw body, and the secrets that must never be
// quoted. [Client.Do] sends it within the caller's context deadline, reads
// a bounded answer and decodes a 2xx body; [Client.Send] only sends and
// reads, for plugins that look at the answer themselves. What stays in
// the plugin is the provider's wire format: its paths, auth headers and
// the shape of its error body, which the plugin reads into a [Refusal]
// for [Client.Refuse].
//
// Errors:
//
//   - a request that cannot be encoded or built is KindInvalid;
//   - no answer (network failure, timeout, cancelled context) is
//     KindRetryable and, for a timeout, matches context.DeadlineExceeded
//     (so provider.IsTimeout holds);
//   - a non-2xx answer is a [*StatusError] classified by the plugin's
//     Refusal, by default with provider.FromHTTPStatus and the Retry-After
//     header;
//   - a 2xx answer that does not decode is KindRetryable.
//
// Every message reads "<name>: <op>: <reason>" with the request's secrets
// replaced by "[redacted]", and [Client.Do] logs every failure through
// provider.Log as "<name> call failed".
package httpapi

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

// Defaults of [Client].
const (
	// DefaultTimeout bounds one exchange when the caller's context has no
	// earlier deadline.
	DefaultTimeout = 30 * time.Second
	// DefaultMaxResponse bounds how much of a response body is read.
	DefaultMaxResponse = 1 << 20
)

// MinSecretLen is the shortest secret [Redact] removes: shorter values
// would mangle ordinary words, and no real credential is that short.
const MinSecretLen = 6

// defaultHTTP is shared by every Client without its own: it holds
// connections, never credentials.
var defaultHTTP = &http.Client{Timeout: DefaultTimeout}

// Client sends one provider's API calls. Its zero value (but for Name)
// works; it holds no credentials and is safe for concurrent use, so a
// plugin declares one for its whole process.
type Client struct {
	// Name prefixes every error message and names the failure log line:
	// "transbank" gives "transbank: create transaction: HTTP 500" and
	// "transbank call failed".
	Name string
	// HTTP sends the requests; nil means a client shared by the process,
	// with DefaultTimeout. It must never hold credentials.
	HTTP *http.Client
	// MaxResponse bounds how much of an answer is read; zero means
	// DefaultMaxResponse. A longer answer is cut, and a 2xx one then does
	// not decode.
	MaxResponse int64
}

// Request is one API call.
type Request struct {
	// Op names the operation in messages and logs, e.g. "create
	// transaction".
	Op     string
	Method string
	// URL is absolute; Query, when not empty, is appended to it.
	URL   string
	Query url.Values
	// Header is sent as given (credentials, idempotency keys). Accept
	// defaults to application/json and Content-Type to the body's type.
	Header http.Header
	// The body: at most one of JSON (encoded with encoding/json, sent as
	// application/json), Form (sent as application/x-www-form-urlencoded)
	// and Body (sent as is; set its Content-Type in Header). None: no body.
	JSON any
	Form url.Values
	Body []byte
	// Secrets are removed from every message about the call: the
	// credentials in Header, URL or body, and anything else the provider
	// might echo.
	Secrets []string
	// LogAttrs are added to the failure log line (key, value, ...); they
	// must hold no secret.
	LogAttrs []any
}

// Redact returns s without the request's secrets; see [Redact].
func (r *Request) Redact(s string) string { return Redact(s, r.Secrets...) }

// Response is a provider's answer, read in full (up to the client's
// MaxResponse), whatever its status.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	// Request is the call this answers.
	Request *Request
}

// OK reports whether the status is 2xx.
func (r *Response) OK() bool { return r.Status >= 200 && r.Status <= 299 }

// Send sends req and reads the answer whatever its status. The only
// errors are a request that cannot be built (KindInvalid) and a failure
// to get an answer (KindRetryable, matching context.DeadlineExceeded for
// a timeout); neither is logged.
func (c *Client) Send(ctx context.Context, req Request) (*Response, error) {
	body, contentType, err := req.body()
	if err != nil {
		return nil, provider.Invalid(fmt.Errorf("%s: %s: encode request: %w", c.Name, req.Op, err))
	}
	target := req.URL
	if len(req.Query) > 0 {
		target += "?" + req.Query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, target, rd)
	if err != nil {
		return nil, provider.Invalid(&callError{msg: req.Redact(fmt.Sprintf("%s: %s: %v", c.Name, req.Op, err)), err: err})
	}
	for k, vs := range req.Header {
		for _, v := range vs {
			hr.Header.Add(k, v)
		}
	}
	if hr.Header.Get("Accept") == "" {
		hr.Header.Set("Accept", "application/json")
	}
	if contentType != "" && hr.Header.Get("Content-Type") == "" {
		hr.Header.Set("Content-Type", contentType)
	}

	client := c.HTTP
	if client == nil {
		client = defaultHTTP
	}
	resp, err := client.Do(hr)
	if err != nil {
		return nil, c.transportError(&req, err)
	}
	defer resp.Body.Close()
	limit := c.MaxResponse
	if limit <= 0 {
		limit = DefaultMaxResponse
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, c.transportError(&req, err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: data, Request: &req}, nil
}

// body returns the encoded body and its content type.
func (r *Request) body() ([]byte, string, error) {
	n := 0
	for _, set := range []bool{r.JSON != nil, r.Form != nil, r.Body != nil} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		return nil, "", errors.New("more than one of JSON, Form and Body is set")
	case r.JSON != nil:
		b, err := json.Marshal(r.JSON)
		return b, "application/json", err
	case r.Form != nil:
		return []byte(r.Form.Encode()), "application/x-www-form-urlencoded", nil
	}
	return r.Body, "", nil
}

// Do sends req (see [Client.Send]) and reads the answer: a 2xx body is
// decoded as JSON into out (nil ignores it; a *json.RawMessage receives
// it as is, JSON or not), a non-2xx answer becomes the error refuse
// returns for it (nil refuse: c.Refuse(resp, Refusal{})). Every failure is
// logged (see [Client.Fail]) with req.LogAttrs. The response is returned
// whenever one arrived, with or without an error.
func (c *Client) Do(ctx context.Context, req Request, out any, refuse func(*Response) error) (*Response, error) {
	resp, err := c.Send(ctx, req)
	if err != nil {
		return nil, c.Fail(ctx, req.Op, 0, err, req.LogAttrs...)
	}
	return resp, c.Decode(ctx, resp, out, refuse)
}

// Decode finishes a call [Client.Send] made, as [Client.Do] does: it
// decodes a 2xx answer into out or classifies a non-2xx one with refuse,
// and logs a failure.
func (c *Client) Decode(ctx context.Context, resp *Response, out any, refuse func(*Response) error) error {
	req := resp.Request
	if !resp.OK() {
		if refuse == nil {
			refuse = func(r *Response) error { return c.Refuse(r, Refusal{}) }
		}
		return c.Fail(ctx, req.Op, resp.Status, refuse(resp), req.LogAttrs...)
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = append((*raw)[:0], resp.Body...)
		return nil
	}
	if err := json.Unmarshal(resp.Body, out); err != nil {
		err = provider.Retryable(fmt.Errorf("%s: %s: malformed response: %s", c.Name, req.Op, req.Redact(err.Error())))
		return c.Fail(ctx, req.Op, resp.Status, err, req.LogAttrs...)
	}
	return nil
}

// Refusal is what a plugin read from a provider's non-2xx answer; see
// [Client.Refuse].
type Refusal struct {
	// Code is the provider's machine-readable error code, if any; it
	// becomes the error's provider code. Redact and clip it first.
	Code string
	// Message is the provider's explanation, if any, quoted in the error
	// message after the status. Redact and clip it first.
	Message string
	// Kind, when not zero, overrides the classification by status
	// (provider.FromHTTPStatus).
	Kind provider.Kind
	// RetryAfter, when not zero, replaces the Retry-After header's delay
	// for a rate-limited answer.
	RetryAfter time.Duration
	// Data is whatever else the plugin keeps of the answer for its own
	// use (e.g. the id of the duplicate a 409 names); see StatusError.Data.
	// It must hold no secret.
	Data any
}

// Refuse returns resp, a non-2xx answer, as a classified error around a
// [*StatusError] whose message reads "<name>: <op>: HTTP <status>[:
// <message>]". Its kind is r.Kind or, when zero, provider.FromHTTPStatus
// of the status (401 and 403 unauthorized, 429 rate limited, other 4xx
// invalid, 5xx retryable); a rate-limited error waits r.RetryAfter or the
// Retry-After header. r.Code becomes the provider code.
func (c *Client) Refuse(resp *Response, r Refusal) error {
	op := ""
	if resp.Request != nil {
		op = resp.Request.Op
	}
	text := fmt.Sprintf("%s: %s: HTTP %d", c.Name, op, resp.Status)
	if r.Message != "" {
		text += ": " + r.Message
	}
	se := &StatusError{Op: op, Status: resp.Status, Code: r.Code, Message: r.Message, Data: r.Data, text: text}
	retry := r.RetryAfter
	if retry == 0 {
		retry = provider.RetryAfterHeader(resp.Header)
	}
	var err error
	switch r.Kind {
	case 0:
		err = provider.FromHTTPStatus(resp.Status, retry, se)
	case provider.KindRateLimited:
		err = provider.RateLimited(se, retry)
	default:
		err = &provider.Error{Kind: r.Kind, Err: se}
	}
	if r.Code != "" {
		err = provider.WithCode(err, r.Code)
	}
	return err
}

// StatusError is a provider's non-2xx answer, as [Client.Refuse] reports
// it. Its message carries no secret.
type StatusError struct {
	Op      string
	Status  int
	Code    string // the provider's error code, "" when none
	Message string // the provider's explanation, redacted, "" when none
	Data    any    // the Refusal's Data
	text    string
}

func (e *StatusError) Error() string { return e.text }

// StatusOf returns the HTTP status of the [*StatusError] in err's chain,
// or 0 when err is not a non-2xx answer (no answer, a malformed one).
func StatusOf(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

// NoAnswer reports whether err is a failure to get an answer from the
// provider (network, timeout, cancelled context): the provider may or may
// not have acted on the request.
func NoAnswer(err error) bool {
	var ce *callError
	return errors.As(err, &ce) && ce.transport
}

// Fail logs err, a classified failure of operation op, through
// provider.Log(ctx) and returns it. The line reads "<name> call failed"
// with op, kind, attrs (key, value, ...: never a secret), the HTTP status
// when not zero and the provider code when there is one.
func (c *Client) Fail(ctx context.Context, op string, status int, err error, attrs ...any) error {
	line := make([]any, 0, 8+len(attrs))
	line = append(line, "op", op, "kind", provider.KindOf(err).String())
	line = append(line, attrs...)
	if status != 0 {
		line = append(line, "status", status)
	}
	if code := provider.CodeOf(err); code != "" {
		line = append(line, "code", code)
	}
	provider.Log(ctx).Info(c.Name+" call failed", line...)
	return err
}

// transportError classifies a failure to get an answer: retryable, still
// wrapping the cause, so errors.Is(err, context.DeadlineExceeded) holds
// for an expired context and for a network timeout.
func (c *Client) transportError(req *Request, err error) error {
	var ne net.Error
	return provider.Retryable(&callError{
		msg:       req.Redact(fmt.Sprintf("%s: %s: %v", c.Name, req.Op, err)),
		err:       err,
		transport: true,
		timeout:   errors.As(err, &ne) && ne.Timeout(),
	})
}

// callError is a redacted message with its cause.
type callError struct {
	msg       string
	err       error
	transport bool // no answer
	timeout   bool
}

func (e *callError) Error() string { return e.msg }
func (e *callError) Unwrap() error { return e.err }

// Is makes a network timeout match context.DeadlineExceeded, so
// provider.IsTimeout treats "the provider did not answer in time" like an
// expired context.
func (e *callError) Is(target error) bool {
	return e.timeout && target == context.DeadlineExceeded
}

// BaseURL returns tenant t's base_url setting (provider.BaseURLField), see
// [Client.ParseURL], or def when it is unset.
func (c *Client) BaseURL(t provider.Tenant, def string) (string, error) {
	raw := strings.TrimSpace(t.Setting(provider.BaseURLField))
	if raw == "" {
		return def, nil
	}
	return c.ParseURL(provider.BaseURLField, raw)
}

// ParseURL checks raw, the value of the setting field, and returns it
// without a trailing slash. Anything but an absolute http(s) URL without
// user info, query or fragment is KindInvalid.
func (c *Client) ParseURL(field, raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		shown := Clip(raw, 200)
		if err == nil && u.User != nil {
			shown = Clip(u.Redacted(), 200)
		}
		return "", provider.Invalid(fmt.Errorf("%s: %s %q must be an http(s) URL without user info or query", c.Name, field, shown))
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// Redact returns s with every secret of at least MinSecretLen bytes
// replaced by "[redacted]".
func Redact(s string, secrets ...string) string {
	for _, secret := range secrets {
		if len(secret) >= MinSecretLen {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}

// Clip returns s cut to at most n bytes without splitting a UTF-8
// sequence, for provider text quoted in errors and logs.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
