package dispatch_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pipecore/pipecore/core/internal/dispatch"
)

// fixedNow is the clock of tests that need one; webhook-timestamp and
// HTTP-date Retry-After values are computed from it.
var fixedNow = time.Date(2026, 11, 27, 14, 3, 7, 0, time.UTC)

func TestSendStatus(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		status     int
		header     map[string]string
		body       string
		want       dispatch.Outcome
		wantErr    string
		retryAfter time.Duration
	}{
		"200":                          {status: 200, body: "ok", want: dispatch.Delivered},
		"201":                          {status: 201, want: dispatch.Delivered},
		"204":                          {status: 204, want: dispatch.Delivered},
		"299":                          {status: 299, want: dispatch.Delivered},
		"400":                          {status: 400, body: `{"error":"bad"}`, want: dispatch.Retry, wantErr: "status 400"},
		"404":                          {status: 404, want: dispatch.Retry, wantErr: "status 404"},
		"413":                          {status: 413, want: dispatch.Retry, wantErr: "status 413"},
		"500":                          {status: 500, body: "boom", want: dispatch.Retry, wantErr: "status 500"},
		"502":                          {status: 502, want: dispatch.Retry, wantErr: "status 502"},
		"410 disables":                 {status: 410, want: dispatch.Gone, wantErr: "status 410"},
		"304 is a redirect":            {status: 304, want: dispatch.Retry, wantErr: "redirect 304 not followed"},
		"429 Retry-After seconds":      {status: 429, header: map[string]string{"Retry-After": "7"}, want: dispatch.Retry, wantErr: "status 429", retryAfter: 7 * time.Second},
		"429 Retry-After HTTP-date":    {status: 429, header: map[string]string{"Retry-After": fixedNow.Add(90 * time.Second).Format(http.TimeFormat)}, want: dispatch.Retry, wantErr: "status 429", retryAfter: 90 * time.Second},
		"503 Retry-After seconds":      {status: 503, header: map[string]string{"Retry-After": "120"}, want: dispatch.Retry, wantErr: "status 503", retryAfter: 2 * time.Minute},
		"503 Retry-After past date":    {status: 503, header: map[string]string{"Retry-After": fixedNow.Add(-time.Hour).Format(http.TimeFormat)}, want: dispatch.Retry, wantErr: "status 503"},
		"503 Retry-After garbage":      {status: 503, header: map[string]string{"Retry-After": "soon"}, want: dispatch.Retry, wantErr: "status 503"},
		"503 Retry-After negative":     {status: 503, header: map[string]string{"Retry-After": "-5"}, want: dispatch.Retry, wantErr: "status 503"},
		"503 Retry-After huge":         {status: 503, header: map[string]string{"Retry-After": "99999999999999999999"}, want: dispatch.Retry, wantErr: "status 503"},
		"503 Retry-After years":        {status: 503, header: map[string]string{"Retry-After": "315360000"}, want: dispatch.Retry, wantErr: "status 503", retryAfter: 30 * 24 * time.Hour},
		"500 Retry-After any status":   {status: 500, header: map[string]string{"Retry-After": "3"}, want: dispatch.Retry, wantErr: "status 500", retryAfter: 3 * time.Second},
		"200 Retry-After still parsed": {status: 200, header: map[string]string{"Retry-After": "3"}, want: dispatch.Delivered, retryAfter: 3 * time.Second},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := receiver(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			s := newSender(t, dispatch.SenderConfig{Now: func() time.Time { return fixedNow }})
			res := s.Send(t.Context(), target(t, url), message())
			if res.Outcome != tc.want || res.StatusCode != tc.status || res.Error != tc.wantErr || res.RetryAfter != tc.retryAfter {
				t.Errorf("Send = {%v %d %q RetryAfter %v}, want {%v %d %q RetryAfter %v}",
					res.Outcome, res.StatusCode, res.Error, res.RetryAfter, tc.want, tc.status, tc.wantErr, tc.retryAfter)
			}
			if res.Response != tc.body {
				t.Errorf("Response = %q, want %q", res.Response, tc.body)
			}
			if res.Latency <= 0 {
				t.Errorf("Latency = %v, want > 0", res.Latency)
			}
		})
	}
}

func TestSendDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	for _, code := range []int{301, 302, 303, 307, 308} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			var followed atomic.Int32
			elsewhere := receiver(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				followed.Add(1)
			}))
			url := receiver(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, elsewhere+"/hook", code)
			}))
			res := newSender(t, dispatch.SenderConfig{}).Send(t.Context(), target(t, url), message())
			want := fmt.Sprintf("redirect %d not followed", code)
			if res.Outcome != dispatch.Retry || res.StatusCode != code || res.Error != want {
				t.Errorf("Send = {%v %d %q}, want {retry %d %q}", res.Outcome, res.StatusCode, res.Error, code, want)
			}
			if n := followed.Load(); n != 0 {
				t.Errorf("the redirect target was called %d times", n)
			}
		})
	}
}

func TestSendFailures(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		url     func(tb testing.TB) string
		cfg     dispatch.SenderConfig
		ctx     func(tb testing.TB) context.Context
		secrets []string
		id      string
		wantErr string
		// slowest bounds Latency and the whole call; fastest, when set,
		// is the least Latency (a timeout must not fire early).
		fastest, slowest time.Duration
	}{
		"connection refused": {url: closedPort, wantErr: "connection refused", slowest: 2 * time.Second},
		"reset on accept": {url: func(tb testing.TB) string {
			return rawServer(tb, func(c net.Conn) {
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			})
		}, wantErr: "connection reset", slowest: 2 * time.Second},
		"closed after the request": {url: func(tb testing.TB) string {
			return rawServer(tb, func(c net.Conn) {
				readRequest(tb, c)
				c.Close()
			})
		}, wantErr: "connection closed", slowest: 2 * time.Second},
		"reset after the request": {url: func(tb testing.TB) string {
			return rawServer(tb, func(c net.Conn) {
				readRequest(tb, c)
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			})
		}, wantErr: "connection reset", slowest: 2 * time.Second},
		"cut inside the headers": {url: func(tb testing.TB) string {
			return rawServer(tb, func(c net.Conn) {
				readRequest(tb, c)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n")
				c.Close()
			})
		}, wantErr: "connection closed", slowest: 2 * time.Second},
		"malformed status line": {url: func(tb testing.TB) string {
			return rawServer(tb, func(c net.Conn) {
				readRequest(tb, c)
				io.WriteString(c, "HTTP/1.1 20")
				c.Close()
			})
		}, wantErr: "request failed", slowest: 2 * time.Second},
		"garbage instead of http": {url: func(tb testing.TB) string {
			return rawServer(tb, func(c net.Conn) {
				readRequest(tb, c)
				io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\n\r\n")
				c.Close()
			})
		}, wantErr: "request failed", slowest: 2 * time.Second},
		"black hole": {
			url: blackHole, cfg: dispatch.SenderConfig{Timeout: 200 * time.Millisecond},
			wantErr: "timeout", fastest: 190 * time.Millisecond, slowest: 1500 * time.Millisecond,
		},
		"headers trickled past the timeout": {
			url: func(tb testing.TB) string {
				return rawServer(tb, func(c net.Conn) {
					readRequest(tb, c)
					for _, b := range []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") {
						if _, err := c.Write([]byte{b}); err != nil {
							return
						}
						time.Sleep(50 * time.Millisecond)
					}
				})
			},
			cfg:     dispatch.SenderConfig{Timeout: 300 * time.Millisecond},
			wantErr: "timeout", fastest: 290 * time.Millisecond, slowest: 1500 * time.Millisecond,
		},
		"connect timeout": {
			url: func(tb testing.TB) string { return "http://tenant.example:443/hook" },
			cfg: dispatch.SenderConfig{DialTimeout: 100 * time.Millisecond, Dialer: func(ctx context.Context, _, _ string) (net.Conn, error) {
				<-ctx.Done()
				return nil, ctx.Err()
			}},
			wantErr: "connect timeout", fastest: 90 * time.Millisecond, slowest: 1500 * time.Millisecond,
		},
		"address not allowed": {
			url: func(tb testing.TB) string { return "http://internal.example/hook" },
			cfg: dispatch.SenderConfig{Dialer: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return nil, fmt.Errorf("%w: 10.0.0.5 is private", dispatch.ErrBlockedAddress)
			}},
			wantErr: "address not allowed", slowest: time.Second,
		},
		"other dial error": {
			url: func(tb testing.TB) string { return "http://tenant.example/hook" },
			cfg: dispatch.SenderConfig{Dialer: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return nil, errors.New("resolver says 10.1.2.3")
			}},
			wantErr: "connect failed", slowest: time.Second,
		},
		"untrusted certificate": {url: tlsServer, wantErr: "tls: certificate signed by unknown authority", slowest: 2 * time.Second},
		"https to a non-tls server": {url: func(tb testing.TB) string {
			return strings.Replace(rawServer(tb, func(c net.Conn) {
				io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\n")
				c.Close()
			}), "http:", "https:", 1)
		}, wantErr: "tls: endpoint does not speak tls", slowest: 2 * time.Second},
		// net/http reports this one as a plain string, which describe
		// does not match on.
		"https to a plain http server": {url: func(tb testing.TB) string {
			return strings.Replace(receiver(tb, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})), "http:", "https:", 1)
		}, wantErr: "request failed", slowest: 2 * time.Second},
		"caller deadline": {
			url: blackHole,
			ctx: func(tb testing.TB) context.Context {
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				tb.Cleanup(cancel)
				return ctx
			},
			wantErr: "timeout", fastest: 90 * time.Millisecond, slowest: 1500 * time.Millisecond,
		},
		"caller gone": {
			url: blackHole,
			ctx: func(tb testing.TB) context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(50*time.Millisecond, cancel)
				tb.Cleanup(cancel)
				return ctx
			},
			wantErr: "canceled", slowest: 1500 * time.Millisecond,
		},
		"ftp url":         {url: func(testing.TB) string { return "ftp://127.0.0.1/hook" }, wantErr: "invalid url", slowest: time.Second},
		"relative url":    {url: func(testing.TB) string { return "/hook" }, wantErr: "invalid url", slowest: time.Second},
		"unparsable url":  {url: func(testing.TB) string { return "http://[::1" }, wantErr: "invalid url", slowest: time.Second},
		"bad secret":      {url: closedPort, secrets: []string{"whsec_%%%"}, wantErr: "invalid signing secret", slowest: time.Second},
		"no secret":       {url: closedPort, secrets: []string{}, wantErr: "invalid signing secret", slowest: time.Second},
		"id with a dot":   {url: closedPort, id: "msg.1", wantErr: "invalid webhook id", slowest: time.Second},
		"id with newline": {url: closedPort, id: "msg_1\nx", wantErr: "invalid webhook id", slowest: time.Second},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tgt := target(t, tc.url(t))
			if tc.secrets != nil {
				tgt.Secrets = tc.secrets
			}
			m := message()
			if tc.id != "" {
				m.ID = tc.id
			}
			ctx := t.Context()
			if tc.ctx != nil {
				ctx = tc.ctx(t)
			}
			start := time.Now()
			res := newSender(t, tc.cfg).Send(ctx, tgt, m)
			took := time.Since(start)
			if res.Outcome != dispatch.Retry || res.StatusCode != 0 || res.Error != tc.wantErr {
				t.Errorf("Send = {%v %d %q}, want {retry 0 %q}", res.Outcome, res.StatusCode, res.Error, tc.wantErr)
			}
			if res.RetryAfter != 0 || res.Response != "" {
				t.Errorf("Send = {RetryAfter %v Response %q}, want neither", res.RetryAfter, res.Response)
			}
			if took > tc.slowest || res.Latency > tc.slowest {
				t.Errorf("Send took %v (Latency %v), want at most %v", took, res.Latency, tc.slowest)
			}
			if res.Latency < tc.fastest {
				t.Errorf("Latency = %v, want at least %v", res.Latency, tc.fastest)
			}
		})
	}
}

