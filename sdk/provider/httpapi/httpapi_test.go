package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
)

const secret = "sk_live_0123456789"

// echo is a server that answers what handler writes and records the last
// request it got.
type echo struct {
	srv  *httptest.Server
	last chan *http.Request
	body chan []byte
}

func serve(t *testing.T, handler http.HandlerFunc) *echo {
	t.Helper()
	e := &echo{last: make(chan *http.Request, 16), body: make(chan []byte, 16)}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		e.last <- r
		e.body <- b
		handler(w, r)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func answer(status int, header map[string]string, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// logged returns a context whose provider.Log writes into the buffer.
func logged(t *testing.T) (context.Context, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return provider.WithLogger(ctx, slog.New(slog.NewTextHandler(&buf, nil))), &buf
}

func TestDoSendsAndDecodes(t *testing.T) {
	e := serve(t, answer(200, map[string]string{"Content-Type": "application/json"}, `{"id":"tx_1"}`))
	c := &Client{Name: "acme"}
	ctx, _ := logged(t)
	var out struct{ ID string }
	resp, err := c.Do(ctx, Request{
		Op: "create", Method: http.MethodPost, URL: e.srv.URL + "/v1/things",
		Query:  url.Values{"expand": {"all"}},
		Header: http.Header{"Authorization": {"Bearer " + secret}, "idempotency-key": {"k1"}},
		JSON:   map[string]int{"amount": 1000},
	}, &out, nil)
	if err != nil || out.ID != "tx_1" || resp.Status != 200 || !resp.OK() {
		t.Fatalf("Do = %+v, %v, out %+v", resp, err, out)
	}
	r, body := <-e.last, <-e.body
	if r.Method != "POST" || r.URL.Path != "/v1/things" || r.URL.RawQuery != "expand=all" {
		t.Errorf("request %s %s?%s", r.Method, r.URL.Path, r.URL.RawQuery)
	}
	for k, want := range map[string]string{
		"Authorization": "Bearer " + secret, "Idempotency-Key": "k1",
		"Accept": "application/json", "Content-Type": "application/json",
	} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if string(body) != `{"amount":1000}` {
		t.Errorf("body %s", body)
	}
}

func TestBodies(t *testing.T) {
	e := serve(t, answer(204, nil, ""))
	c := &Client{Name: "acme"}
	ctx, _ := logged(t)
	tests := map[string]struct {
		req      Request
		wantType string
		wantBody string
	}{
		"none":                 {req: Request{Method: "GET"}},
		"form":                 {req: Request{Method: "POST", Form: url.Values{"To": {"+56911112222"}, "Body": {"hola"}}}, wantType: "application/x-www-form-urlencoded", wantBody: "Body=hola&To=%2B56911112222"},
		"raw with its type":    {req: Request{Method: "POST", Body: []byte(`<a/>`), Header: http.Header{"Content-Type": {"application/xml"}}}, wantType: "application/xml", wantBody: "<a/>"},
		"JSON with given type": {req: Request{Method: "POST", JSON: []int{1}, Header: http.Header{"Content-Type": {"application/vnd.api+json"}}}, wantType: "application/vnd.api+json", wantBody: "[1]"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tc.req.Op, tc.req.URL = "op", e.srv.URL
			if _, err := c.Do(ctx, tc.req, nil, nil); err != nil {
				t.Fatal(err)
			}
			r, body := <-e.last, <-e.body
			if got := r.Header.Get("Content-Type"); got != tc.wantType {
				t.Errorf("Content-Type = %q, want %q", got, tc.wantType)
			}
			if string(body) != tc.wantBody {
				t.Errorf("body = %q, want %q", body, tc.wantBody)
			}
		})
	}

	_, err := c.Send(ctx, Request{Op: "op", Method: "POST", URL: e.srv.URL, JSON: 1, Body: []byte("x")})
	if provider.KindOf(err) != provider.KindInvalid {
		t.Errorf("two bodies: %v, want invalid", err)
	}
	_, err = c.Send(ctx, Request{Op: "op", Method: "POST", URL: e.srv.URL, JSON: func() {}})
	if provider.KindOf(err) != provider.KindInvalid || !strings.HasPrefix(err.Error(), "acme: op: encode request: ") {
		t.Errorf("unencodable JSON: %v, want invalid", err)
	}
	_, err = c.Send(ctx, Request{Op: "op", Method: "BAD METHOD", URL: e.srv.URL + "/" + secret})
	if provider.KindOf(err) != provider.KindInvalid || NoAnswer(err) {
		t.Errorf("bad method: %v, want invalid", err)
	}
}

func TestRefusals(t *testing.T) {
	tests := map[string]struct {
		status    int
		header    map[string]string
		refusal   *Refusal // nil: Do's default
		wantKind  provider.Kind
		wantCode  string
		wantRetry time.Duration
		wantText  string
	}{
		"401":              {status: 401, wantKind: provider.KindUnauthorized, wantText: "acme: create: HTTP 401"},
		"403":              {status: 403, wantKind: provider.KindUnauthorized},
		"404":              {status: 404, wantKind: provider.KindInvalid},
		"422 with details": {status: 422, refusal: &Refusal{Code: "amount_too_small", Message: "amount must be at least 50"}, wantKind: provider.KindInvalid, wantCode: "amount_too_small", wantText: "acme: create: HTTP 422: amount must be at least 50"},
		"429":              {status: 429, header: map[string]string{"Retry-After": "7"}, wantKind: provider.KindRateLimited, wantRetry: 7 * time.Second},
		"429 own delay":    {status: 429, header: map[string]string{"Retry-After": "7"}, refusal: &Refusal{RetryAfter: time.Minute}, wantKind: provider.KindRateLimited, wantRetry: time.Minute},
		"500":              {status: 500, wantKind: provider.KindRetryable, wantText: "HTTP 500"},
		"402 permanent":    {status: 402, refusal: &Refusal{Kind: provider.KindPermanent, Code: "card_declined", Data: "ch_1"}, wantKind: provider.KindPermanent, wantCode: "card_declined"},
		"400 rate limited": {status: 400, header: map[string]string{"Retry-After": "3"}, refusal: &Refusal{Kind: provider.KindRateLimited}, wantKind: provider.KindRateLimited, wantRetry: 3 * time.Second},
		"3xx":              {status: 300, wantKind: provider.KindRetryable},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := serve(t, answer(tc.status, tc.header, `{"error":"`+secret+`"}`))
			c := &Client{Name: "acme"}
			ctx, logs := logged(t)
			var refuse func(*Response) error
			if tc.refusal != nil {
				refuse = func(r *Response) error { return c.Refuse(r, *tc.refusal) }
			}
			resp, err := c.Do(ctx, Request{Op: "create", Method: "POST", URL: e.srv.URL, Secrets: []string{secret}, LogAttrs: []any{"account", "acct_1"}}, nil, refuse)
			if resp == nil || resp.Status != tc.status || !bytes.Contains(resp.Body, []byte(secret)) {
				t.Fatalf("response %+v, want the answer", resp)
			}
			if provider.KindOf(err) != tc.wantKind || provider.CodeOf(err) != tc.wantCode || provider.RetryAfter(err) != tc.wantRetry {
				t.Errorf("err = %v: kind %s code %q retry %s; want %s %q %s", err, provider.KindOf(err), provider.CodeOf(err), provider.RetryAfter(err), tc.wantKind, tc.wantCode, tc.wantRetry)
			}
			if StatusOf(err) != tc.status || NoAnswer(err) {
				t.Errorf("StatusOf = %d, NoAnswer = %v", StatusOf(err), NoAnswer(err))
			}
			var se *StatusError
			if !errors.As(err, &se) || se.Op != "create" || se.Code != tc.wantCode || (tc.refusal != nil && se.Data != tc.refusal.Data) {
				t.Errorf("StatusError = %+v", se)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("message %q lacks %q", err, tc.wantText)
			}
			line := logs.String()
			for _, want := range []string{"acme call failed", "op=create", "kind=" + tc.wantKind.String(), "account=acct_1", "status=" + strconv.Itoa(tc.status)} {
				if !strings.Contains(line, want) {
					t.Errorf("log %q lacks %q", line, want)
				}
			}
			if strings.Contains(line, secret) || strings.Contains(err.Error(), secret) {
				t.Errorf("secret leaked: %q, %q", line, err)
			}
		})
	}
}

