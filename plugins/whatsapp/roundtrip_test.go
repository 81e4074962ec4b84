package main

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // Twilio's signature is HMAC-SHA1.
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pipecore/pipecore/plugins/whatsapp/metafake"
	"github.com/pipecore/pipecore/plugins/whatsapp/twiliofake"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/providertest"
)

// gateway stands in for the core's webhook ingress: it verifies a webhook
// with verify and hands the body to ParseWebhook for tenant.
type gateway struct {
	*httptest.Server
	mu     sync.Mutex
	events []provider.Event
	errs   []error
}

func newGateway(t *testing.T, tn provider.Tenant, verify func(r *http.Request, body []byte) bool) *gateway {
	t.Helper()
	g := &gateway{}
	p := newProvider()
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !verify(r, body) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		evs, err := p.ParseWebhook(r.Context(), provider.WebhookRequest{Tenant: tn, Headers: r.Header, Body: body})
		g.mu.Lock()
		g.events = append(g.events, evs...)
		if err != nil {
			g.errs = append(g.errs, err)
		}
		g.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(g.Close)
	return g
}

func (g *gateway) take(t *testing.T) []event {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.errs) > 0 {
		t.Fatalf("ParseWebhook errors: %v", g.errs)
	}
	out := decode(t, g.events)
	g.events = nil
	return out
}

// The Meta fake's webhooks verify as Meta's do and parse into the events a
// send leads to.
func TestMetaFakeRoundTrip(t *testing.T) {
	f := metafake.Start()
	defer f.Close()
	tn := cloudTenant(f.URL(), nil)
	g := newGateway(t, tn, func(r *http.Request, body []byte) bool {
		mac := hmac.New(sha256.New, []byte(testAppSecret))
		mac.Write(body)
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		return hmac.Equal([]byte(r.Header.Get("X-Hub-Signature-256")), []byte(want))
	})
	f.SetWebhook(g.URL+"/webhooks/whatsapp/acme", testAppSecret)

	rc, err := newProvider().Send(testCtx(t), messaging.SendRequest{Tenant: tn, Channel: messaging.ChannelWhatsApp, To: "+56987654321", Text: "hola"})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{"sent", "delivered", "read", "failed"} {
		if err := f.Status(rc.ID, st); err != nil {
			t.Fatalf("Status(%s): %v", st, err)
		}
	}
	evs := g.take(t)
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
		if e.Subject != rc.ID || e.ID != rc.ID+":"+e.Data["status"].(string) || e.Data["to"] != "+56987654321" || e.OccurredAt.IsZero() {
			t.Errorf("event = %+v", e)
		}
	}
	if want := []string{eventSent, eventDelivered, eventRead, eventFailed}; !slices.Equal(types, want) {
		t.Fatalf("types = %v, want %v", types, want)
	}
	if e, _ := evs[3].Data["error"].(map[string]any); e["code"] != "131026" {
		t.Errorf("failed error = %v", evs[3].Data["error"])
	}

	wamid, err := f.Inbound("+56987654321", "¿Llega hoy? ✅")
	if err != nil {
		t.Fatal(err)
	}
	evs = g.take(t)
	if len(evs) != 1 || evs[0].Type != eventReceived || evs[0].Subject != wamid {
		t.Fatalf("inbound events = %+v", evs)
	}
	d := evs[0].Data
	if d["text"] != "¿Llega hoy? ✅" || d["from"] != "+56987654321" || d["to"] != metafake.DisplayPhone || d["channel"] != "whatsapp" {
		t.Errorf("inbound data = %v", d)
	}

	// A wrong app secret is refused by the receiver, and Status says so.
	f.SetWebhook(g.URL+"/webhooks/whatsapp/acme", "another-secret")
	if err := f.Status(rc.ID, "read"); err == nil {
		t.Error("Status signed with the wrong secret: err = nil, want the 401")
	}
}

