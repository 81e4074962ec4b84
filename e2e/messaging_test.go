package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pipecore/pipecore/plugins/email/resendfake"
	"github.com/pipecore/pipecore/plugins/email/sendgridfake"
	"github.com/pipecore/pipecore/plugins/whatsapp/metafake"
	"github.com/pipecore/pipecore/plugins/whatsapp/twiliofake"
)

const (
	// burgerKey is the second tenant's plain API key.
	burgerKey       = "pc_live_burgerhaus_0123456789abcdefghijklmnopq"
	metaAppSecret   = "meta-app-secret-tableflow"
	metaVerifyToken = "verify-tableflow"
	twilioFrom      = "+14155238886"
	mission         = "Tu pedido fue confirmado ✅"
)

// messagingFakes are the providers' fakes one messaging gateway talks to.
type messagingFakes struct {
	meta     *metafake.Server
	twilio   *twiliofake.Server
	sendgrid *sendgridfake.Server
	resend   *resendfake.Server
}

func startMessagingFakes(t *testing.T) *messagingFakes {
	t.Helper()
	f := &messagingFakes{meta: metafake.Start(), twilio: twiliofake.Start(), sendgrid: sendgridfake.Start(), resend: resendfake.Start()}
	t.Cleanup(func() { f.meta.Close(); f.twilio.Close(); f.sendgrid.Close(); f.resend.Close() })
	return f
}

// messagingConfig is a gateway with two tenants: tableflow (WhatsApp Cloud
// API, SendGrid, Stripe through stripe-mock, templates and automations)
// and burgerhaus (WhatsApp and SMS through Twilio, Resend). Each tenant's
// events go to its own receiver. Sends are retried every 300ms.
func messagingConfig(listen, dataDir, pluginsDir string, f *messagingFakes, tableflowRcv, burgerRcv string) string {
	r := strings.NewReplacer(
		"LISTEN", listen, "DATADIR", dataDir, "PLUGINSDIR", pluginsDir,
		"STRIPEURL", stripeMockURL, "STRIPEWHSEC", stripeWebhookSecret,
		"METAURL", f.meta.URL(), "METAPHONEID", metafake.PhoneNumberID, "METATOKEN", metafake.AccessToken,
		"METASECRET", metaAppSecret, "METAVERIFY", metaVerifyToken,
		"SENDGRIDURL", f.sendgrid.URL(), "SENDGRIDKEY", sendgridfake.APIKey, "SENDGRIDPUB", f.sendgrid.PublicKey(),
		"TWILIOURL", f.twilio.URL(), "TWILIOSID", twiliofake.AccountSID, "TWILIOTOKEN", twiliofake.AuthToken, "TWILIOFROM", twilioFrom,
		"RESENDURL", f.resend.URL(), "RESENDKEY", resendfake.APIKey, "RESENDSECRET", resendfake.WebhookSecret,
		"TABLEFLOWRCV", tableflowRcv, "BURGERRCV", burgerRcv, "ENDPOINTSECRET", endpointSecret, "BURGERKEY", burgerKey,
	)
	return r.Replace(`listen: LISTEN
public_url: http://LISTEN
data_dir: DATADIR
plugins_dir: PLUGINSDIR
log: { level: info, format: json }
plugins: { call_timeout: 5s, start_timeout: 10s }
delivery: { schedule: [50ms, 100ms, 150ms], timeout: 400ms, allow_http: true, allow_networks: ["127.0.0.1/32"] }
messages: { schedule: [300ms, 300ms, 300ms] }
tenants:
  tableflow:
    api_keys: ["${TABLEFLOW_API_KEY}"]
    defaults: { payments: stripe, whatsapp: whatsapp, email: email }
    providers:
      stripe:
        settings: { base_url: "STRIPEURL" }
        credentials: { secret_key: "${STRIPE_SECRET_KEY}", webhook_secret: "STRIPEWHSEC" }
      whatsapp:
        settings: { transport: cloud, phone_number_id: "METAPHONEID", base_url: "METAURL", graph_version: v21.0 }
        credentials: { access_token: "METATOKEN", app_secret: "METASECRET", verify_token: "METAVERIFY" }
      email:
        settings: { transport: sendgrid, from: "Tableflow <pedidos@tableflow.cl>", base_url: "SENDGRIDURL" }
        credentials: { api_key: "SENDGRIDKEY", webhook_public_key: "SENDGRIDPUB" }
    endpoints:
      - { id: backend, url: "TABLEFLOWRCV", secret: "ENDPOINTSECRET", types: ["message.*", "email.*", "payment.*"] }
    templates:
      - name: order_confirmed
        params: [order]
        variants:
          es:
            text: "Tu pedido {{.order}} fue confirmado ✅"
            whatsapp: { name: order_confirmed, language: es, params: ["{{.order}}"] }
      - name: receipt
        channel: email
        params: [order, total]
        variants:
          es:
            subject: "Recibo de tu pedido {{.order}} 🧾"
            text: "Total: {{.total}} CLP. ¡Gracias!"
            html: "<p>Total: <b>{{.total}}</b> CLP</p>"
    automations:
      - id: confirm
        on: payment.confirmed
        channel: whatsapp
        to: "{{ .data.customer.phone }}"
        template: order_confirmed
        params: { order: "{{ .data.reference }}" }
      - id: estado
        keywords: ["estado"]
        channel: whatsapp
        text: "Tu pedido está en camino 🛵"
  burgerhaus:
    api_keys: ["BURGERKEY"]
    providers:
      whatsapp:
        settings: { transport: twilio, account_sid: "TWILIOSID", from: "TWILIOFROM", base_url: "TWILIOURL" }
        credentials: { auth_token: "TWILIOTOKEN" }
      email:
        settings: { transport: resend, from: "Burger Haus <hola@burgerhaus.cl>", base_url: "RESENDURL" }
        credentials: { api_key: "RESENDKEY", webhook_secret: "RESENDSECRET" }
    endpoints:
      - { id: backend, url: "BURGERRCV", secret: "ENDPOINTSECRET", types: ["message.*", "email.*"] }
    templates:
      - name: order_confirmed
        params: [order]
        variants:
          es:
            text: "Tu pedido {{.order}} fue confirmado ✅"
            whatsapp: { name: order_confirmed, language: es, params: ["{{.order}}"] }
`)
}

