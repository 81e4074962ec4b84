// Package providertest is the conformance kit for PipeCore plugin authors.
// It runs a provider in-process behind the real gRPC server and client the
// gateway uses (same message limits, error mapping and conversions), and
// checks the capability contracts, one subtest per check:
//
//	func TestConformance(t *testing.T) {
//		providertest.RunPayments(t, newProvider(), providertest.PaymentsConfig{
//			Tenant: providertest.Tenant("acme", settings, credentials),
//		})
//	}
//
// RunDelivery and RunMessaging do the same for the other capabilities.
// CheckBinary runs the contract against a built plugin binary over the
// gateway's real launch path (the CLI's "pipecore plugins test PATH") and
// returns a Report instead of failing a test. FakePayments, FakeDelivery
// and FakeMessaging are in-memory providers for tests of the gateway.
package providertest

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/internal/wire"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/pluginclient"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/providerserver"
)

// Conn is the host's view of a provider served in-process over gRPC.
type Conn struct {
	// Info is the plugin's Info as the gateway reads it (capabilities filled).
	Info provider.Info
	// Capability views; nil when the provider lacks the capability.
	Payments  payments.Provider
	Delivery  delivery.Provider
	Messaging messaging.Provider
	// Webhooks is nil when Info declares no webhook.
	Webhooks provider.WebhookParser
	// Logs holds everything the provider logged through provider.Log (and,
	// for ConnectBinary, the host's go-plugin lines).
	Logs *Buffer

	plugin *pluginclient.Plugin // set by ConnectBinary
}

// Connect serves p on a unix socket in t.TempDir() with the plugin's gRPC
// server options, dials it with the host's options and returns the host
// view. Everything stops when the test ends.
func Connect(t testing.TB, p provider.Provider) *Conn {
	t.Helper()
	logs := &Buffer{}
	log := providerserver.NewLogger(logs, slog.LevelDebug)

	lis, err := net.Listen("unix", filepath.Join(t.TempDir(), "plugin.sock"))
	if err != nil {
		t.Fatalf("providertest: listen: %v", err)
	}
	srv := grpc.NewServer(wire.ServerOptions(log)...)
	wire.RegisterWithLogger(srv, p, log)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	conn, err := grpc.NewClient("unix://"+lis.Addr().String(),
		append(wire.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatalf("providertest: dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })

	wc := wire.NewClient(conn)
	info, err := wc.Load(context.Background())
	if err != nil {
		t.Fatalf("providertest: load info: %v", err)
	}
	c := &Conn{Info: info, Logs: logs}
	if pc := wc.Payments(); pc != nil {
		c.Payments = pc
	}
	if dc := wc.Delivery(); dc != nil {
		c.Delivery = dc
	}
	if mc := wc.Messaging(); mc != nil {
		c.Messaging = mc
	}
	if info.Webhook != nil {
		c.Webhooks = wc
	}
	return c
}

// Tenant builds a tenant for tests.
func Tenant(id string, settings, credentials map[string]string) provider.Tenant {
	return provider.NewTenant(id, settings, credentials)
}

// Buffer is a concurrency-safe bytes.Buffer for captured logs.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