// TestSendBodyCutAfterStatus: once a 2xx status and its headers arrived,
// the attempt is delivered even if the body then breaks off.
func TestSendBodyCutAfterStatus(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		status int
		reset  bool
		want   dispatch.Outcome
	}{
		"200 then closed": {status: 200, want: dispatch.Delivered},
		"200 then reset":  {status: 200, reset: true, want: dispatch.Delivered},
		"500 then closed": {status: 500, want: dispatch.Retry},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := rawServer(t, func(c net.Conn) {
				readRequest(t, c)
				fmt.Fprintf(c, "HTTP/1.1 %d X\r\nContent-Length: 100\r\n\r\n0123456789", tc.status)
				if tc.reset {
					time.Sleep(20 * time.Millisecond)
					c.(*net.TCPConn).SetLinger(0)
				}
				c.Close()
			})
			res := newSender(t, dispatch.SenderConfig{}).Send(t.Context(), target(t, url), message())
			if res.Outcome != tc.want || res.StatusCode != tc.status {
				t.Errorf("Send = {%v %d %q}, want {%v %d}", res.Outcome, res.StatusCode, res.Error, tc.want, tc.status)
			}
			if !strings.HasPrefix("0123456789", res.Response) || (!tc.reset && res.Response != "0123456789") {
				t.Errorf("Response = %q, want the bytes that arrived", res.Response)
			}
		})
	}
}

