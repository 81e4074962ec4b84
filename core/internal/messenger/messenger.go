// Package messenger sends a tenant's messages (WhatsApp, SMS, email)
// through its messaging providers, from the outbox: a message is stored
// "queued" first and a worker sends it, retrying a provider outage on a
// schedule, so nothing accepted is lost and a duplicate Idempotency-Key
// never sends twice. It keeps each message's status from provider status
// webhooks, turns inbound messages into message.received events (once per
// provider message), keeps per-tenant templates, enforces WhatsApp's
// 24-hour session window, and runs the tenant's automation rules.
package messenger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pipecore/pipecore/core/internal/audit"
	"github.com/pipecore/pipecore/core/internal/config"
	"github.com/pipecore/pipecore/core/internal/event"
	"github.com/pipecore/pipecore/core/internal/plugincall"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/core/internal/validation"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/provider"
)

// Resource kinds this package owns.
const (
	KindMessage    = "message"
	KindTemplate   = "template"
	KindAutomation = "automation"
	kindContact    = "contact" // last inbound time per channel and address
	kindCursor     = "cursor"  // the automation runner's position
)

// SessionWindow is how long after a customer's last inbound WhatsApp
// message free text may be sent; outside it only templates may.
const SessionWindow = 24 * time.Hour

var (
	// ErrNotFound: no such message, template or automation for the tenant.
	ErrNotFound = errors.New("messenger: not found")
	// ErrNoProvider: no messaging provider for the channel.
	ErrNoProvider = errors.New("messenger: no messaging provider")
	// ErrSessionClosed: free text to a WhatsApp user outside the window.
	ErrSessionClosed = errors.New("messenger: whatsapp session window closed")
	// ErrReadOnly: a template or automation defined in the config file
	// cannot be changed through the API.
	ErrReadOnly = errors.New("messenger: defined in the config file")
)

// ValidationError is a request refused before calling anyone.
type ValidationError = validation.Error

// Plugins gives the messaging capability of a plugin and the catalog.
type Plugins interface {
	Messaging(name string) (messaging.Provider, error)
	Catalog() map[string]provider.Info
}

// Config configures a Service. Zero values mean the documented defaults.
type Config struct {
	Store   store.Store
	Plugins Plugins
	Audit   *audit.Recorder
	Tenants *tenant.Registry
	Logger  *slog.Logger
	// Templates and Automations are the config file's, by tenant.
	Templates   map[string][]config.Template
	Automations map[string][]config.Automation
	// CallTimeout bounds one send. Zero means 30s.
	CallTimeout time.Duration
	// Schedule is the wait before each retry of a send that failed with a
	// retryable error; after the last the message fails. Default 5s, 30s,
	// 2m, 10m, 30m, 1h, 2h, 4h (about 8 hours in all).
	Schedule []time.Duration
	// Workers bounds concurrent sends. Zero means 8.
	Workers int
	// Notify wakes the event dispatcher after events were recorded.
	Notify func()
	Now    func() time.Time
}

// Service is safe for concurrent use.
type Service struct {
	cfg    Config
	runner plugincall.Runner
	wake   chan struct{}
	busy   sync.Map // message id → struct{}: one send at a time
}

// New returns a Service. It fails on a malformed config template or rule.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Plugins == nil || cfg.Audit == nil || cfg.Tenants == nil {
		return nil, errors.New("messenger: Store, Plugins, Audit and Tenants are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = 30 * time.Second
	}
	if len(cfg.Schedule) == 0 {
		cfg.Schedule = []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour}
	}
	if cfg.Workers == 0 {
		cfg.Workers = 8
	}
	if cfg.Notify == nil {
		cfg.Notify = func() {}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := checkConfig(cfg.Templates, cfg.Automations); err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, runner: plugincall.Runner{Audit: cfg.Audit, Logger: cfg.Logger, Now: cfg.Now}, wake: make(chan struct{}, 1)}, nil
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

// Wake makes the send worker look for due messages now.
func (s *Service) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// CheckTenants validates the templates and automation rules of the
// config file's tenants: names, channels, Go templates that parse, and
// rules naming templates that exist. The message names the tenant, the
// list and the field.
func CheckTenants(tenants map[string]config.Tenant) error {
	templates, automations := map[string][]config.Template{}, map[string][]config.Automation{}
	for id, t := range tenants {
		templates[id], automations[id] = t.Templates, t.Automations
	}
	return checkConfig(templates, automations)
}

