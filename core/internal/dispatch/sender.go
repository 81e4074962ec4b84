package dispatch

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

// MaxResponseExcerpt is the most bytes of a response body kept in
// Result.Response.
const MaxResponseExcerpt = 1024

const (
	// maxIdleConnsPerHost is the keep-alive pool per tenant host; the
	// per-endpoint in-flight limit (10 by default) stays well below it.
	maxIdleConnsPerHost = 64
	// maxResponseHeaderBytes caps a tenant's response headers.
	maxResponseHeaderBytes = 64 << 10
	// maxRetryAfter bounds a parsed Retry-After; Schedule.Next caps it far
	// lower, this only keeps the arithmetic from overflowing.
	maxRetryAfter = 30 * 24 * time.Hour
)

// ErrBlockedAddress is what a SenderConfig.Dialer wraps when it refuses an
// address (the SSRF guard). Send reports such an attempt as "address not
// allowed", without the dialer's text, so no internal address reaches the
// attempt log.
var ErrBlockedAddress = errors.New("dispatch: address not allowed")

// Target is one tenant endpoint as a delivery sees it.
type Target struct {
	// URL is the endpoint, http or https.
	URL string
	// Secrets are the endpoint's active signing secrets ("whsec_…"): the
	// current one, plus the previous one during a rotation.
	Secrets []string
}

// String describes t without its secrets, query or user info.
func (t Target) String() string {
	u := "invalid url"
	if p, err := url.Parse(t.URL); err == nil {
		u = (&url.URL{Scheme: p.Scheme, Host: p.Host, Path: p.Path}).String()
	}
	return fmt.Sprintf("dispatch.Target{URL: %s, Secrets: [%d redacted]}", u, len(t.Secrets))
}

// GoString is String, so that %#v redacts too.
func (t Target) GoString() string { return t.String() }

// LogValue logs t without its secrets.
func (t Target) LogValue() slog.Value { return slog.StringValue(t.String()) }

// Message is one event to deliver.
type Message struct {
	// ID is the webhook-id: the same on every attempt and replay, the
	// tenant's idempotency key.
	ID string
	// Body is the JSON envelope, marshalled once; every attempt sends these
	// exact bytes. Send does not modify or keep it.
	Body []byte
}

// Outcome says what an attempt means for the message. Its zero value is
// no outcome at all, so an unset Result never reads as delivered.
type Outcome int

const (
	// Delivered: the endpoint answered 2xx.
	Delivered Outcome = iota + 1
	// Retry: anything else short of 410; try again per the Schedule.
	Retry
	// Gone: the endpoint answered 410; disable it and keep its backlog.
	Gone
)

// String returns "delivered", "retry" or "gone".
func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Retry:
		return "retry"
	case Gone:
		return "gone"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// Result records one attempt, for the attempt log and the dispatcher.
// Nothing in it holds a secret, the request body or the target URL.
type Result struct {
	Outcome Outcome
	// StatusCode is the response status, 0 when no response arrived.
	StatusCode int
	// RetryAfter is the response's Retry-After (delay-seconds or an
	// HTTP-date, read on any status), 0 if absent, unparsable or past.
	RetryAfter time.Duration
	// Latency runs from sending the request until the response headers
	// arrived or the attempt failed; reading the body is not included.
	Latency time.Duration
	// Error is a short reason, empty on 2xx: "status 500", "redirect 302
	// not followed", "timeout", "connect timeout", "connection refused",
	// "connection reset", "connection closed", "no such host", "tls: …",
	// "address not allowed", "canceled", "invalid url", "invalid signing
	// secret", "invalid webhook id", "request failed".
	Error string
	// Response is the start of the response body: at most
	// MaxResponseExcerpt bytes of valid UTF-8 (invalid bytes become U+FFFD,
	// a rune cut by the limit is dropped).
	Response string
}