func TestSendHeaders(t *testing.T) {
	t.Parallel()
	type delivery struct {
		method string
		header http.Header
		body   []byte
	}
	got := make(chan delivery, 2)
	url := receiver(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- delivery{r.Method, r.Header.Clone(), body}
	}))
	times := []time.Time{fixedNow, fixedNow.Add(61 * time.Second)}
	var calls atomic.Int32
	s := newSender(t, dispatch.SenderConfig{
		UserAgent: "PipeCore-Test/9",
		Now:       func() time.Time { return times[calls.Add(1)-1] },
	})
	tgt, m := target(t, url), message()

	var sigs []string
	for i, ts := range times {
		if res := s.Send(t.Context(), tgt, m); res.Outcome != dispatch.Delivered {
			t.Fatalf("send %d: %+v", i+1, res)
		}
		d := <-got
		wantSig, err := dispatch.Sign(tgt.Secrets, m.ID, ts, m.Body)
		if err != nil {
			t.Fatalf("Sign: %v", err)
		}
		want := map[string]string{
			"webhook-id":        m.ID,
			"webhook-timestamp": strconv.FormatInt(ts.Unix(), 10),
			"webhook-signature": wantSig,
			"content-type":      "application/json",
			"user-agent":        "PipeCore-Test/9",
			"content-length":    strconv.Itoa(len(m.Body)),
		}
		for k, v := range want {
			if g := d.header.Get(k); g != v {
				t.Errorf("send %d: %s = %q, want %q", i+1, k, g, v)
			}
		}
		if d.method != http.MethodPost {
			t.Errorf("send %d: method %s, want POST", i+1, d.method)
		}
		if !bytes.Equal(d.body, m.Body) {
			t.Errorf("send %d: body %q, want %q", i+1, d.body, m.Body)
		}
		sigs = append(sigs, d.header.Get("webhook-signature"))
	}
	if sigs[0] == sigs[1] {
		t.Errorf("both attempts carry signature %q; a new timestamp must change it", sigs[0])
	}
}

func TestSendDefaultUserAgent(t *testing.T) {
	t.Parallel()
	ua := make(chan string, 1)
	url := receiver(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ua <- r.UserAgent() }))
	if res := newSender(t, dispatch.SenderConfig{}).Send(t.Context(), target(t, url), message()); res.Outcome != dispatch.Delivered {
		t.Fatalf("Send: %+v", res)
	}
	if got := <-ua; got != "PipeCore-Webhooks/1" {
		t.Errorf("user-agent = %q, want PipeCore-Webhooks/1", got)
	}
}

func TestSendResponseExcerpt(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		body, want string
	}{
		"empty":                    {body: "", want: ""},
		"short text":               {body: `{"ok":true}`, want: `{"ok":true}`},
		"exactly 1 KiB":            {body: strings.Repeat("a", 1024), want: strings.Repeat("a", 1024)},
		"long text cut at 1 KiB":   {body: strings.Repeat("a", 5000), want: strings.Repeat("a", 1024)},
		"rune cut by the limit":    {body: "a" + strings.Repeat("é", 1000), want: "a" + strings.Repeat("é", 511)},
		"invalid bytes replaced":   {body: "\xff\xfeok", want: "\uFFFD\uFFFDok"},
		"replacements stay in cap": {body: strings.Repeat("\xff", 2000), want: strings.Repeat("\uFFFD", 341)},
		"replacement char kept":    {body: "\uFFFD", want: "\uFFFD"},
		"truncated rune at end":    {body: "ok\xe2\x82", want: "ok\uFFFD\uFFFD"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := receiver(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(500)
				io.WriteString(w, tc.body)
			}))
			res := newSender(t, dispatch.SenderConfig{}).Send(t.Context(), target(t, url), message())
			if res.Response != tc.want {
				t.Errorf("Response = %q (%d bytes), want %q (%d bytes)", res.Response, len(res.Response), tc.want, len(tc.want))
			}
			if !utf8.ValidString(res.Response) || len(res.Response) > dispatch.MaxResponseExcerpt {
				t.Errorf("Response is %d bytes, valid UTF-8 %v", len(res.Response), utf8.ValidString(res.Response))
			}
		})
	}
}