// The Twilio fake's webhooks verify as Twilio's do (over the exact URL)
// and parse into status and inbound events on both channels.
func TestTwilioFakeRoundTrip(t *testing.T) {
	f := twiliofake.Start()
	defer f.Close()
	tn := twilioTenant(f.URL(), nil)
	var hookURL string
	g := newGateway(t, tn, func(r *http.Request, body []byte) bool {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return false
		}
		s := hookURL
		for _, k := range slices.Sorted(maps.Keys(form)) {
			for _, v := range form[k] {
				s += k + v
			}
		}
		mac := hmac.New(sha1.New, []byte(twiliofake.AuthToken))
		mac.Write([]byte(s))
		return r.Header.Get("X-Twilio-Signature") == base64.StdEncoding.EncodeToString(mac.Sum(nil))
	})
	hookURL = g.URL + "/webhooks/whatsapp/acme?via=twilio"
	f.SetWebhook(hookURL)

	p := newProvider()
	wa, err := p.Send(testCtx(t), messaging.SendRequest{Tenant: tn, Channel: messaging.ChannelWhatsApp, To: "+56987654321", Text: "hola"})
	if err != nil {
		t.Fatal(err)
	}
	sms, err := p.Send(testCtx(t), messaging.SendRequest{Tenant: tn, Channel: messaging.ChannelSMS, To: "+56987654321", Text: "hola"})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct{ sid, status, typ, channel string }{
		{wa.ID, "sent", eventSent, "whatsapp"},
		{wa.ID, "delivered", eventDelivered, "whatsapp"},
		{wa.ID, "read", eventRead, "whatsapp"},
		{sms.ID, "undelivered", eventFailed, "sms"},
		{sms.ID, "queued", "", ""},
	}
	for _, s := range steps {
		if err := f.Status(s.sid, s.status); err != nil {
			t.Fatalf("Status(%s): %v", s.status, err)
		}
		evs := g.take(t)
		if s.typ == "" {
			if len(evs) != 0 {
				t.Errorf("%s: events %+v, want none", s.status, evs)
			}
			continue
		}
		if len(evs) != 1 || evs[0].Type != s.typ || evs[0].Subject != s.sid || evs[0].ID != s.sid+":"+s.status ||
			evs[0].Data["channel"] != s.channel || evs[0].Data["to"] != "+56987654321" {
			t.Errorf("%s: events %+v", s.status, evs)
		}
	}

	for _, in := range []struct{ from, to, channel string }{
		{"whatsapp:+56987654321", "whatsapp:" + twilioSender, "whatsapp"},
		{"+56987654321", twilioSender, "sms"},
	} {
		sid, err := f.Inbound(in.from, in.to, "Hola ✅ & adiós")
		if err != nil {
			t.Fatal(err)
		}
		evs := g.take(t)
		if len(evs) != 1 || evs[0].Type != eventReceived || evs[0].Subject != sid {
			t.Fatalf("inbound %s: %+v", in.channel, evs)
		}
		d := evs[0].Data
		if d["channel"] != in.channel || d["from"] != "+56987654321" || d["to"] != twilioSender || d["text"] != "Hola ✅ & adiós" || d["media"] != nil {
			t.Errorf("inbound %s data = %v", in.channel, d)
		}
	}

	// The signature covers the exact URL: another spelling fails.
	f.SetWebhook(strings.Replace(hookURL, "via=twilio", "via=other", 1))
	if err := f.Status(wa.ID, "read"); err == nil {
		t.Error("Status posted to another URL verified against hookURL: err = nil, want the 401")
	}
}

// Info's webhook spec picks the Twilio variant for Twilio tenants.
func TestInfo(t *testing.T) {
	info := newProvider().Info()
	if err := info.Validate(); err != nil {
		t.Fatalf("Info invalid: %v", err)
	}
	if info.Name != "whatsapp" {
		t.Errorf("Name = %q", info.Name)
	}
	spec := info.Webhook
	for value, want := range map[string]provider.SignatureScheme{"": provider.SchemeMetaSHA256, transportCloud: provider.SchemeMetaSHA256, transportTwilio: provider.SchemeTwilio} {
		if got := spec.For(value); got.Scheme != want {
			t.Errorf("For(%q).Scheme = %s, want %s", value, got.Scheme, want)
		}
	}
	if c := spec.For(transportCloud); c.Handshake != provider.HandshakeMeta || c.VerifyTokenField != fieldVerifyToken || c.SecretField != fieldAppSecret || len(c.DedupKey) != 0 {
		t.Errorf("cloud spec = %+v", c)
	}
	tw := spec.For(transportTwilio)
	if tw.SecretField != fieldAuthToken || !slices.Equal(tw.DedupKey, []string{"form:MessageSid", "form:MessageStatus"}) || tw.Handshake != "" {
		t.Errorf("twilio spec = %+v", tw)
	}
	for _, f := range info.Fields {
		if f.Required {
			t.Errorf("field %s is required; transport-specific fields must not be", f.Name)
		}
	}
	if f, ok := info.Field(fieldTransport); !ok || f.Secret {
		t.Errorf("transport field = %+v, %v; want a declared setting", f, ok)
	}
	// The variant survives the plugin wire, where the gateway reads it.
	wired := providertest.Connect(t, newProvider()).Info.Webhook
	if got := wired.For(transportTwilio); got == nil || got.Scheme != provider.SchemeTwilio || !slices.Equal(got.DedupKey, tw.DedupKey) {
		t.Errorf("twilio spec over the wire = %+v", got)
	}
}