func TestMalformedAndRawAnswers(t *testing.T) {
	e := serve(t, answer(200, nil, `{"token": "`+secret))
	c := &Client{Name: "acme"}
	ctx, logs := logged(t)
	req := Request{Op: "get", Method: "GET", URL: e.srv.URL, Secrets: []string{secret}}
	var out struct{ Token string }
	_, err := c.Do(ctx, req, &out, nil)
	if provider.KindOf(err) != provider.KindRetryable || !strings.Contains(err.Error(), "acme: get: malformed response") {
		t.Errorf("malformed: %v", err)
	}
	if strings.Contains(err.Error(), secret) || strings.Contains(logs.String(), secret) || !strings.Contains(logs.String(), "status=200") {
		t.Errorf("malformed: err %q, logs %q", err, logs)
	}
	raw := json.RawMessage("stale")
	if _, err := c.Do(ctx, req, &raw, nil); err != nil || string(raw) != `{"token": "`+secret {
		t.Errorf("raw = %q, %v; want the body as is", raw, err)
	}
}

func TestMaxResponse(t *testing.T) {
	e := serve(t, answer(200, nil, strings.Repeat("x", 100)))
	c := &Client{Name: "acme", MaxResponse: 10}
	resp, err := c.Send(context.Background(), Request{Op: "get", Method: "GET", URL: e.srv.URL})
	if err != nil || len(resp.Body) != 10 {
		t.Fatalf("Send = %d bytes, %v; want 10", len(resp.Body), err)
	}
}

