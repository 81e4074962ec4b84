package httpserver_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/pipecore/pipecore/core/internal/httpserver"
)

func serve(t *testing.T, cfg httpserver.Config, h fasthttp.RequestHandler) string {
	t.Helper()
	srv := httpserver.New(cfg, h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return "http://" + ln.Addr().String()
}

func TestLimitsAndErrors(t *testing.T) {
	url := serve(t, httpserver.Config{MaxBodyBytes: 1024, MaxHeaderBytes: 4096}, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/panic" {
			panic("boom")
		}
		httpserver.WriteJSON(ctx, 200, map[string]string{"id": httpserver.RequestID(ctx)})
	})
	tests := map[string]struct {
		path   string
		body   string
		header [2]string
		status int
		code   string
	}{
		"ok":              {path: "/", status: 200},
		"body too large":  {path: "/", body: strings.Repeat("x", 2048), status: 413, code: "body_too_large"},
		"header too long": {path: "/", header: [2]string{"X-Big", strings.Repeat("h", 8192)}, status: 431},
		"handler panic":   {path: "/panic", status: 500, code: "internal_error"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// A raw connection: the server answers 413/431 and closes before
			// the whole request is written, which an http.Client reports as
			// a broken pipe instead of the answer.
			conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var req bytes.Buffer
			fmt.Fprintf(&req, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n", tc.path, len(tc.body))
			if tc.header[0] != "" {
				fmt.Fprintf(&req, "%s: %s\r\n", tc.header[0], tc.header[1])
			}
			req.WriteString("\r\n" + tc.body)
			go func() { _, _ = conn.Write(req.Bytes()) }()
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || (tc.code != "" && !bytes.Contains(b, []byte(`"code":"`+tc.code+`"`))) {
				t.Fatalf("%d %s, want %d %s", resp.StatusCode, b, tc.status, tc.code)
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	url := serve(t, httpserver.Config{}, func(ctx *fasthttp.RequestCtx) {
		httpserver.WriteRaw(ctx, 200, []byte(`"`+httpserver.RequestID(ctx)+`"`))
	})
	get := func(id string) (string, string) {
		req, _ := http.NewRequest("GET", url, nil)
		if id != "" {
			req.Header.Set(httpserver.RequestIDHeader, id)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.Header.Get(httpserver.RequestIDHeader), string(b)
	}
	if h, b := get("trace-123"); h != "trace-123" || b != `"trace-123"` {
		t.Fatalf("given id not kept: %q %q", h, b)
	}
	if h, _ := get("bad id with spaces"); !strings.HasPrefix(h, "req_") {
		t.Fatalf("unsafe id not replaced: %q", h)
	}
	if h, _ := get(""); !strings.HasPrefix(h, "req_") {
		t.Fatalf("no id generated: %q", h)
	}
}
