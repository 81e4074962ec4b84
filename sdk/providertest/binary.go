package providertest

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/pluginclient"
	"github.com/pipecore/pipecore/sdk/provider"
)

// ConnectBinary launches the plugin binary at path the way the gateway does
// (sdk/pluginclient: the binary's SHA-256 pinned as read now, the same
// handshake, gRPC with AutoMTLS, a clean environment) and loads its Info.
// Conn.Logs collects the host's and the plugin's log lines. The returned
// func stops the plugin; it is safe to call more than once.
func ConnectBinary(ctx context.Context, path string) (*Conn, func(), error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("providertest: %w", err)
	}
	sum := sha256.Sum256(b)
	logs := &Buffer{}
	p, err := pluginclient.Start(ctx, pluginclient.Config{
		Path: path, Checksum: sum[:],
		Logger: hclog.New(&hclog.LoggerOptions{Name: "plugin", Output: logs, Level: hclog.Debug, JSONFormat: true}),
	})
	if err != nil {
		if said := pluginOutput(logs, "plugin."+filepath.Base(path)); said != "" {
			return nil, nil, fmt.Errorf("providertest: plugin said %q: %w", said, err)
		}
		return nil, nil, fmt.Errorf("providertest: %w", err)
	}
	conn := &Conn{
		Info: p.Info(), Payments: p.Payments(), Delivery: p.Delivery(), Messaging: p.Messaging(),
		Webhooks: p.WebhookParser(), Logs: logs, plugin: p,
	}
	var once sync.Once
	return conn, func() { once.Do(p.Kill) }, nil
}

// pluginOutput returns what the plugin printed before it could be
// reached (such as providerserver.Serve's refusal to start), joined with
// " | ": go-plugin logs the plugin's stderr lines under module, and
// pluginclient logs stray stdout as "plugin output".
func pluginOutput(logs *Buffer, module string) string {
	var lines []string
	for _, l := range logLines(logs) {
		switch {
		case l.Message == "plugin output" && l.Line != "":
			lines = append(lines, l.Line)
		case l.Module == module && l.Message != "":
			lines = append(lines, l.Message)
		}
	}
	return strings.Join(lines, " | ")
}

type logLine struct {
	Message string `json:"@message"`
	Module  string `json:"@module"`
	Level   string `json:"@level"`
	Line    string `json:"line"`
	Error   string `json:"error"`
}

func logLines(logs *Buffer) []logLine {
	var out []logLine
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l)
		}
	}
	return out
}

// BinaryConfig tells CheckBinary how far to go. Its zero value runs the
// offline contract only.
type BinaryConfig struct {
	// Settings and Credentials, when either is set, describe a tenant whose
	// provider is reachable (a sandbox or the author's fake: set base_url);
	// CheckBinary then also runs the online checks of every capability
	// (create, quote, send, ...), prefixed with the capability's name.
	Settings, Credentials map[string]string
	// To lists messaging recipients for online sends, as MessagingConfig.To;
	// empty skips the sends.
	To map[messaging.Channel]string
	// Timeout bounds each online call. Zero means 20s.
	Timeout time.Duration
}

// probeDeadline bounds each offline call against an unreachable base_url.
const probeDeadline = 2 * time.Second

// CheckBinary launches the plugin at path and runs every contract check
// that applies to its capabilities, returning one Result per check. The
// offline contract always runs: the handshake and protocol version; Info is
// valid; every declared capability is served; ParseWebhook on an empty and
// on a garbage body fails with KindInvalid or KindPermanent; optional
// operations on an unknown id fail with a classified error (KindUnsupported
// when not implemented); a call with an unreachable base_url (refused, and
// accepted but never answered) fails retryable within its deadline; no
// secret appears in errors or logs; the process exits cleanly when closed.
// The online checks run when cfg carries settings or credentials.
//
// A plugin that fails to start yields a report with a failed "handshake"
// and a nil error; the error is for what keeps the checks from running at
// all (an unreadable path, a cancelled ctx).
func CheckBinary(ctx context.Context, path string, cfg BinaryConfig) (Report, error) {
	if _, err := os.Stat(path); err != nil {
		return Report{}, fmt.Errorf("providertest: %w", err)
	}
	conn, closePlugin, err := ConnectBinary(ctx, path)
	if err != nil {
		if ctx.Err() != nil {
			return Report{}, err
		}
		// go-plugin's start errors carry a long, generic explanation.
		detail, _, _ := strings.Cut(err.Error(), "\n")
		return Report{Results: []Result{{Check: "handshake", Status: StatusFail, Detail: detail}}}, nil
	}
	defer closePlugin()
	rep := Report{Plugin: conn.Info.Name, Version: conn.Info.Version}

	refused, err := refusedURL()
	if err != nil {
		return rep, err
	}
	hole, err := newBlackhole()
	if err != nil {
		return rep, err
	}
	defer hole.Close()

	b := &binaryCheck{
		path:    path,
		s:       newSuite(ctx, conn, probeTenant(conn.Info, cfg, refused), nil),
		stalled: probeTenant(conn.Info, cfg, hole.URL()),
		given:   len(cfg.Settings)+len(cfg.Credentials) > 0,
	}
	b.s.callTimeout = probeDeadline
	b.s.extra = []provider.Tenant{b.stalled}
	checks := b.offline()
	if b.given {
		checks = append(checks, b.online(cfg)...)
	}
	checks = append(checks, b.s.classifiedCheck(), b.s.noSecretsCheck(), b.cleanExit(closePlugin))
	rep.Results = runRecorded(checks, "")
	return rep, ctx.Err()
}