func TestNoAnswer(t *testing.T) {
	c := &Client{Name: "acme"}
	t.Run("connection refused", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		target := srv.URL + "/" + secret
		srv.Close()
		ctx, logs := logged(t)
		resp, err := c.Do(ctx, Request{Op: "get", Method: "GET", URL: target, Secrets: []string{secret}}, nil, nil)
		if resp != nil || provider.KindOf(err) != provider.KindRetryable || !NoAnswer(err) || StatusOf(err) != 0 {
			t.Fatalf("Do = %v, %v (kind %s)", resp, err, provider.KindOf(err))
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Error("a refused connection matches context.DeadlineExceeded")
		}
		if strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "[redacted]") || !strings.Contains(logs.String(), "acme call failed") {
			t.Errorf("err %q, logs %q", err, logs)
		}
	})

	stall := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-stall }))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stall) })
	t.Run("context deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := c.Send(ctx, Request{Op: "get", Method: "GET", URL: srv.URL})
		if provider.KindOf(err) != provider.KindRetryable || !provider.IsTimeout(err) || !NoAnswer(err) {
			t.Errorf("err = %v, want a retryable timeout", err)
		}
	})
	t.Run("client timeout", func(t *testing.T) {
		slow := &Client{Name: "acme", HTTP: &http.Client{Timeout: 50 * time.Millisecond}}
		_, err := slow.Send(context.Background(), Request{Op: "get", Method: "GET", URL: srv.URL})
		if provider.KindOf(err) != provider.KindRetryable || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want a network timeout to match DeadlineExceeded", err)
		}
	})
}

func TestParseURL(t *testing.T) {
	c := &Client{Name: "acme"}
	tests := map[string]struct {
		raw, want string
		invalid   bool
	}{
		"https":          {raw: "https://api.example.com", want: "https://api.example.com"},
		"trailing slash": {raw: " http://127.0.0.1:8080/ ", want: "http://127.0.0.1:8080"},
		"with a path":    {raw: "https://h.example/v2/", want: "https://h.example/v2"},
		"no scheme":      {raw: "api.example.com", invalid: true},
		"ftp":            {raw: "ftp://h.example", invalid: true},
		"query":          {raw: "https://h.example/?x=1", invalid: true},
		"fragment":       {raw: "https://h.example/#x", invalid: true},
		"user info":      {raw: "https://u:" + secret + "@h.example", invalid: true},
		"unparseable":    {raw: "http://h.example/%zz", invalid: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := c.ParseURL("base_url", tc.raw)
			if tc.invalid {
				if provider.KindOf(err) != provider.KindInvalid || !strings.HasPrefix(err.Error(), "acme: base_url ") || strings.Contains(err.Error(), secret) {
					t.Errorf("ParseURL(%q) = %q, %v; want a clean invalid error", tc.raw, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("ParseURL(%q) = %q, %v; want %q", tc.raw, got, err, tc.want)
			}
		})
	}
	tn := provider.NewTenant("t1", map[string]string{provider.BaseURLField: "http://127.0.0.1:9/"}, nil)
	if got, err := c.BaseURL(tn, "https://default.example"); err != nil || got != "http://127.0.0.1:9" {
		t.Errorf("BaseURL = %q, %v", got, err)
	}
	if got, err := c.BaseURL(provider.NewTenant("t1", nil, nil), "https://default.example"); err != nil || got != "https://default.example" {
		t.Errorf("BaseURL unset = %q, %v", got, err)
	}
}

func TestRedactAndClip(t *testing.T) {
	if got := Redact("key sk_live_0123456789 and short", secret, "short", ""); got != "key [redacted] and short" {
		t.Errorf("Redact = %q", got)
	}
	if got := Clip("añb", 2); got != "a" {
		t.Errorf("Clip cut a rune: %q", got)
	}
	if got := Clip("abc", 5); got != "abc" {
		t.Errorf("Clip changed a short string: %q", got)
	}
}