func checkConfig(templates map[string][]config.Template, automations map[string][]config.Automation) error {
	for _, tid := range slices.Sorted(maps.Keys(templates)) {
		names := map[string]bool{}
		for i, t := range templates[tid] {
			if err := CheckTemplate(t); err != nil {
				return fmt.Errorf("tenants.%s.templates[%d].%w", tid, i, err)
			}
			if names[t.Name] {
				return fmt.Errorf("tenants.%s.templates[%d].name: template %q is defined twice", tid, i, t.Name)
			}
			names[t.Name] = true
		}
		ids := map[string]bool{}
		for i, r := range automations[tid] {
			if err := checkRule(r); err != nil {
				return fmt.Errorf("tenants.%s.automations[%d].%w", tid, i, err)
			}
			if ids[r.ID] {
				return fmt.Errorf("tenants.%s.automations[%d].id: rule %q is defined twice", tid, i, r.ID)
			}
			ids[r.ID] = true
			if r.Template != "" && !names[r.Template] {
				return fmt.Errorf("tenants.%s.automations[%d].template: no template %q in tenants.%s.templates", tid, i, r.Template, tid)
			}
		}
	}
	return nil
}

// ---- messages

// Message is a message as the tenant sees it.
type Message struct {
	ID                string       `json:"id"` // "msg_…"
	Direction         string       `json:"direction"`
	Channel           string       `json:"channel"`
	Provider          string       `json:"provider"`
	ProviderMessageID string       `json:"provider_message_id,omitempty"`
	Status            string       `json:"status"`
	To                string       `json:"to,omitempty"`
	From              string       `json:"from,omitempty"`
	Template          *TemplateRef `json:"template,omitempty"`
	Subject           string       `json:"subject,omitempty"`
	Text              string       `json:"text,omitempty"`
	Reference         string       `json:"reference,omitempty"`
	Rule              string       `json:"rule,omitempty"`
	TriggerEventID    string       `json:"trigger_event_id,omitempty"`
	Attempts          int          `json:"attempts"`
	Error             *ErrorInfo   `json:"error,omitempty"`
	CreatedAt         time.Time    `json:"created_at"`
	UpdatedAt         time.Time    `json:"updated_at"`
}

// TemplateRef names the template of a message and its params.
type TemplateRef struct {
	Name     string         `json:"name"`
	Language string         `json:"language,omitempty"`
	Params   map[string]any `json:"params,omitempty"`
}

// ErrorInfo is why a message failed.
type ErrorInfo struct {
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
}

// Media is an inbound attachment.
type Media struct {
	Type     string `json:"type,omitempty"`
	URL      string `json:"url,omitempty"`
	ID       string `json:"id,omitempty"`
	MimeType string `json:"mime_type,omitempty"`
}

// doc is a message's document in the store.
type doc struct {
	Direction      string              `json:"direction"` // "outbound" or "inbound"
	Channel        string              `json:"channel"`
	To             string              `json:"to,omitempty"`
	From           string              `json:"from,omitempty"`
	Template       *TemplateRef        `json:"template,omitempty"`
	WhatsApp       *messaging.Template `json:"whatsapp,omitempty"`
	Subject        string              `json:"subject,omitempty"`
	Text           string              `json:"text,omitempty"`
	HTML           string              `json:"html,omitempty"`
	Media          []Media             `json:"media,omitempty"`
	Reference      string              `json:"reference,omitempty"`
	Rule           string              `json:"rule,omitempty"`
	TriggerEventID string              `json:"trigger_event_id,omitempty"`
	Attempts       int                 `json:"attempts"`
	LastError      string              `json:"last_error,omitempty"`
	Error          *ErrorInfo          `json:"error,omitempty"`
	Complained     bool                `json:"complained,omitempty"`
	CorrelationID  string              `json:"correlation_id,omitempty"`
}

func decodeDoc(r *store.Resource) doc {
	var d doc
	_ = json.Unmarshal(r.Doc, &d) // written by this package only
	return d
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only the package's own plain structs are marshalled
	}
	return b
}