// TestSendHugeResponse checks that a 10 MiB body is read only up to the
// cap, that the connection is then dropped rather than reused, and that a
// short body lets the connection be kept alive.
func TestSendHugeResponse(t *testing.T) {
	t.Parallel()
	const huge = 10 << 20
	url := receiver(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/huge" {
			w.Header().Set("Content-Length", strconv.Itoa(huge))
			chunk := bytes.Repeat([]byte("x"), 64<<10)
			for range huge / len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
			return
		}
		io.WriteString(w, "ok")
	}))
	dials := &countingDialer{}
	const limit = 64 << 10
	s := newSender(t, dispatch.SenderConfig{Dialer: dials.dial, MaxResponseBytes: limit})
	tgt := target(t, url)

	for i := range 3 {
		if res := s.Send(t.Context(), tgt, message()); res.Outcome != dispatch.Delivered || res.Response != "ok" {
			t.Fatalf("small send %d: %+v", i+1, res)
		}
	}
	if n := dials.count.Load(); n != 1 {
		t.Fatalf("3 small sends dialed %d times, want 1 (keep-alive)", n)
	}

	tgt.URL += "/huge"
	before := dials.read.Load()
	res := s.Send(t.Context(), tgt, message())
	if res.Outcome != dispatch.Delivered || res.StatusCode != 200 {
		t.Fatalf("huge send: {%v %d %q}", res.Outcome, res.StatusCode, res.Error)
	}
	if len(res.Response) != dispatch.MaxResponseExcerpt || !utf8.ValidString(res.Response) {
		t.Errorf("Response is %d bytes; want exactly %d of valid UTF-8", len(res.Response), dispatch.MaxResponseExcerpt)
	}
	// Allow the transport's 4 KiB read buffer and the headers on top.
	if got := dials.read.Load() - before; got > limit+16<<10 {
		t.Errorf("read %d bytes from the connection for a %d-byte cap", got, limit)
	}

	tgt.URL = strings.TrimSuffix(tgt.URL, "/huge")
	if res := s.Send(t.Context(), tgt, message()); res.Outcome != dispatch.Delivered {
		t.Fatalf("send after the huge one: %+v", res)
	}
	if n := dials.count.Load(); n != 2 {
		t.Errorf("dials = %d after the huge body, want 2 (its connection must not be reused)", n)
	}
}

func TestSendConcurrent(t *testing.T) {
	t.Parallel()
	var ids sync.Map
	url := receiver(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ids.Store(r.Header.Get("webhook-id"), true)
	}))
	s := newSender(t, dispatch.SenderConfig{})
	secrets := []string{mustSecret(t)}
	const senders, each = 16, 8
	var wg sync.WaitGroup
	failures := make(chan string, senders*each)
	for g := range senders {
		wg.Go(func() {
			for i := range each {
				m := dispatch.Message{ID: fmt.Sprintf("msg_%d_%d", g, i), Body: []byte(`{}`)}
				if res := s.Send(t.Context(), dispatch.Target{URL: url, Secrets: secrets}, m); res.Outcome != dispatch.Delivered {
					failures <- fmt.Sprintf("%s: %+v", m.ID, res)
				}
			}
		})
	}
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Error(f)
	}
	n := 0
	ids.Range(func(any, any) bool { n++; return true })
	if n != senders*each {
		t.Errorf("receiver saw %d distinct ids, want %d", n, senders*each)
	}
}