// binaryPrefix starts the file name of every plugin binary the gateway
// discovers.
const binaryPrefix = "pipecore-plugin-"

type binaryCheck struct {
	path    string
	s       *suite          // its tenant's base_url refuses connections
	stalled provider.Tenant // base_url accepts and never answers
	given   bool            // settings or credentials were given
}

// probeTenant is cfg's tenant with base_url set to url and every declared
// secret field cfg leaves empty set to a recognisable sentinel.
func probeTenant(info provider.Info, cfg BinaryConfig, url string) provider.Tenant {
	settings := maps.Clone(cfg.Settings)
	if settings == nil {
		settings = map[string]string{}
	}
	settings[provider.BaseURLField] = url
	secrets := maps.Clone(cfg.Credentials)
	if secrets == nil {
		secrets = map[string]string{}
	}
	for _, f := range info.Fields {
		if f.Secret && secrets[f.Name] == "" {
			secrets[f.Name] = "pipecore-check-" + f.Name + "-" + randomHex(6)
		}
	}
	return provider.NewTenant("pipecore-check", settings, secrets)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (b *binaryCheck) offline() []check {
	s, info := b.s, b.s.conn.Info
	checks := []check{
		{name: "handshake", run: func(t reporter) {
			t.Logf("protocol %d, %s %s", pluginclient.ProtocolVersion, info.Name, info.Version)
		}},
		{name: "info", run: func(t reporter) {
			if err := info.Validate(); err != nil {
				t.Fatalf("Info invalid: %v", err)
			}
			if len(info.Capabilities) == 0 {
				t.Fatalf("Info declares no capability")
			}
			// The gateway discovers pipecore-plugin-NAME and refuses a
			// binary whose Info.Name is not NAME.
			base := filepath.Base(b.path)
			switch name, ok := strings.CutPrefix(base, binaryPrefix); {
			case !ok:
				t.Logf("the gateway looks for %s%s, not %s", binaryPrefix, info.Name, base)
			case name != info.Name:
				t.Errorf("binary %s reports Info.Name %q: the gateway refuses it; name it %s%s", base, info.Name, binaryPrefix, info.Name)
			}
		}},
	}
	caps := check{name: "capabilities"}
	unreachable := check{name: "unreachable"}
	for _, c := range info.Capabilities {
		call := b.probe(c)
		caps.subs = append(caps.subs, check{name: string(c), run: func(t reporter) {
			err := call(s.callCtx(t), s.tenant)
			s.rec.add(err)
			if errors.Is(err, provider.ErrUnsupported) || provider.KindOf(err) == provider.KindUnsupported {
				t.Fatalf("Info declares %s but a required %s operation is not served: %v", c, c, err)
			}
		}})
		unreachable.subs = append(unreachable.subs, check{name: string(c), subs: []check{
			{name: "refused", run: func(t reporter) { b.unreachable(t, call, s.tenant) }},
			{name: "stalled", run: func(t reporter) { b.unreachable(t, call, b.stalled) }},
		}})
	}
	checks = append(checks, caps)
	checks = append(checks, check{name: "webhook", subs: []check{
		{name: "empty_body", run: func(t reporter) { b.badWebhook(t, nil) }},
		{name: "garbage_body", run: func(t reporter) { b.badWebhook(t, []byte("\x00\xff{not json <x> a=%zz&")) }},
	}})
	if s.conn.Payments != nil {
		checks = append(checks, check{name: "optional_operations", run: b.optionalOperations})
	}
	return append(checks, unreachable)
}

// probe returns one cheap call of capability c: create, quote or send.
func (b *binaryCheck) probe(c provider.Capability) func(ctx context.Context, tenant provider.Tenant) error {
	conn := b.s.conn
	switch c {
	case provider.CapabilityPayments:
		return func(ctx context.Context, tenant provider.Tenant) error {
			_, err := conn.Payments.CreatePayment(ctx, payments.CreateRequest{
				Tenant: tenant, IdempotencyKey: "pipecore-check-" + randomHex(8), PaymentID: "pay_pipecore_check",
				Amount: provider.Money{Amount: 1000, Currency: "CLP"}, Reference: "pipecore-check", ReturnURL: "https://shop.example/return",
			})
			return err
		}
	case provider.CapabilityDelivery:
		return func(ctx context.Context, tenant provider.Tenant) error {
			_, err := conn.Delivery.Quote(ctx, delivery.QuoteRequest{Tenant: tenant, Pickup: DefaultPickup, Dropoff: DefaultDropoff, Reference: "pipecore-check"})
			return err
		}
	case provider.CapabilityMessaging:
		// The plugin may serve only some channels: the first answer that
		// is neither "invalid" nor "unsupported" counts.
		return func(ctx context.Context, tenant provider.Tenant) error {
			var err error
			for _, to := range []struct {
				ch messaging.Channel
				to string
			}{{messaging.ChannelWhatsApp, "+56912345678"}, {messaging.ChannelSMS, "+56912345678"}, {messaging.ChannelEmail, "pipecore-check@example.com"}} {
				_, err = conn.Messaging.Send(ctx, messaging.SendRequest{
					Tenant: tenant, IdempotencyKey: "pipecore-check-" + randomHex(8), MessageID: "msg_pipecore_check",
					Channel: to.ch, To: to.to, Subject: "PipeCore check", Text: "PipeCore check",
				})
				if k := provider.KindOf(err); k != provider.KindInvalid && k != provider.KindUnsupported {
					return err
				}
			}
			return err
		}
	}
	return func(context.Context, provider.Tenant) error {
		return provider.Invalid(fmt.Errorf("providertest: unknown capability %q", c))
	}
}

// unreachable checks that call, against tenant's unreachable base_url,
// fails retryable within probeDeadline (plus slack for the round trip).
func (b *binaryCheck) unreachable(t reporter, call func(context.Context, provider.Tenant) error, tenant provider.Tenant) {
	ctx, cancel := context.WithTimeout(b.s.ctx, probeDeadline)
	defer cancel()
	start := time.Now()
	err := call(ctx, tenant)
	b.s.rec.add(err)
	took := time.Since(start)
	if took > probeDeadline+3*time.Second {
		t.Errorf("call with a %s deadline returned after %s", probeDeadline, took.Round(time.Millisecond))
	}
	_, declared := b.s.conn.Info.Field(provider.BaseURLField)
	switch k := provider.KindOf(err); {
	case err == nil && declared:
		t.Fatalf("call succeeded although base_url (a declared field) is unreachable: the plugin ignores base_url")
	case err == nil:
		t.Skipf("call succeeded without reaching base_url: the plugin declares no base_url and calls no API here")
	case k == provider.KindRetryable:
	case (k == provider.KindInvalid || k == provider.KindUnauthorized) && !b.given:
		t.Skipf("the plugin refused the placeholder tenant (%s: %v); pass settings and credentials to run this check", k, err)
	default:
		t.Fatalf("unreachable base_url: err = %v (kind %s), want a retryable error", err, k)
	}
}

func (b *binaryCheck) badWebhook(t reporter, body []byte) {
	if b.s.conn.Webhooks == nil {
		t.Skipf("Info declares no webhook")
	}
	evs, err := b.s.conn.Webhooks.ParseWebhook(b.s.callCtx(t), provider.WebhookRequest{
		Tenant: b.s.tenant, Headers: map[string][]string{"Content-Type": {"application/json"}}, Body: body,
	})
	b.s.rec.add(err)
	switch k := provider.KindOf(err); {
	case err == nil:
		t.Fatalf("ParseWebhook(%q) = %d events, nil error; want a KindInvalid or KindPermanent error", body, len(evs))
	case k != provider.KindInvalid && k != provider.KindPermanent:
		t.Fatalf("ParseWebhook(%q): err = %v (kind %s), want kind invalid or permanent", body, err, k)
	}
}

// optionalOperations calls Capture, Confirm and Cancel on an unknown
// payment at an unreachable provider: each must fail with a classified
// error, KindUnsupported exactly when it wraps provider.ErrUnsupported.
func (b *binaryCheck) optionalOperations(t reporter) {
	s := b.s
	pay := s.conn.Payments
	capturer, _ := pay.(payments.Capturer) // the wire client has every method
	confirmer, _ := pay.(payments.Confirmer)
	canceler, _ := pay.(payments.Canceler)
	if capturer == nil || confirmer == nil || canceler == nil {
		t.Fatalf("payments client lacks an optional method")
	}
	const id = "pay_pipecore_check_unknown"
	ops := []struct {
		name string
		call func(context.Context) error
	}{
		{"capture", func(ctx context.Context) error {
			_, err := capturer.Capture(ctx, payments.CaptureRequest{Tenant: s.tenant, IdempotencyKey: "pipecore-check-" + randomHex(8), ID: id})
			return err
		}},
		{"confirm", func(ctx context.Context) error {
			_, err := confirmer.Confirm(ctx, payments.ConfirmRequest{Tenant: s.tenant, Token: id})
			return err
		}},
		{"cancel", func(ctx context.Context) error {
			_, err := canceler.Cancel(ctx, payments.CancelRequest{Tenant: s.tenant, IdempotencyKey: "pipecore-check-" + randomHex(8), ID: id})
			return err
		}},
	}
	var seen []string
	for _, op := range ops {
		err := op.call(s.callCtx(t))
		s.rec.add(err)
		unsupported := errors.Is(err, provider.ErrUnsupported)
		switch k := provider.KindOf(err); {
		case err == nil:
			t.Errorf("%s of an unknown payment at an unreachable provider succeeded", op.name)
		case unsupported != (k == provider.KindUnsupported):
			t.Errorf("%s: err = %v (kind %s): KindUnsupported must go with provider.ErrUnsupported", op.name, err, k)
		default:
			seen = append(seen, op.name+"="+k.String())
		}
	}
	t.Logf("%s", strings.Join(seen, ", "))
}

func (b *binaryCheck) online(cfg BinaryConfig) []check {
	tenant := provider.NewTenant("pipecore-check", cfg.Settings, cfg.Credentials)
	badSecrets := map[string]string{}
	for _, f := range b.s.conn.Info.Fields {
		if f.Secret {
			badSecrets[f.Name] = "pipecore-invalid-" + f.Name
		}
	}
	bad := provider.NewTenant("pipecore-check", cfg.Settings, badSecrets)
	b.s.extra = append(b.s.extra, tenant, bad)
	badp := &bad
	if len(badSecrets) == 0 {
		badp = nil // no credentials to get wrong: bad_credentials skips
	}
	var out []check
	add := func(c provider.Capability, checks []check) {
		// The shared errors_classified and no_secrets_leak run once, last.
		checks = slices.DeleteFunc(checks, func(c check) bool {
			return c.name == "errors_classified" || c.name == "no_secrets_leak"
		})
		out = append(out, check{name: string(c), subs: checks})
	}
	for _, c := range b.s.conn.Info.Capabilities {
		s := newSuite(b.s.ctx, b.s.conn, tenant, badp)
		s.rec, s.callTimeout, s.lenient = b.s.rec, cfg.Timeout, true
		switch c {
		case provider.CapabilityPayments:
			add(c, paymentChecks(s, PaymentsConfig{Tenant: tenant, BadCredentials: badp}, nil))
		case provider.CapabilityDelivery:
			add(c, deliveryChecks(s, DeliveryConfig{Tenant: tenant, BadCredentials: badp}))
		case provider.CapabilityMessaging:
			add(c, messagingChecks(s, MessagingConfig{Tenant: tenant, BadCredentials: badp, To: cfg.To}))
		}
	}
	return out
}

// cleanExit closes the plugin and checks that the process exited by
// itself, with status 0, without being killed.
func (b *binaryCheck) cleanExit(closePlugin func()) check {
	return check{name: "clean_exit", run: func(t reporter) {
		p := b.s.conn.plugin
		closePlugin()
		deadline := time.Now().Add(5 * time.Second)
		for !p.Exited() {
			if time.Now().After(deadline) {
				t.Fatalf("plugin process still running 5s after close")
			}
			time.Sleep(20 * time.Millisecond)
		}
		for _, l := range logLines(b.s.conn.Logs) {
			switch {
			case l.Message == "plugin failed to exit gracefully":
				t.Errorf("plugin did not exit when the gateway closed the connection and was killed")
			case l.Message == "plugin process exited" && l.Error != "":
				t.Errorf("plugin process exited with an error: %s", l.Error)
			}
		}
	}}
}

// refusedURL returns a loopback URL nothing listens on.
func refusedURL() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("providertest: %w", err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return "http://" + addr, nil
}

// blackhole accepts connections on loopback and never answers.
type blackhole struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	done  chan struct{}
}

func newBlackhole() (*blackhole, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("providertest: %w", err)
	}
	h := &blackhole{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
		}
	}()
	return h, nil
}

func (h *blackhole) URL() string { return "http://" + h.ln.Addr().String() }

func (h *blackhole) Close() {
	_ = h.ln.Close()
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		_ = c.Close()
	}
}