// tenantEvent is one verified delivery at a tenant endpoint.
type tenantEvent struct {
	id, typ string
	data    map[string]any
}

// tenantEvents returns the verified deliveries of type typ whose data
// matches every key/value of match.
func tenantEvents(r *receiver, typ string, match map[string]any) []tenantEvent {
	var out []tenantEvent
	for _, d := range r.deliveries() {
		if !d.valid {
			continue
		}
		var env struct {
			Type string         `json:"type"`
			Data map[string]any `json:"data"`
		}
		if json.Unmarshal(d.body, &env) != nil || env.Type != typ {
			continue
		}
		ok := true
		for k, v := range match {
			if env.Data[k] != v {
				ok = false
			}
		}
		if ok {
			out = append(out, tenantEvent{id: d.id, typ: env.Type, data: env.Data})
		}
	}
	return out
}

func distinctEventIDs(evs []tenantEvent) int {
	seen := map[string]bool{}
	for _, e := range evs {
		seen[e.id] = true
	}
	return len(seen)
}

// message GETs /v1/messages/{id}.
func (g *gateway) message(key, id string) map[string]any {
	g.t.Helper()
	c := g.do("GET", "/v1/messages/"+id, key, nil)
	if c.status != 200 {
		g.t.Fatalf("GET message %s: %d %s", id, c.status, c.body)
	}
	return c.json(g.t)
}

// sendMessage posts a message and returns its id (it must be accepted).
func sendMessage(t *testing.T, g *gateway, key string, body map[string]any) string {
	t.Helper()
	c := g.do("POST", "/v1/messages", key, body)
	if c.status != 202 {
		t.Fatalf("POST /v1/messages %v: %d %s", body, c.status, c.body)
	}
	m := c.json(t)
	id, _ := m["id"].(string)
	if !strings.HasPrefix(id, "msg_") || m["status"] != "queued" {
		t.Fatalf("POST /v1/messages answered %s, want a queued msg_ id", c.body)
	}
	return id
}

// waitStatus polls the message until its status is want and returns it.
func waitStatus(t *testing.T, g *gateway, key, id, want string) map[string]any {
	t.Helper()
	var m map[string]any
	waitFor(t, fmt.Sprintf("message %s to be %s", id, want), 8*time.Second, func() bool {
		m = g.message(key, id)
		return m["status"] == want
	})
	return m
}

// metaSentTo returns the Cloud API bodies the fake accepted for to (digits).
func metaSentTo(f *metafake.Server, to string) []map[string]any {
	var out []map[string]any
	for _, m := range f.Sent() {
		if m["to"] == to {
			out = append(out, m)
		}
	}
	return out
}

func twilioSentTo(f *twiliofake.Server, to string) []url.Values {
	var out []url.Values
	for _, v := range f.Sent() {
		if v.Get("To") == to {
			out = append(out, v)
		}
	}
	return out
}