// TestNoSecretInResults sends with a known secret, and a URL carrying a
// token, through every kind of failure and checks that neither shows in
// the Result; nor in the Target's printed forms.
func TestNoSecretInResults(t *testing.T) {
	t.Parallel()
	secret := mustSecret(t)
	const urlToken = "SENTINEL-url-token"
	leaky := "whsec_SENTINEL/secret*not-base64"
	echo := receiver(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		io.WriteString(w, "nope")
	}))
	tests := map[string]dispatch.Target{
		"status 500":   {URL: echo + "/?token=" + urlToken, Secrets: []string{secret}},
		"refused":      {URL: closedPort(t) + "?token=" + urlToken, Secrets: []string{secret}},
		"timeout":      {URL: blackHole(t) + "?token=" + urlToken, Secrets: []string{secret}},
		"tls":          {URL: tlsServer(t) + "?token=" + urlToken, Secrets: []string{secret}},
		"bad url":      {URL: "http://[" + urlToken, Secrets: []string{secret}},
		"bad secret":   {URL: echo, Secrets: []string{secret, leaky}},
		"userinfo url": {URL: strings.Replace(closedPort(t), "http://", "http://user:"+urlToken+"@", 1), Secrets: []string{secret}},
	}
	s := newSender(t, dispatch.SenderConfig{Timeout: 200 * time.Millisecond})
	for name, tgt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			res := s.Send(t.Context(), tgt, message())
			if res.Outcome != dispatch.Retry {
				t.Fatalf("Outcome = %v, want retry", res.Outcome)
			}
			printed := fmt.Sprintf("%v %+v %#v", res, res, res)
			for _, bad := range []string{strings.TrimPrefix(secret, "whsec_"), strings.TrimPrefix(leaky, "whsec_"), "SENTINEL"} {
				if strings.Contains(printed, bad) {
					t.Errorf("Result holds %q: %s", bad, printed)
				}
			}
		})
	}

	t.Run("target printing", func(t *testing.T) {
		t.Parallel()
		tgt := dispatch.Target{URL: "https://user:pw-" + urlToken + "@tenant.example/hooks?token=" + urlToken, Secrets: []string{secret, leaky}}
		var logged bytes.Buffer
		slog.New(slog.NewTextHandler(&logged, nil)).Info("deliver", "target", tgt)
		for _, printed := range []string{fmt.Sprint(tgt), fmt.Sprintf("%+v", tgt), fmt.Sprintf("%#v", tgt), logged.String()} {
			if strings.Contains(printed, "SENTINEL") || strings.Contains(printed, strings.TrimPrefix(secret, "whsec_")) {
				t.Errorf("printed target holds a secret: %s", printed)
			}
			if !strings.Contains(printed, "https://tenant.example/hooks") || !strings.Contains(printed, "2 redacted") {
				t.Errorf("printed target lost its useful parts: %s", printed)
			}
		}
	})
}

func TestOutcomeString(t *testing.T) {
	t.Parallel()
	tests := map[dispatch.Outcome]string{
		dispatch.Delivered: "delivered", dispatch.Retry: "retry", dispatch.Gone: "gone", 0: "outcome(0)",
	}
	for o, want := range tests {
		if got := o.String(); got != want {
			t.Errorf("Outcome(%d).String() = %q, want %q", int(o), got, want)
		}
	}
}

// --- helpers -------------------------------------------------------------

func newSender(tb testing.TB, cfg dispatch.SenderConfig) *dispatch.Sender {
	tb.Helper()
	s := dispatch.NewSender(cfg)
	tb.Cleanup(s.Close)
	return s
}

func message() dispatch.Message {
	return dispatch.Message{ID: "msg_2pQ7wL1xY9sK3", Body: envelope(200)}
}

func target(tb testing.TB, url string) dispatch.Target {
	tb.Helper()
	return dispatch.Target{URL: url, Secrets: []string{kaSecret}}
}

// envelope returns an event envelope of about n bytes.
func envelope(n int) []byte {
	b := []byte(`{"type":"payment.confirmed","timestamp":"2026-11-27T14:03:07.512Z","data":{"tenant_id":"tableflow","provider":"mercadopago","payment_id":"pay_01J","amount":{"amount":12990,"currency":"CLP"},"reference":"`)
	for len(b) < n-4 {
		b = append(b, 'r')
	}
	return append(b, `"}}`...)
}

// receiver starts an HTTP server on 127.0.0.1 and returns its URL.
func receiver(tb testing.TB, h http.Handler) string {
	tb.Helper()
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv.URL
}

// tlsServer returns the URL of an HTTPS server whose certificate no one
// trusts.
func tlsServer(tb testing.TB) string {
	tb.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	tb.Cleanup(srv.Close)
	return srv.URL
}

// rawServer accepts TCP connections on 127.0.0.1 and hands each to serve;
// it returns an http URL for it.
func rawServer(tb testing.TB, serve func(net.Conn)) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { serve(c) })
		}
	})
	return "http://" + ln.Addr().String()
}

// blackHole returns the URL of a listener that accepts connections and
// never answers.
func blackHole(tb testing.TB) string {
	tb.Helper()
	return rawServer(tb, func(net.Conn) {})
}

// closedPort returns an http URL on 127.0.0.1 where nothing listens.
func closedPort(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// readRequest reads one HTTP request, body included, from c.
func readRequest(tb testing.TB, c net.Conn) {
	tb.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	r, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return
	}
	io.Copy(io.Discard, r.Body)
}

// countingDialer dials 127.0.0.1 and counts connections and bytes read.
type countingDialer struct {
	count atomic.Int64
	read  atomic.Int64
}

func (d *countingDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	d.count.Add(1)
	return &countingConn{Conn: c, read: &d.read}, nil
}

type countingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}
