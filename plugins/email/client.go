package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
)

const (
	// httpTimeout bounds a single call when the caller's context has no
	// earlier deadline.
	httpTimeout = 30 * time.Second
	// maxResponse bounds how much of a response body is read.
	maxResponse = 1 << 20
)

// httpClient is shared by every tenant: it holds connections, never
// credentials.
var httpClient = &http.Client{Timeout: httpTimeout}

// response is a provider's answer, whatever its status.
type response struct {
	status int
	header http.Header
	body   []byte
}

// post sends body (JSON) to a.base+path with the tenant's key as a Bearer
// token plus the extra headers, and returns the answer whatever its status.
// The only error is a failure to get an answer, always KindRetryable,
// redacted, and matching context.DeadlineExceeded when the caller's
// deadline or the client's timeout expired.
func (a account) post(ctx context.Context, op, path string, extra http.Header, body []byte) (*response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, provider.Invalid(fmt.Errorf("email: %s: %s: %v", a.transport, op, a.redact(err.Error())))
	}
	for k, vs := range extra {
		req.Header[k] = vs
	}
	req.Header.Set("Authorization", "Bearer "+a.apiKey.Reveal())
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "pipecore-plugin-email/"+version)

	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, a.transportError(op, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, a.transportError(op, err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// fail logs a classified failure of op (never a secret or an address) and
// returns it.
func (a account) fail(ctx context.Context, op string, status int, err error) error {
	attrs := []any{"op", op, "transport", a.transport, "kind", provider.KindOf(err).String()}
	if status != 0 {
		attrs = append(attrs, "status", status)
	}
	if code := provider.CodeOf(err); code != "" {
		attrs = append(attrs, "code", code)
	}
	provider.Log(ctx).Info("email call failed", attrs...)
	return err
}

// transportError classifies a failure to get an answer: always retryable,
// still wrapping the cause, so errors.Is(err, context.DeadlineExceeded)
// holds for an expired context and for network timeouts.
func (a account) transportError(op string, err error) error {
	var ne net.Error
	timeout := errors.As(err, &ne) && ne.Timeout()
	return provider.Retryable(&callError{
		msg:     fmt.Sprintf("email: %s: %s: %s", a.transport, op, a.redact(err.Error())),
		err:     err,
		timeout: timeout,
	})
}

// statusError is a non-2xx answer's redacted message.
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
// provider.IsTimeout treats "the provider did not answer in time" like an
// expired context.
func (e *callError) Is(target error) bool {
	return e.timeout && target == context.DeadlineExceeded
}

// minSecretLen is the shortest key redact removes verbatim; shorter values
// would mangle ordinary words and no real key is that short.
const minSecretLen = 8

// redact removes the tenant's API key from s.
func (a account) redact(s string) string {
	if k := a.apiKey.Reveal(); len(k) >= minSecretLen {
		s = strings.ReplaceAll(s, k, "[redacted]")
	}
	return s
}

// ok reports whether status is 2xx.
func ok(status int) bool { return status >= 200 && status <= 299 }
