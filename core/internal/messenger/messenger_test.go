package messenger_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipecore/pipecore/core/internal/audit"
	"github.com/pipecore/pipecore/core/internal/config"
	"github.com/pipecore/pipecore/core/internal/event"
	"github.com/pipecore/pipecore/core/internal/messenger"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/core/internal/testkit"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/providertest"
)

type plugins struct{ m messaging.Provider }

func (p plugins) Messaging(string) (messaging.Provider, error) { return p.m, nil }
func (p plugins) Catalog() map[string]provider.Info {
	return map[string]provider.Info{"whatsapp": {Name: "whatsapp", Capabilities: []provider.Capability{provider.CapabilityMessaging}}}
}

var orderConfirmed = config.Template{Name: "order_confirmed", Params: []string{"order"}, Variants: map[string]config.TemplateVariant{
	"es": {Text: "Tu pedido {{.order}} fue confirmado ✅", WhatsApp: &config.WhatsAppTemplate{Name: "order_confirmed", Params: []string{"{{.order}}"}}},
	"en": {Text: "Order {{.order}} confirmed ✅"},
}}

type env struct {
	st   *store.Bolt
	svc  *messenger.Service
	t    *tenant.Tenant
	fake *providertest.FakeMessaging
}

func setup(t *testing.T, rules ...config.Automation) *env {
	t.Helper()
	st := testkit.Store(t)
	reg, err := tenant.New(map[string]config.Tenant{"acme": {APIKeys: []string{"pc_live_acme_0123456789abcdefghijklmnopqrstuv"},
		Providers: map[string]config.Provider{"whatsapp": {Credentials: map[string]string{"api_key": "k_live_1234"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, fake: &providertest.FakeMessaging{Name: "whatsapp"}}
	e.t, _ = reg.Get("acme")
	e.svc, err = messenger.New(messenger.Config{Store: st, Plugins: plugins{e.fake}, Audit: audit.NewRecorder(st, nil), Tenants: reg,
		Templates: map[string][]config.Template{"acme": {orderConfirmed}}, Automations: map[string][]config.Automation{"acme": rules},
		Schedule: []time.Duration{20 * time.Millisecond, 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); e.svc.Run(ctx, 10*time.Millisecond) }()
	go func() { defer wg.Done(); e.svc.RunAutomations(ctx, 10*time.Millisecond) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

func waitStatus(t *testing.T, e *env, id, want string) messenger.Message {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, err := e.svc.Get(context.Background(), e.t, id)
		if err == nil && m.Status == want {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s: status %q (err %v), want %q", id, m.Status, err, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRender(t *testing.T) {
	r, err := messenger.Render(orderConfirmed, "", map[string]any{"order": "A-1"})
	if err != nil || r.Language != "es" || r.Text != "Tu pedido A-1 fue confirmado ✅" || r.WhatsApp == nil || r.WhatsApp.Params[0] != "A-1" || r.WhatsApp.Language != "es" {
		t.Fatalf("Render = %+v, %v", r, err)
	}
	if r, _ := messenger.Render(orderConfirmed, "en", map[string]any{"order": "A-1"}); r.Text != "Order A-1 confirmed ✅" {
		t.Fatalf("en: %+v", r)
	}
	var verr *messenger.ValidationError
	if _, err := messenger.Render(orderConfirmed, "es", nil); !errors.As(err, &verr) || verr.Field != "template.params.order" {
		t.Fatalf("missing param: %v", err)
	}
	if err := messenger.CheckTemplate(config.Template{Name: "x", Variants: map[string]config.TemplateVariant{"es": {Text: "{{.a"}}}); err == nil {
		t.Fatal("a template that does not parse was accepted")
	}
}

func TestSendRetriesThenSends(t *testing.T) {
	e := setup(t)
	var fails atomic.Int32
	fails.Store(2)
	e.fake.Fail = func(string, provider.Tenant) error {
		if fails.Add(-1) >= 0 {
			return provider.Retryable(errors.New("503 from the provider"))
		}
		return nil
	}
	e.run(t)
	ctx := context.Background()
	in := messenger.SendInput{Channel: "whatsapp", To: "+56988888888", Template: &messenger.TemplateRef{Name: "order_confirmed", Params: map[string]any{"order": "A-1"}}}
	p, err := e.svc.Prepare(ctx, e.t, in)
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.svc.Enqueue(ctx, e.t, "msg_1", p)
	if err != nil || m.Status != "queued" {
		t.Fatalf("enqueue: %+v, %v", m, err)
	}
	sent := waitStatus(t, e, "msg_1", "sent")
	if sent.Attempts != 3 || sent.ProviderMessageID == "" {
		t.Fatalf("sent = %+v, want 3 attempts and a provider id", sent)
	}
	if got := e.fake.Sent(); len(got) != 1 || got[0].Template.Name != "order_confirmed" || got[0].Text != "Tu pedido A-1 fue confirmado ✅" {
		t.Fatalf("provider got %+v", got)
	}
	// Enqueueing the same id again neither duplicates nor resends.
	if _, err := e.svc.Enqueue(ctx, e.t, "msg_1", p); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(e.fake.Sent()); n != 1 {
		t.Fatalf("%d sends after a repeated enqueue", n)
	}
}

func TestSendPermanentFailure(t *testing.T) {
	e := setup(t)
	e.fake.Fail = func(string, provider.Tenant) error { return provider.Invalid(errors.New("number not on WhatsApp")) }
	e.run(t)
	ctx := context.Background()
	p, err := e.svc.Prepare(ctx, e.t, messenger.SendInput{Channel: "whatsapp", To: "+56988888888", Template: &messenger.TemplateRef{Name: "order_confirmed", Params: map[string]any{"order": "A-2"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Enqueue(ctx, e.t, "msg_2", p); err != nil {
		t.Fatal(err)
	}
	m := waitStatus(t, e, "msg_2", "failed")
	if m.Error == nil || m.Error.Message != "number not on WhatsApp" || m.Attempts != 1 {
		t.Fatalf("failed = %+v", m)
	}
}

func TestValidationAndSessionWindow(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	var verr *messenger.ValidationError
	cases := map[string]messenger.SendInput{
		"to":                    {Channel: "whatsapp", To: "988888888", Text: "hola"},
		"channel":               {Channel: "fax", To: "+56988888888", Text: "hola"},
		"template.name":         {Channel: "whatsapp", To: "+56988888888", Template: &messenger.TemplateRef{Name: "nope"}},
		"template.params.order": {Channel: "whatsapp", To: "+56988888888", Template: &messenger.TemplateRef{Name: "order_confirmed"}},
		"subject":               {Channel: "email", To: "ana@example.com", Text: "hola"},
	}
	for field, in := range cases {
		if _, err := e.svc.Prepare(ctx, e.t, in); !errors.As(err, &verr) || verr.Field != field {
			t.Errorf("%s: err = %v", field, err)
		}
	}
	// Free text outside the 24h window is refused; an inbound message opens it.
	text := messenger.SendInput{Channel: "whatsapp", To: "+56977777777", Text: "¿Cómo te fue?"}
	if _, err := e.svc.Prepare(ctx, e.t, text); !errors.Is(err, messenger.ErrSessionClosed) {
		t.Fatalf("free text with no session: %v", err)
	}
	inbound(t, e, "wamid.in1", "+56977777777", "hola")
	if _, err := e.svc.Prepare(ctx, e.t, text); err != nil {
		t.Fatalf("free text inside the window: %v", err)
	}
	// Email addresses are kept as written.
	p, err := e.svc.Prepare(ctx, e.t, messenger.SendInput{Channel: "email", Provider: "whatsapp", To: "Bruno Díaz <bruno@example.cl>", Subject: "Hola", Text: "hola"})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := e.svc.Enqueue(ctx, e.t, "msg_mail", p)
	if m.To != "Bruno Díaz <bruno@example.cl>" {
		t.Fatalf("to = %q", m.To)
	}
}

// inbound records an inbound WhatsApp message as the normaliser would.
func inbound(t *testing.T, e *env, wamid, from, text string) int {
	t.Helper()
	ctx := context.Background()
	linked, _, change, ok := e.svc.Link(ctx, "acme", "whatsapp", provider.Event{ID: wamid, Type: "message.received", Subject: wamid},
		map[string]any{"provider_message_id": wamid, "channel": "whatsapp", "from": from, "to": "+56911110000", "text": text})
	if !ok {
		t.Fatal("inbound message not linked")
	}
	ev, err := event.New("acme", "whatsapp", linked[0].Type, time.Now(), "", linked[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	change.Events = []int{0}
	if _, err := e.st.RecordEvents(ctx, store.EventBatch{TenantID: "acme", Events: []store.Event{ev}, Resources: []store.ResourceChange{change}}); err != nil {
		t.Fatal(err)
	}
	evs, _, _ := e.st.ListEvents(ctx, "acme", store.EventQuery{Type: "message.received", Limit: 100})
	return len(evs)
}

func TestKeywordRuleOncePerInbound(t *testing.T) {
	e := setup(t, config.Automation{ID: "estado", Keywords: []string{"estado"}, Channel: "whatsapp", Text: "Tu pedido está en camino 🛵"})
	e.run(t)
	time.Sleep(50 * time.Millisecond) // the runner starts after the tenant's existing events
	if n := inbound(t, e, "wamid.1", "+56955555555", "¿Cuál es el ESTADO de mi pedido?"); n != 1 {
		t.Fatalf("%d received events", n)
	}
	if n := inbound(t, e, "wamid.1", "+56955555555", "¿Cuál es el ESTADO de mi pedido?"); n != 1 {
		t.Fatalf("a repeated inbound message made %d events", n)
	}
	inbound(t, e, "wamid.2", "+56955555555", "gracias") // no keyword
	deadline := time.Now().Add(5 * time.Second)
	for len(e.fake.Sent()) < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	sent := e.fake.Sent()
	if len(sent) != 1 || sent[0].To != "+56955555555" || sent[0].Text != "Tu pedido está en camino 🛵" {
		t.Fatalf("replies = %+v", sent)
	}
	ms, _, _ := e.svc.List(context.Background(), e.t, store.ListQuery{})
	rules := 0
	for _, m := range ms {
		if m.Rule == "estado" {
			rules++
		}
	}
	if rules != 1 {
		t.Fatalf("%d messages from the rule, want 1 (%s)", rules, fmt.Sprint(ms))
	}
}

func TestCheckTenants(t *testing.T) {
	ok := config.Tenant{Templates: []config.Template{orderConfirmed},
		Automations: []config.Automation{{ID: "confirm", On: "payment.confirmed", Channel: "whatsapp", To: "{{ .data.customer.phone }}", Template: "order_confirmed"}}}
	if err := messenger.CheckTenants(map[string]config.Tenant{"acme": ok}); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for want, tn := range map[string]config.Tenant{
		"tenants.acme.templates[1].name: template \"order_confirmed\" is defined twice": {Templates: []config.Template{orderConfirmed, orderConfirmed}},
		"tenants.acme.automations[0].template: no template \"nope\"":                    {Automations: []config.Automation{{ID: "r", On: "payment.confirmed", Channel: "sms", To: "x", Template: "nope"}}},
		"tenants.acme.automations[0].on: a rule has either on":                          {Automations: []config.Automation{{ID: "r", Channel: "sms", Text: "x"}}},
		"tenants.acme.templates[0].variants: at least one":                              {Templates: []config.Template{{Name: "empty"}}},
	} {
		err := messenger.CheckTenants(map[string]config.Tenant{"acme": tn})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to contain %q", err, want)
		}
	}
}