// SenderConfig configures a Sender. Zero (or negative) values mean the
// documented defaults.
type SenderConfig struct {
	// Timeout bounds a whole attempt: connecting, TLS, sending, waiting for
	// the response headers and reading the body. Zero means 15s.
	Timeout time.Duration
	// DialTimeout bounds connecting, Dialer included. Zero means 5s.
	DialTimeout time.Duration
	// MaxResponseBytes caps how much of a response body is read; a longer
	// body is cut and its connection closed instead of reused. Zero means
	// 64 KiB.
	MaxResponseBytes int64
	// UserAgent is sent on every attempt. Zero means "PipeCore-Webhooks/1".
	UserAgent string
	// Dialer opens every connection; nil means a net.Dialer. This is where
	// the SSRF guard plugs in: it should check the resolved address and
	// wrap ErrBlockedAddress when refusing. Proxies from the environment are
	// never used, so the Dialer sees the tenant's own address.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
	// Now is called once per attempt, before sending, for its
	// webhook-timestamp; an HTTP-date Retry-After is counted from that same
	// time (so, if anything, slightly long). nil means time.Now.
	Now func() time.Time
}

func (c *SenderConfig) setDefaults() {
	if c.Timeout <= 0 {
		c.Timeout = 15 * time.Second
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.MaxResponseBytes <= 0 {
		c.MaxResponseBytes = 64 << 10
	}
	if c.UserAgent == "" {
		c.UserAgent = "PipeCore-Webhooks/1"
	}
	if c.Dialer == nil {
		d := &net.Dialer{Timeout: c.DialTimeout, KeepAlive: 30 * time.Second}
		c.Dialer = d.DialContext
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Sender makes delivery attempts. It is safe for concurrent use and keeps
// connections alive per host; Close drops the idle ones.
type Sender struct {
	cfg    SenderConfig
	client *http.Client
	tr     *http.Transport
}

// dialError marks a failure to connect, so that a timeout there reads
// "connect timeout".
type dialError struct{ err error }

func (e *dialError) Error() string { return "dial: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// NewSender returns a Sender using net/http with a keep-alive transport,
// HTTP/2 when the endpoint offers it over TLS, and redirects never followed.
func NewSender(cfg SenderConfig) *Sender {
	cfg.setDefaults()
	dial, dialTimeout := cfg.Dialer, cfg.DialTimeout
	tr := &http.Transport{
		Proxy: nil, // never: the Dialer must see the tenant's address
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, dialTimeout)
			defer cancel()
			conn, err := dial(ctx, network, addr)
			if err != nil {
				return nil, &dialError{err}
			}
			return conn, nil
		},
		ForceAttemptHTTP2:      true,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    5 * time.Second,
		ResponseHeaderTimeout:  cfg.Timeout,
		MaxIdleConns:           0, // no global cap; per host below
		MaxIdleConnsPerHost:    maxIdleConnsPerHost,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		DisableCompression:     true,
	}
	return &Sender{
		cfg: cfg,
		tr:  tr,
		client: &http.Client{
			Transport: tr,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
}

// Close closes the idle keep-alive connections. The Sender stays usable.
func (s *Sender) Close() { s.tr.CloseIdleConnections() }

// Send makes one attempt to deliver m to t: a POST of m.Body with the
// headers webhook-id (m.ID), webhook-timestamp (this attempt's time, from
// Now), webhook-signature (Sign over both, with t.Secrets), content-type
// application/json and user-agent.
//
// A 2xx is Delivered, even if reading its body then fails; 410 is Gone;
// everything else (3xx, which is never followed, other 4xx and 5xx,
// timeouts, refused and reset connections, TLS and DNS failures, a
// cancelled ctx, a bad URL, secret or id) is Retry. At most
// MaxResponseBytes of the body are read, and the body is always closed.
func (s *Sender) Send(ctx context.Context, t Target, m Message) Result {
	ts := s.cfg.Now()
	sig, err := Sign(t.Secrets, m.ID, ts, m.Body)
	if err != nil {
		reason := "invalid signing secret"
		if errors.Is(err, ErrInvalidID) {
			reason = "invalid webhook id"
		}
		return Result{Outcome: Retry, Error: reason}
	}

	attemptCtx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(attemptCtx, http.MethodPost, t.URL, bytes.NewReader(m.Body))
	if err != nil || (req.URL.Scheme != "http" && req.URL.Scheme != "https") || req.URL.Host == "" {
		return Result{Outcome: Retry, Error: "invalid url"}
	}
	req.Header = http.Header{
		"Webhook-Id":        {m.ID},
		"Webhook-Timestamp": {strconv.FormatInt(ts.Unix(), 10)},
		"Webhook-Signature": {sig},
		"Content-Type":      {"application/json"},
		"User-Agent":        {s.cfg.UserAgent},
	}

	start := time.Now()
	resp, err := s.client.Do(req)
	latency := time.Since(start)
	if err != nil {
		return Result{Outcome: Retry, Latency: latency, Error: describe(ctx, err)}
	}
	defer resp.Body.Close()

	res := Result{
		Outcome:    Retry,
		StatusCode: resp.StatusCode,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), ts),
		Latency:    latency,
	}
	switch code := resp.StatusCode; {
	case code >= 200 && code <= 299:
		res.Outcome = Delivered
	case code == http.StatusGone:
		res.Outcome, res.Error = Gone, "status 410"
	case code >= 300 && code <= 399:
		res.Error = "redirect " + strconv.Itoa(code) + " not followed"
	default:
		res.Error = "status " + strconv.Itoa(code)
	}
	// The outcome is settled by the status; a body cut short by the
	// deadline or a reset changes nothing.
	res.Response = readExcerpt(resp.Body, s.cfg.MaxResponseBytes)
	return res
}

// excerptBufs holds the buffers readExcerpt reads the body's head into.
var excerptBufs = sync.Pool{New: func() any { return new([MaxResponseExcerpt]byte) }}

// readExcerpt reads at most max bytes of body and returns the first
// MaxResponseExcerpt of them as valid UTF-8.
func readExcerpt(body io.Reader, max int64) string {
	buf := excerptBufs.Get().(*[MaxResponseExcerpt]byte)
	defer excerptBufs.Put(buf)
	head := buf[:min(max, MaxResponseExcerpt)]
	n, _ := io.ReadFull(body, head)
	if rest := max - int64(n); n == len(head) && rest > 0 {
		_, _ = io.CopyN(io.Discard, body, rest)
	}
	return excerpt(head[:n], n == len(head))
}

// excerpt returns b as valid UTF-8 of at most MaxResponseExcerpt bytes:
// invalid bytes become U+FFFD, and when b may have been cut (cut), a
// trailing partial rune is dropped.
func excerpt(b []byte, cut bool) string {
	if len(b) <= MaxResponseExcerpt && utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(min(len(b), MaxResponseExcerpt))
	for len(b) > 0 {
		if cut && !utf8.FullRune(b) {
			break
		}
		r, n := utf8.DecodeRune(b)
		piece := b[:n]
		if r == utf8.RuneError && n == 1 {
			piece = []byte(string(utf8.RuneError))
		}
		if sb.Len()+len(piece) > MaxResponseExcerpt {
			break
		}
		sb.Write(piece)
		b = b[n:]
	}
	return sb.String()
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP-date
// relative to now. It returns 0 when v is empty, unparsable or in the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// describe turns a failed round trip into a short reason that holds no
// URL, address or secret. parent is the caller's context, to tell a
// cancellation from our own timeout.
func describe(parent context.Context, err error) string {
	var (
		dialErr   *dialError
		netErr    net.Error
		dnsErr    *net.DNSError
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		certErr   x509.CertificateInvalidError
		recordErr tls.RecordHeaderError
		alertErr  tls.AlertError
		verifyErr *tls.CertificateVerificationError
	)
	dialing := errors.As(err, &dialErr)
	switch {
	case errors.Is(err, ErrBlockedAddress):
		return "address not allowed"
	case errors.Is(parent.Err(), context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		if dialing {
			return "connect timeout"
		}
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return "no such host"
		}
		return "dns lookup failed"
	case errors.As(err, &unknownCA):
		return "tls: certificate signed by unknown authority"
	case errors.As(err, &hostErr):
		return "tls: certificate is not valid for the host"
	case errors.As(err, &certErr):
		if certErr.Reason == x509.Expired {
			return "tls: certificate expired or not yet valid"
		}
		return "tls: invalid certificate"
	case errors.As(err, &recordErr):
		return "tls: endpoint does not speak tls"
	case errors.As(err, &alertErr), errors.As(err, &verifyErr):
		return "tls: handshake failed"
	case dialing:
		return "connect failed"
	}
	return "request failed"
}
