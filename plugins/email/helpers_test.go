package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipecore/pipecore/plugins/email/resendfake"
	"github.com/pipecore/pipecore/plugins/email/sendgridfake"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/provider"
)

const testFrom = "Acme <no-reply@acme.cl>"

// startSendGrid starts the SendGrid fake for the test.
func startSendGrid(t testing.TB) *sendgridfake.Server {
	t.Helper()
	f := sendgridfake.Start()
	t.Cleanup(f.Close)
	return f
}

// startResend starts the Resend fake for the test.
func startResend(t testing.TB) *resendfake.Server {
	t.Helper()
	f := resendfake.Start()
	t.Cleanup(f.Close)
	return f
}

// tenant returns tenant "acme" on transport tr with the API at base and
// key as api_key; mut changes the settings before the tenant is built.
func tenant(tr, base, key string, mut func(settings, creds map[string]string)) provider.Tenant {
	settings := map[string]string{fieldFrom: testFrom, provider.BaseURLField: base}
	if tr != "" {
		settings[fieldTransport] = tr
	}
	creds := map[string]string{fieldAPIKey: key}
	if mut != nil {
		mut(settings, creds)
	}
	return provider.NewTenant("acme", settings, creds)
}

// emailReq is a valid email send request for tenant t.
func emailReq(t provider.Tenant, key string) messaging.SendRequest {
	return messaging.SendRequest{
		Tenant: t, IdempotencyKey: key, MessageID: "msg_" + key, Channel: messaging.ChannelEmail,
		To: "Camila Rojas <camila.rojas@example.cl>", Subject: "Tu pedido #1234 va en camino",
		Text: "Hola Camila, tu pedido va en camino.", HTML: "<p>Hola Camila, tu pedido va en camino.</p>",
	}
}

// testCtx returns a context that ends with the test and logs into buf.
func testCtx(t testing.TB) (context.Context, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return provider.WithLogger(ctx, slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))), buf
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// wantKind fails the test unless err has kind k.
func wantKind(t testing.TB, err error, k provider.Kind) {
	t.Helper()
	if got := provider.KindOf(err); got != k {
		t.Fatalf("err = %v (kind %s), want kind %s", err, got, k)
	}
}

// noSecret fails the test when s contains any of the secrets.
func noSecret(t testing.TB, what, s string, secrets ...string) {
	t.Helper()
	for _, v := range secrets {
		if v != "" && strings.Contains(s, v) {
			t.Errorf("%s contains a secret: %s", what, strings.ReplaceAll(s, v, "[SECRET]"))
		}
	}
}

// jsonPath returns the value at a dotted path (numeric segments index
// lists) of a decoded JSON document, or nil.
func jsonPath(doc any, path string) any {
	cur := doc
	for _, seg := range strings.Split(path, ".") {
		switch node := cur.(type) {
		case map[string]any:
			cur = node[seg]
		case []any:
			var i int
			if err := json.Unmarshal([]byte(seg), &i); err != nil || i < 0 || i >= len(node) {
				return nil
			}
			cur = node[i]
		default:
			return nil
		}
	}
	return cur
}