func view(r store.Resource) Message {
	d := decodeDoc(&r)
	return Message{
		ID: r.ID, Direction: d.Direction, Channel: d.Channel, Provider: r.Provider, ProviderMessageID: r.ProviderID,
		Status: r.Status, To: d.To, From: d.From, Template: d.Template, Subject: d.Subject, Text: d.Text,
		Reference: d.Reference, Rule: d.Rule, TriggerEventID: d.TriggerEventID, Attempts: d.Attempts, Error: d.Error,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

// SendInput is a tenant's request to send a message.
type SendInput struct {
	Channel   string       `json:"channel"`
	To        string       `json:"to"`
	Provider  string       `json:"provider,omitempty"`
	Template  *TemplateRef `json:"template,omitempty"`
	Text      string       `json:"text,omitempty"`
	Subject   string       `json:"subject,omitempty"`
	HTML      string       `json:"html,omitempty"`
	Reference string       `json:"reference,omitempty"`
}

// prepared is a validated send: provider resolved, template rendered.
type prepared struct {
	provider string
	doc      doc
}

// Prepare validates in for tenant t and renders its template, without
// storing or sending anything.
func (s *Service) Prepare(ctx context.Context, t *tenant.Tenant, in SendInput) (prepared, error) {
	in.Channel = strings.ToLower(strings.TrimSpace(in.Channel))
	if !slices.Contains(config.Channels, in.Channel) {
		return prepared{}, validation.New("channel", "must be whatsapp, sms or email")
	}
	to, err := normalizeAddress(in.Channel, in.To)
	if err != nil {
		return prepared{}, err
	}
	if len(in.Reference) > 200 {
		return prepared{}, validation.New("reference", "must be at most 200 characters")
	}
	d := doc{Direction: "outbound", Channel: in.Channel, To: to, Reference: in.Reference, Subject: in.Subject, Text: in.Text, HTML: in.HTML,
		CorrelationID: provider.RequestID(ctx)}
	switch {
	case in.Template != nil && (in.Text != "" || in.HTML != ""):
		return prepared{}, validation.New("template", "give either a template or text/html, not both")
	case in.Template != nil:
		tpl, ok, err := s.template(ctx, t.ID, in.Template.Name)
		if err != nil {
			return prepared{}, err
		}
		if !ok {
			return prepared{}, validation.New("template.name", fmt.Sprintf("no template %q for this tenant", in.Template.Name))
		}
		if tpl.Channel != "" && tpl.Channel != in.Channel {
			return prepared{}, validation.New("template.name", fmt.Sprintf("template %q is for %s, not %s", tpl.Name, tpl.Channel, in.Channel))
		}
		r, err := Render(tpl.Template, in.Template.Language, in.Template.Params)
		if err != nil {
			return prepared{}, err
		}
		ref := *in.Template
		ref.Language = r.Language
		d.Template, d.Subject, d.Text, d.HTML, d.WhatsApp = &ref, r.Subject, r.Text, r.HTML, r.WhatsApp
		if in.Channel != "whatsapp" {
			d.WhatsApp = nil
		}
	case strings.TrimSpace(in.Text) == "" && strings.TrimSpace(in.HTML) == "":
		return prepared{}, validation.New("text", "is required (or a template)")
	}
	if in.Channel == "email" && strings.TrimSpace(d.Subject) == "" {
		return prepared{}, validation.New("subject", "is required for email (or a template with a subject)")
	}
	if in.Channel != "email" && d.HTML != "" && d.Text == "" {
		return prepared{}, validation.New("text", "is required for "+in.Channel+" (html is for email)")
	}
	if len(d.Text) > 4096 && in.Channel != "email" {
		return prepared{}, validation.New("text", "must be at most 4096 characters")
	}
	name, err := s.providerFor(t, in.Channel, in.Provider)
	if err != nil {
		return prepared{}, err
	}
	if in.Channel == "whatsapp" && d.WhatsApp == nil {
		open, err := s.sessionOpen(ctx, t.ID, "whatsapp", to)
		if err != nil {
			return prepared{}, err
		}
		if !open {
			return prepared{}, fmt.Errorf("%w: %s has not written in the last 24 hours; send a template (one mapped to a Meta-approved WhatsApp template)", ErrSessionClosed, to)
		}
	}
	return prepared{provider: name, doc: d}, nil
}

// normalizeAddress checks a recipient: E.164 for whatsapp and sms, an RFC
// 5322 address for email.
func normalizeAddress(channel, to string) (string, error) {
	to = strings.TrimSpace(to)
	if channel == "email" {
		// Validated, but kept as the tenant wrote it: re-formatting would
		// MIME-encode display names ("=?utf-8?q?…") for JSON APIs.
		if _, err := mail.ParseAddress(to); err != nil || strings.ContainsAny(to, "\r\n") {
			return "", validation.New("to", "must be an RFC 5322 email address")
		}
		return to, nil
	}
	if !isE164(to) {
		return "", validation.New("to", "must be an E.164 phone number such as +56988888888")
	}
	return to, nil
}

func isE164(p string) bool {
	if len(p) < 9 || len(p) > 16 || p[0] != '+' || p[1] == '0' {
		return false
	}
	for _, c := range p[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// providerFor resolves the messaging provider of a channel: the one named,
// else the tenant's default for the channel, else for messaging, else the
// enabled plugin named after the channel ("whatsapp", "email"), else (for
// sms) the whatsapp plugin.
func (s *Service) providerFor(t *tenant.Tenant, channel, name string) (string, error) {
	catalog := s.cfg.Plugins.Catalog()
	ok := func(n string) bool {
		info, known := catalog[n]
		return t.Enabled(n) && (!known || info.Has(provider.CapabilityMessaging))
	}
	if name != "" {
		if !ok(name) {
			return "", fmt.Errorf("%w: provider %q is not an enabled messaging provider of this tenant", ErrNoProvider, name)
		}
		return name, nil
	}
	if d, found := t.DefaultProvider(channel); found && ok(d) {
		return d, nil
	}
	candidates := []string{channel}
	if channel == "sms" {
		candidates = append(candidates, "twilio", "whatsapp")
	}
	for _, c := range candidates {
		if ok(c) {
			return c, nil
		}
	}
	if d, found := t.DefaultProvider(string(provider.CapabilityMessaging)); found && ok(d) {
		return d, nil
	}
	return "", fmt.Errorf("%w: the tenant has no messaging provider for %s (set defaults.%s)", ErrNoProvider, channel, channel)
}

// Enqueue stores a prepared message as id, queued and due now, and wakes
// the worker. The same id again returns the stored message unchanged.
func (s *Service) Enqueue(ctx context.Context, t *tenant.Tenant, id string, p prepared) (Message, error) {
	now := s.now()
	r := store.Resource{Kind: KindMessage, ID: id, TenantID: t.ID, Provider: p.provider, Status: string(messaging.StatusQueued),
		CheckAt: now, Doc: mustJSON(p.doc), CreatedAt: now}
	err := s.cfg.Store.CreateResource(ctx, r)
	if err != nil && !errors.Is(err, store.ErrExists) {
		return Message{}, fmt.Errorf("messenger: store %s: %w", id, err)
	}
	s.Wake()
	return s.Get(ctx, t, id)
}

// Get returns the tenant's message.
func (s *Service) Get(ctx context.Context, t *tenant.Tenant, id string) (Message, error) {
	r, err := s.cfg.Store.GetResource(ctx, KindMessage, t.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		return Message{}, fmt.Errorf("%w: message %s", ErrNotFound, id)
	}
	if err != nil {
		return Message{}, err
	}
	return view(r), nil
}

// List returns the tenant's messages newest first.
func (s *Service) List(ctx context.Context, t *tenant.Tenant, q store.ListQuery) ([]Message, string, error) {
	rs, next, err := s.cfg.Store.ListResources(ctx, KindMessage, t.ID, q)
	if err != nil {
		return nil, "", err
	}
	out := make([]Message, len(rs))
	for i, r := range rs {
		out[i] = view(r)
	}
	return out, next, nil
}

// ---- status

// rank orders outbound statuses; a message only moves up. failed is
// terminal and may follow any status but read.
func rank(s string) int {
	switch messaging.Status(s) {
	case messaging.StatusQueued:
		return 0
	case messaging.StatusSent:
		return 1
	case messaging.StatusDelivered:
		return 2
	case messaging.StatusRead:
		return 3
	case messaging.StatusFailed:
		return 4
	}
	return -1
}

// record announces a message event in the transaction that applies the
// change; apply reports whether the event is still news.
func (s *Service) record(ctx context.Context, r store.Resource, typ string, data map[string]any, apply func(*store.Resource) bool) error {
	d := decodeDoc(&r)
	now := s.now()
	ev, err := event.New(r.TenantID, r.Provider, typ, now, d.CorrelationID, data)
	if err != nil {
		return fmt.Errorf("messenger: render %s: %w", typ, err)
	}
	ev.Subject, ev.CreatedAt = r.ProviderID, now
	_, err = s.cfg.Store.RecordEvents(ctx, store.EventBatch{
		TenantID: r.TenantID, Now: now, Events: []store.Event{ev},
		Resources: []store.ResourceChange{{Kind: KindMessage, ID: r.ID, Events: []int{0}, Apply: apply}},
	})
	if err != nil {
		return fmt.Errorf("messenger: record %s: %w", typ, err)
	}
	s.cfg.Notify()
	return nil
}

// eventData is the catalog data of an outbound message event.
func eventData(r *store.Resource, d *doc, status string) map[string]any {
	data := map[string]any{
		"message_id": r.ID, "provider_message_id": r.ProviderID, "channel": d.Channel, "to": d.To,
		"status": status, "reference": d.Reference,
	}
	if d.Rule != "" {
		data["rule"] = d.Rule
	}
	if status == string(messaging.StatusFailed) && d.Error != nil {
		data["error"] = d.Error
	}
	return data
}