// path walks a decoded JSON value: keys for objects, ints for arrays.
func jpath(v any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

// metaTap sits between metafake and the gateway: it records each webhook
// exactly as Meta posted it, so a test can deliver it again.
type metaTap struct {
	srv    *httptest.Server
	target string
	mu     sync.Mutex
	bodies [][]byte
	sigs   []string
}

func newMetaTap(t *testing.T, target string) *metaTap {
	t.Helper()
	m := &metaTap{target: target}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m.mu.Lock()
		m.bodies = append(m.bodies, body)
		m.sigs = append(m.sigs, r.Header.Get("X-Hub-Signature-256"))
		m.mu.Unlock()
		status, answer, err := postMeta(target, body, r.Header.Get("X-Hub-Signature-256"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *metaTap) last() ([]byte, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.bodies) == 0 {
		return nil, ""
	}
	return m.bodies[len(m.bodies)-1], m.sigs[len(m.sigs)-1]
}

func postMeta(hook string, body []byte, sig string) (int, string, error) {
	req, _ := http.NewRequest("POST", hook, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// metricSum adds up the /metrics samples whose line starts with prefix and
// contains every label in labels.
func metricSum(t *testing.T, g *gateway, prefix string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(g.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		var v float64
		if i := strings.LastIndexByte(line, ' '); ok && i > 0 {
			if _, err := fmt.Sscan(line[i+1:], &v); err == nil {
				sum += v
			}
		}
	}
	return sum
}

func signMeta(body []byte) string {
	mac := hmac.New(sha256.New, []byte(metaAppSecret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// TestMessaging runs one gateway with the real whatsapp and email plugins
// against the providers' fakes, for two tenants (Cloud API + SendGrid,
// Twilio + Resend).
func TestMessaging(t *testing.T) {
	start := time.Now()
	f := startMessagingFakes(t)
	tfRcv, bhRcv := newReceiver(t), newReceiver(t)
	dir := t.TempDir()
	g := startGateway(t, dir, messagingConfig(freeAddr(), filepath.Join(dir, "data"), copyPlugins(t), f, tfRcv.srv.URL, bhRcv.srv.URL))
	metaHook := g.url + "/webhooks/whatsapp/tableflow"
	f.meta.SetWebhook(metaHook, metaAppSecret)
	f.twilio.SetWebhook(g.url + "/webhooks/whatsapp/burgerhaus")
	f.sendgrid.SetWebhook(g.url + "/webhooks/email/tableflow")
	f.resend.SetWebhook(g.url+"/webhooks/email/burgerhaus", resendfake.WebhookSecret)

	// Ids of the messages sent by the first subtest, used by the second.
	var cloudID, twilioID, sendgridID, resendID string

	t.Run("sends reach each provider with the exact request", func(t *testing.T) {
		// WhatsApp template through the Cloud API (tableflow).
		cloudID = sendMessage(t, g, tableflowKey, map[string]any{"channel": "whatsapp", "to": "+56911111111", "reference": "A-1",
			"template": map[string]any{"name": "order_confirmed", "language": "es", "params": map[string]any{"order": "A-1"}}})
		// WhatsApp template through Twilio (burgerhaus): the rendered text.
		twilioID = sendMessage(t, g, burgerKey, map[string]any{"channel": "whatsapp", "to": "+56922222222",
			"template": map[string]any{"name": "order_confirmed", "params": map[string]any{"order": "B-2"}}})
		// SMS through Twilio (burgerhaus has no sms default: the whatsapp plugin serves it).
		smsID := sendMessage(t, g, burgerKey, map[string]any{"channel": "sms", "to": "+56933333333", "text": "Tu código es 4821 🔐"})
		// Email through SendGrid (tableflow), from a template.
		sendgridID = sendMessage(t, g, tableflowKey, map[string]any{"channel": "email", "to": "ana@example.cl", "reference": "A-1",
			"template": map[string]any{"name": "receipt", "params": map[string]any{"order": "A-1", "total": "12.990"}}})
		// Email through Resend (burgerhaus), subject/text/html given.
		resendID = sendMessage(t, g, burgerKey, map[string]any{"channel": "email", "to": "Bruno Díaz <bruno@example.cl>",
			"subject": "Tu pedido está listo 🍔", "text": "Pasa a retirarlo.", "html": "<p>Pasa a <b>retirarlo</b>.</p>"})

		for _, s := range []struct{ key, id string }{{tableflowKey, cloudID}, {burgerKey, twilioID}, {burgerKey, smsID}, {tableflowKey, sendgridID}, {burgerKey, resendID}} {
			m := waitStatus(t, g, s.key, s.id, "sent")
			if m["provider_message_id"] == "" || m["provider_message_id"] == nil || m["attempts"] != float64(1) {
				t.Errorf("sent message %s: %v", s.id, m)
			}
		}

		// Cloud API: template with its parameter, bearer token, phone number id in the path.
		sent := metaSentTo(f.meta, "56911111111")
		if len(sent) != 1 {
			t.Fatalf("Cloud API got %d messages to 56911111111, want 1: %v", len(sent), f.meta.Sent())
		}
		m := sent[0]
		if m["messaging_product"] != "whatsapp" || m["type"] != "template" || jpath(m, "template", "name") != "order_confirmed" ||
			jpath(m, "template", "language", "code") != "es" || jpath(m, "template", "components", 0, "type") != "body" ||
			jpath(m, "template", "components", 0, "parameters", 0, "type") != "text" ||
			jpath(m, "template", "components", 0, "parameters", 0, "text") != "A-1" {
			t.Errorf("Cloud API template body: %v", m)
		}
		for _, r := range f.meta.Requests() {
			if r.Path != "/v21.0/"+metafake.PhoneNumberID+"/messages" || r.Header.Get("Authorization") != "Bearer "+metafake.AccessToken {
				t.Errorf("Cloud API request %s %s auth %q", r.Method, r.Path, r.Header.Get("Authorization"))
			}
		}
		if got := g.message(tableflowKey, cloudID); got["provider"] != "whatsapp" || got["channel"] != "whatsapp" || got["to"] != "+56911111111" {
			t.Errorf("GET cloud message: %v", got)
		}

		// Twilio WhatsApp: the rendered template text, whatsapp: prefixes.
		tw := twilioSentTo(f.twilio, "whatsapp:+56922222222")
		if len(tw) != 1 || tw[0].Get("From") != "whatsapp:"+twilioFrom || tw[0].Get("Body") != "Tu pedido B-2 fue confirmado ✅" {
			t.Errorf("Twilio WhatsApp form: %v", tw)
		}
		// Twilio SMS: no prefix, emoji intact.
		sms := twilioSentTo(f.twilio, "+56933333333")
		if len(sms) != 1 || sms[0].Get("From") != twilioFrom || sms[0].Get("Body") != "Tu código es 4821 🔐" {
			t.Errorf("Twilio SMS form: %v", sms)
		}
		for _, r := range f.twilio.Requests() {
			user, pass, ok := (&http.Request{Header: r.Header}).BasicAuth()
			if r.Path != "/2010-04-01/Accounts/"+twiliofake.AccountSID+"/Messages.json" || !ok || user != twiliofake.AccountSID || pass != twiliofake.AuthToken {
				t.Errorf("Twilio request %s %s (basic auth %v)", r.Method, r.Path, ok)
			}
		}

		// SendGrid: one personalization, the parsed sender, the rendered
		// template, text before html, the gateway's id as a custom arg.
		sg := f.sendgrid.Sent()
		if len(sg) != 1 {
			t.Fatalf("SendGrid got %d emails, want 1: %v", len(sg), sg)
		}
		e := sg[0]
		if jpath(e, "personalizations", 0, "to", 0, "email") != "ana@example.cl" || jpath(e, "from", "email") != "pedidos@tableflow.cl" ||
			jpath(e, "from", "name") != "Tableflow" || e["subject"] != "Recibo de tu pedido A-1 🧾" ||
			jpath(e, "content", 0, "type") != "text/plain" || jpath(e, "content", 0, "value") != "Total: 12.990 CLP. ¡Gracias!" ||
			jpath(e, "content", 1, "type") != "text/html" || jpath(e, "content", 1, "value") != "<p>Total: <b>12.990</b> CLP</p>" ||
			jpath(e, "custom_args", "pipecore_message_id") != sendgridID {
			t.Errorf("SendGrid body: %v", e)
		}
		if r := f.sendgrid.Requests(); len(r) != 1 || r[0].Header.Get("Authorization") != "Bearer "+sendgridfake.APIKey || r[0].Path != "/v3/mail/send" {
			t.Errorf("SendGrid requests: %v", r)
		}

		// Resend: the configured sender, the recipient, subject, text, html, the id tag.
		rs := f.resend.Sent()
		if len(rs) != 1 {
			t.Fatalf("Resend got %d emails, want 1: %v", len(rs), rs)
		}
		e = rs[0]
		if e["from"] != "Burger Haus <hola@burgerhaus.cl>" || e["subject"] != "Tu pedido está listo 🍔" || e["text"] != "Pasa a retirarlo." ||
			e["html"] != "<p>Pasa a <b>retirarlo</b>.</p>" || jpath(e, "tags", 0, "name") != "pipecore_message_id" || jpath(e, "tags", 0, "value") != resendID {
			t.Errorf("Resend body: %v", e)
		}
		// The recipient as the tenant gave it (the plugin passes To as given):
		// a UTF-8 display name in a JSON API, not an RFC 2047 encoded word.
		if to, _ := e["to"].([]any); len(to) != 1 || to[0] != "Bruno Díaz <bruno@example.cl>" {
			t.Errorf("Resend to = %q, want [\"Bruno Díaz <bruno@example.cl>\"]", e["to"])
		}
		if r := f.resend.Requests(); len(r) != 1 || r[0].Header.Get("Authorization") != "Bearer "+resendfake.APIKey ||
			r[0].Header.Get("Idempotency-Key") == "" || r[0].Path != "/emails" {
			t.Errorf("Resend requests: %v", r)
		}

		// message.sent reaches each tenant's endpoint, and only its own.
		waitFor(t, "message.sent for the Cloud API message at tableflow", 10*time.Second, func() bool {
			return len(tenantEvents(tfRcv, "message.sent", map[string]any{"message_id": cloudID})) == 1
		})
		waitFor(t, "message.sent for the Twilio messages at burgerhaus", 10*time.Second, func() bool {
			return len(tenantEvents(bhRcv, "message.sent", map[string]any{"message_id": twilioID})) == 1 &&
				len(tenantEvents(bhRcv, "message.sent", map[string]any{"message_id": smsID})) == 1
		})
		if n := len(tenantEvents(tfRcv, "message.sent", map[string]any{"message_id": twilioID})); n != 0 {
			t.Errorf("tableflow received burgerhaus's message.sent")
		}
	})

	t.Run("the mission's example: free text after the customer wrote, UTF-8 intact", func(t *testing.T) {
		before := len(f.meta.Requests())
		c := g.do("POST", "/v1/messages", tableflowKey, map[string]any{"channel": "whatsapp", "to": "+56988888888", "text": mission})
		if c.status != 422 || c.errorCode(t) != "whatsapp_session_closed" {
			t.Fatalf("free text to a number that never wrote: %d %s, want 422 whatsapp_session_closed", c.status, c.body)
		}
		if _, err := f.meta.Inbound("+56988888888", "Hola, ¿mi pedido? 🙏"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "message.received from +56988888888", 10*time.Second, func() bool {
			return len(tenantEvents(tfRcv, "message.received", map[string]any{"from": "+56988888888"})) == 1
		})
		if ev := tenantEvents(tfRcv, "message.received", map[string]any{"from": "+56988888888"})[0]; ev.data["text"] != "Hola, ¿mi pedido? 🙏" {
			t.Errorf("inbound text (the fake escapes non-ASCII as Meta does): %v", ev.data)
		}
		id := sendMessage(t, g, tableflowKey, map[string]any{"channel": "whatsapp", "to": "+56988888888", "text": mission})
		waitStatus(t, g, tableflowKey, id, "sent")
		sent := metaSentTo(f.meta, "56988888888")
		if len(sent) != 1 || sent[0]["type"] != "text" || jpath(sent[0], "text", "body") != mission || jpath(sent[0], "text", "preview_url") != false {
			t.Fatalf("Cloud API text body: %v", sent)
		}
		reqs := f.meta.Requests()[before:]
		if len(reqs) != 1 || !utf8.Valid(reqs[0].Body) || !bytes.Contains(reqs[0].Body, []byte("✅")) && !bytes.Contains(reqs[0].Body, []byte(`\u2705`)) {
			t.Fatalf("raw request to the Cloud API: %v", reqs)
		}
		if m := g.message(tableflowKey, id); m["text"] != mission {
			t.Errorf("GET message text: %v", m["text"])
		}
	})

	t.Run("signed status webhooks move the message and reach the endpoint", func(t *testing.T) {
		if cloudID == "" || twilioID == "" || sendgridID == "" || resendID == "" {
			t.Fatal("the sends subtest did not produce messages")
		}
		pid := func(key, id string) string {
			m := g.message(key, id)
			s, _ := m["provider_message_id"].(string)
			if s == "" {
				t.Fatalf("message %s was never sent (%v): no provider message id to report statuses for", id, m)
			}
			return s
		}

		// Cloud API: delivered, then read.
		wamid := pid(tableflowKey, cloudID)
		if err := f.meta.Status(wamid, "delivered"); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, g, tableflowKey, cloudID, "delivered")
		if err := f.meta.Status(wamid, "read"); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, g, tableflowKey, cloudID, "read")
		// A late "delivered" after "read" does not move it back.
		if err := f.meta.Status(wamid, "delivered"); err != nil {
			t.Fatal(err)
		}
		for _, typ := range []string{"message.delivered", "message.read"} {
			waitFor(t, typ+" at tableflow", 10*time.Second, func() bool {
				return len(tenantEvents(tfRcv, typ, map[string]any{"message_id": cloudID})) >= 1
			})
			ev := tenantEvents(tfRcv, typ, map[string]any{"message_id": cloudID})[0]
			if ev.data["provider_message_id"] != wamid || ev.data["channel"] != "whatsapp" || ev.data["to"] != "+56911111111" ||
				ev.data["status"] != strings.TrimPrefix(typ, "message.") {
				t.Errorf("%s data: %v", typ, ev.data)
			}
		}

		// Twilio: delivered.
		sid := pid(burgerKey, twilioID)
		if err := f.twilio.Status(sid, "delivered"); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, g, burgerKey, twilioID, "delivered")
		waitFor(t, "message.delivered at burgerhaus", 10*time.Second, func() bool {
			return len(tenantEvents(bhRcv, "message.delivered", map[string]any{"message_id": twilioID})) == 1
		})
		ev := tenantEvents(bhRcv, "message.delivered", map[string]any{"message_id": twilioID})[0]
		if ev.data["provider_message_id"] != sid || ev.data["channel"] != "whatsapp" || ev.data["to"] != "+56922222222" || ev.data["status"] != "delivered" {
			t.Errorf("Twilio message.delivered data: %v", ev.data)
		}

		// SendGrid: delivered, then opened.
		xid := pid(tableflowKey, sendgridID)
		if err := f.sendgrid.Event(xid, "delivered", nil); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, g, tableflowKey, sendgridID, "delivered")
		if err := f.sendgrid.Event(xid, "open", nil); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, g, tableflowKey, sendgridID, "read")
		for _, typ := range []string{"email.delivered", "email.opened"} {
			waitFor(t, typ+" at tableflow", 10*time.Second, func() bool {
				return len(tenantEvents(tfRcv, typ, map[string]any{"message_id": sendgridID})) == 1
			})
			if ev := tenantEvents(tfRcv, typ, map[string]any{"message_id": sendgridID})[0]; ev.data["provider_message_id"] != xid {
				t.Errorf("%s data: %v", typ, ev.data)
			}
		}

		// Resend: delivered.
		eid := pid(burgerKey, resendID)
		if err := f.resend.Event(eid, "email.delivered", nil); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, g, burgerKey, resendID, "delivered")
		waitFor(t, "email.delivered at burgerhaus", 10*time.Second, func() bool {
			return len(tenantEvents(bhRcv, "email.delivered", map[string]any{"message_id": resendID})) == 1
		})
		if ev := tenantEvents(bhRcv, "email.delivered", map[string]any{"message_id": resendID})[0]; ev.data["provider_message_id"] != eid {
			t.Errorf("Resend email.delivered data: %v", ev.data)
		}

		// Each status was announced once; the late delivered changed nothing.
		time.Sleep(300 * time.Millisecond)
		if n := distinctEventIDs(tenantEvents(tfRcv, "message.delivered", map[string]any{"message_id": cloudID})); n != 1 {
			t.Errorf("%d message.delivered events for the Cloud API message, want 1", n)
		}
		if m := g.message(tableflowKey, cloudID); m["status"] != "read" {
			t.Errorf("status after a late delivered: %v", m["status"])
		}
		// A status webhook with a bad signature is refused.
		body := []byte(`{"object":"whatsapp_business_account","entry":[]}`)
		if status, resp, _ := postMeta(metaHook, body, "sha256="+strings.Repeat("0", 64)); status != 401 {
			t.Errorf("Meta webhook with a bad signature: %d %s", status, resp)
		}
	})

	t.Run("inbound Estado gets the keyword reply and one message.received", func(t *testing.T) {
		// Meta's subscription handshake.
		resp, err := http.Get(metaHook + "?hub.mode=subscribe&hub.verify_token=" + metaVerifyToken + "&hub.challenge=1158201444")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "1158201444" {
			t.Errorf("handshake: %d %q", resp.StatusCode, b)
		}
		if resp, err := http.Get(metaHook + "?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1158201444"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 || strings.Contains(string(b), "1158201444") {
				t.Errorf("handshake with a wrong token: %d %q", resp.StatusCode, b)
			}
		}

		tap := newMetaTap(t, metaHook)
		f.meta.SetWebhook(tap.srv.URL, metaAppSecret)
		wamid, err := f.meta.Inbound("+56977777777", "Estado")
		f.meta.SetWebhook(metaHook, metaAppSecret)
		if err != nil {
			t.Fatal(err)
		}
		match := map[string]any{"provider_message_id": wamid}
		waitFor(t, "message.received at tableflow", 10*time.Second, func() bool {
			return len(tenantEvents(tfRcv, "message.received", match)) == 1
		})
		ev := tenantEvents(tfRcv, "message.received", match)[0]
		if ev.data["from"] != "+56977777777" || ev.data["text"] != "Estado" || ev.data["channel"] != "whatsapp" || ev.data["to"] != metafake.DisplayPhone {
			t.Errorf("message.received data: %v", ev.data)
		}
		waitFor(t, "the keyword reply at the Cloud API", 8*time.Second, func() bool { return len(metaSentTo(f.meta, "56977777777")) >= 1 })
		reply := metaSentTo(f.meta, "56977777777")[0]
		if reply["type"] != "text" || jpath(reply, "text", "body") != "Tu pedido está en camino 🛵" {
			t.Errorf("keyword reply: %v", reply)
		}

		// The same notification again, byte for byte, and the same message
		// in a differently batched notification.
		parsed := metricSum(t, g, "pipecore_plugin_call_seconds_count{", `method="ParseWebhook"`, `plugin="whatsapp"`)
		body, sig := tap.last()
		status, answer, err := postMeta(metaHook, body, sig)
		if err != nil || status != 200 || !strings.Contains(answer, "duplicate") {
			t.Fatalf("repeated notification: %d %s %v, want 200 duplicate", status, answer, err)
		}
		var n map[string]any
		if err := json.Unmarshal(body, &n); err != nil {
			t.Fatal(err)
		}
		changes := jpath(n, "entry", 0, "changes").([]any)
		n["entry"].([]any)[0].(map[string]any)["changes"] = append(changes, map[string]any{"field": "messages", "value": map[string]any{
			"messaging_product": "whatsapp",
			"metadata":          map[string]any{"display_phone_number": strings.TrimPrefix(metafake.DisplayPhone, "+"), "phone_number_id": metafake.PhoneNumberID},
			"statuses":          []any{map[string]any{"id": "wamid.unknown-to-the-gateway", "status": "deleted", "timestamp": fmt.Sprint(time.Now().Unix()), "recipient_id": "56977777777"}},
		}})
		rebatched, _ := json.Marshal(n)
		if status, answer, err := postMeta(metaHook, rebatched, signMeta(rebatched)); err != nil || status != 200 {
			t.Fatalf("re-batched notification: %d %s %v", status, answer, err)
		}
		// Wait until the plugin parsed the re-batched one, then give the
		// pipeline a moment to record and deliver whatever it made.
		waitFor(t, "the re-batched notification to be parsed", 10*time.Second, func() bool {
			return metricSum(t, g, "pipecore_plugin_call_seconds_count{", `method="ParseWebhook"`, `plugin="whatsapp"`) > parsed
		})
		time.Sleep(500 * time.Millisecond)
		if n := distinctEventIDs(tenantEvents(tfRcv, "message.received", match)); n != 1 {
			t.Errorf("%d message.received events for one inbound message, want 1", n)
		}
		if n := len(metaSentTo(f.meta, "56977777777")); n != 1 {
			t.Errorf("%d keyword replies, want 1", n)
		}
		// The reply is a message of its own, tied to its rule and event.
		c := g.do("GET", "/v1/messages?limit=100", tableflowKey, nil)
		var replies []map[string]any
		for _, m := range jpath(c.json(t), "data").([]any) {
			if mm := m.(map[string]any); mm["rule"] == "estado" {
				replies = append(replies, mm)
			}
		}
		if len(replies) != 1 || replies[0]["to"] != "+56977777777" || replies[0]["trigger_event_id"] != ev.id || replies[0]["status"] != "sent" {
			t.Errorf("keyword reply messages: %v (message.received id %s)", replies, ev.id)
		}
	})

	t.Run("payment.confirmed sends order_confirmed once, even when replayed", func(t *testing.T) {
		c := g.do("POST", "/v1/payments", tableflowKey, map[string]any{"amount": 12990, "currency": "CLP", "reference": "order-7",
			"customer": map[string]string{"phone": "+56966666666"}})
		if c.status != 201 {
			t.Fatalf("create payment: %d %s", c.status, c.body)
		}
		pay := c.json(t)
		payID, pi := pay["id"].(string), pay["provider_payment_id"].(string)
		body := stripeEvent("evt_msg_confirm_1", "payment_intent.succeeded", pi, 12990)
		if status, resp, err := postWebhook(g.url+"/webhooks/stripe/tableflow", body, signStripe(stripeWebhookSecret, body, time.Now())); err != nil || status != 200 {
			t.Fatalf("stripe webhook: %d %s %v", status, resp, err)
		}
		waitFor(t, "payment.confirmed at tableflow", 10*time.Second, func() bool {
			return len(tenantEvents(tfRcv, "payment.confirmed", map[string]any{"payment_id": payID})) == 1
		})
		confirmed := tenantEvents(tfRcv, "payment.confirmed", map[string]any{"payment_id": payID})[0]
		if jpath(confirmed.data, "customer", "phone") != "+56966666666" {
			t.Errorf("payment.confirmed lacks customer.phone: %v", confirmed.data)
		}
		waitFor(t, "order_confirmed at the Cloud API", 8*time.Second, func() bool { return len(metaSentTo(f.meta, "56966666666")) >= 1 })
		m := metaSentTo(f.meta, "56966666666")[0]
		if m["type"] != "template" || jpath(m, "template", "name") != "order_confirmed" || jpath(m, "template", "language", "code") != "es" ||
			jpath(m, "template", "components", 0, "parameters", 0, "text") != "order-7" {
			t.Errorf("order_confirmed body: %v", m)
		}

		if c := g.do("POST", "/v1/events/"+confirmed.id+"/replay", tableflowKey, nil); c.status != 202 {
			t.Fatalf("replay: %d %s", c.status, c.body)
		}
		waitFor(t, "the replayed payment.confirmed at tableflow", 10*time.Second, func() bool {
			return len(tenantEvents(tfRcv, "payment.confirmed", map[string]any{"payment_id": payID})) == 2
		})
		time.Sleep(700 * time.Millisecond)
		if n := len(metaSentTo(f.meta, "56966666666")); n != 1 {
			t.Errorf("order_confirmed sent %d times, want 1", n)
		}
		c = g.do("GET", "/v1/messages?limit=100", tableflowKey, nil)
		var sends []map[string]any
		for _, m := range jpath(c.json(t), "data").([]any) {
			if mm := m.(map[string]any); mm["rule"] == "confirm" {
				sends = append(sends, mm)
			}
		}
		if len(sends) != 1 || sends[0]["trigger_event_id"] != confirmed.id || sends[0]["to"] != "+56966666666" || sends[0]["reference"] != "order-7" ||
			jpath(sends[0], "template", "name") != "order_confirmed" {
			t.Errorf("rule messages: %v (payment.confirmed %s)", sends, confirmed.id)
		}
	})

	t.Run("a 503 leaves the message queued and a retry sends it", func(t *testing.T) {
		before := len(f.meta.Requests())
		f.meta.FailNext(503, 2)
		id := sendMessage(t, g, tableflowKey, map[string]any{"channel": "whatsapp", "to": "+56944444444",
			"template": map[string]any{"name": "order_confirmed", "params": map[string]any{"order": "R-5"}}})
		waitFor(t, "the message queued after a failed attempt", 8*time.Second, func() bool {
			m := g.message(tableflowKey, id)
			a, _ := m["attempts"].(float64)
			return m["status"] == "queued" && a >= 1
		})
		m := waitStatus(t, g, tableflowKey, id, "sent")
		if m["attempts"] != float64(3) || m["error"] != nil {
			t.Errorf("after two 503s and a success: %v", m)
		}
		if n := len(f.meta.Requests()) - before; n != 3 {
			t.Errorf("%d requests to the Cloud API, want 3 (two 503s, one success)", n)
		}
		if sent := metaSentTo(f.meta, "56944444444"); len(sent) != 1 || jpath(sent[0], "template", "components", 0, "parameters", 0, "text") != "R-5" {
			t.Errorf("sent after retry: %v", sent)
		}
		// Twilio too: one 503, then sent.
		f.twilio.FailNext(503, 1)
		id = sendMessage(t, g, burgerKey, map[string]any{"channel": "sms", "to": "+56955555555", "text": "Reintento 🔁"})
		m = waitStatus(t, g, burgerKey, id, "sent")
		if m["attempts"] != float64(2) || len(twilioSentTo(f.twilio, "+56955555555")) != 1 {
			t.Errorf("Twilio after one 503: %v, sent %v", m, twilioSentTo(f.twilio, "+56955555555"))
		}
	})

	t.Run("invalid requests answer 400 naming the field", func(t *testing.T) {
		metaBefore, sgBefore := len(f.meta.Requests()), len(f.sendgrid.Requests())
		tpl := func(name string, params map[string]any) map[string]any {
			return map[string]any{"name": name, "params": params}
		}
		tests := []struct {
			name  string
			body  map[string]any
			field string
		}{
			{"phone without +", map[string]any{"channel": "whatsapp", "to": "988888888", "template": tpl("order_confirmed", map[string]any{"order": "1"})}, "to"},
			{"phone with letters", map[string]any{"channel": "sms", "to": "+5698888888a", "text": "x"}, "to"},
			{"email not an address", map[string]any{"channel": "email", "to": "ana-at-example", "subject": "s", "text": "x"}, "to"},
			{"unknown template", map[string]any{"channel": "whatsapp", "to": "+56988888888", "template": tpl("no_such_template", nil)}, "template.name"},
			{"missing param", map[string]any{"channel": "whatsapp", "to": "+56988888888", "template": tpl("order_confirmed", map[string]any{})}, "template.params.order"},
			{"email template on whatsapp", map[string]any{"channel": "whatsapp", "to": "+56988888888", "template": tpl("receipt", map[string]any{"order": "1", "total": "2"})}, "template.name"},
			{"no text nor template", map[string]any{"channel": "sms", "to": "+56988888888"}, "text"},
			{"email without subject", map[string]any{"channel": "email", "to": "ana@example.cl", "text": "x"}, "subject"},
			{"unknown channel", map[string]any{"channel": "fax", "to": "+56988888888", "text": "x"}, "channel"},
		}
		for _, tc := range tests {
			c := g.do("POST", "/v1/messages", tableflowKey, tc.body)
			if c.status != 400 || c.errorCode(t) != "invalid_request" || !strings.HasPrefix(c.errorMessage(t), tc.field+":") {
				t.Errorf("%s: %d %s, want 400 naming %s", tc.name, c.status, c.body, tc.field)
			}
		}
		if c := g.do("GET", "/v1/messages/msg_nope", tableflowKey, nil); c.status != 404 {
			t.Errorf("GET unknown message: %d %s", c.status, c.body)
		}
		if c := g.do("GET", "/v1/messages/"+cloudID, burgerKey, nil); c.status != 404 {
			t.Errorf("another tenant's message: %d %s", c.status, c.body)
		}
		time.Sleep(200 * time.Millisecond)
		if len(f.meta.Requests()) != metaBefore || len(f.sendgrid.Requests()) != sgBefore {
			t.Errorf("a refused request reached a provider")
		}
	})
	t.Logf("TestMessaging took %s", time.Since(start).Round(time.Millisecond))
}
