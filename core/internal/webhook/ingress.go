// Package webhook is the inbound half of the event bridge. Ingress takes a
// provider's webhook and, in this order: caps its size, checks the tenant
// exists and has the provider enabled, verifies the signature in core over
// the exact raw bytes with the scheme the plugin declares, derives the
// provider's notification id, and commits the raw webhook to the inbox
// (deduplicated, group committed, fsync'd) before answering 2xx. Nothing is
// parsed as JSON before the signature passes. Everything after the commit
// (normalisation by the plugin, delivery) is asynchronous, so a crashed or
// restarting plugin never makes a provider see an error.
package webhook

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/textproto"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/pipecore/pipecore/core/internal/config"
	"github.com/pipecore/pipecore/core/internal/httpserver"
	"github.com/pipecore/pipecore/core/internal/metrics"
	"github.com/pipecore/pipecore/core/internal/signature"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/sdk/provider"
)

// Catalog returns the Info of a plugin, as last read from it.
type Catalog interface {
	Catalog() map[string]provider.Info
}

// Publisher announces accepted webhooks to the normaliser.
type Publisher interface {
	Publish(topic, tenantID, id string) error
}

// Gauge is told when each webhook comes in and when it is answered
// (bus.Pacer), so that background stages can give way while many are in
// flight.
type Gauge interface {
	Enter()
	Leave()
}

// Config wires an Ingress.
type Config struct {
	Tenants *tenant.Registry
	Plugins Catalog
	Store   store.Store
	Bus     Publisher
	Topic   string
	// Gauge, when set, is told about every POST in flight.
	Gauge   Gauge
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	// PublicURL is the gateway's public base URL; the Twilio scheme signs
	// the full URL the provider called.
	PublicURL string
	// MaxBodyBytes caps a webhook body. Zero means 5 MiB.
	MaxBodyBytes int
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Ingress serves /webhooks/{provider}/{tenant}.
type Ingress struct{ cfg Config }

// New returns an Ingress.
func New(cfg Config) *Ingress {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 5 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	return &Ingress{cfg: cfg}
}

// target is the tenant and provider a webhook is for, once checked.
type target struct {
	tenant *tenant.Tenant
	name   string
	spec   *provider.WebhookSpec
	pt     provider.Tenant
}

// resolve checks the tenant and provider of the URL. Unknown tenant,
// provider not enabled for it, and a provider without webhooks all answer
// the same 404, so the URL space reveals nothing.
func (in *Ingress) resolve(ctx *fasthttp.RequestCtx) (target, bool) {
	name, _ := ctx.UserValue("provider").(string)
	tid, _ := ctx.UserValue("tenant").(string)
	t, ok := in.cfg.Tenants.Get(tid)
	if ok && !t.Disabled && t.Enabled(name) {
		if info, known := in.cfg.Plugins.Catalog()[name]; known && info.Webhook != nil {
			pt, _ := t.ProviderTenant(name)
			spec := info.Webhook.For(pt.Setting(info.Webhook.VariantSetting))
			return target{tenant: t, name: name, spec: spec, pt: pt}, true
		}
		if _, known := in.cfg.Plugins.Catalog()[name]; !known {
			// The plugin never started (e.g. refused binary): its scheme
			// is unknown, so nothing can be verified. Ask the provider to
			// retry rather than losing the webhook.
			in.reject(ctx, name, "plugin_unavailable", fasthttp.StatusServiceUnavailable, "the provider's plugin is not running; retry later")
			ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "30")
			return target{}, false
		}
	}
	in.reject(ctx, name, "not_found", fasthttp.StatusNotFound, "no such webhook endpoint")
	return target{}, false
}

func (in *Ingress) reject(ctx *fasthttp.RequestCtx, prov, reason string, status int, msg string) {
	in.cfg.Metrics.WebhookRejected(prov, reason)
	httpserver.WriteError(ctx, status, reason, msg)
}

// Post handles POST /webhooks/{provider}/{tenant}.
func (in *Ingress) Post(ctx *fasthttp.RequestCtx) {
	if g := in.cfg.Gauge; g != nil {
		g.Enter()
		defer g.Leave()
	}
	if len(ctx.Request.Body()) > in.cfg.MaxBodyBytes {
		name, _ := ctx.UserValue("provider").(string)
		in.reject(ctx, name, "body_too_large", fasthttp.StatusRequestEntityTooLarge, "webhook body exceeds the limit")
		return
	}
	t, ok := in.resolve(ctx)
	if !ok {
		return
	}
	now := in.cfg.Now()
	// The body is fasthttp's buffer, valid until the handler returns:
	// everything below uses it before then (AcceptWebhook copies what the
	// inbox keeps).
	body := ctx.Request.Body()
	uri := string(ctx.RequestURI())
	req := signature.Request{
		Method: string(ctx.Method()),
		URL:    in.cfg.PublicURL + uri,
		Header: headers(&ctx.Request.Header),
		Query:  query(ctx.QueryArgs()),
		Body:   body,
	}
	secrets := []string{t.pt.Secret(t.spec.SecretField).Reveal(), t.pt.Secret(t.spec.SecretField + config.PreviousSuffix).Reveal()}
	err := signature.Verify(t.spec.Scheme, req, secrets, signature.Options{Header: t.spec.Header, Tolerance: t.spec.Tolerance, Now: in.cfg.Now})
	if err != nil {
		reason := "invalid_signature"
		if errors.Is(err, signature.ErrTimestamp) {
			reason = "stale_timestamp"
		} else if errors.Is(err, signature.ErrNoSecret) {
			reason = "no_secret"
		}
		in.cfg.Logger.Info("webhook rejected", "tenant", t.tenant.ID, "provider", t.name, "reason", reason, "error", err)
		in.reject(ctx, t.name, reason, fasthttp.StatusUnauthorized, "webhook signature verification failed")
		return
	}
	rec := store.InboxRecord{
		TenantID:      t.tenant.ID,
		Provider:      t.name,
		DedupKey:      DedupKey(t.spec.DedupKey, req),
		Method:        req.Method,
		RequestURI:    uri,
		Header:        req.Header,
		Body:          body,
		ReceivedAt:    now,
		CorrelationID: httpserver.RequestID(ctx),
	}
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stored, dup, err := in.cfg.Store.AcceptWebhook(c, rec)
	if err != nil {
		in.cfg.Logger.Error("webhook not stored", "tenant", t.tenant.ID, "provider", t.name, "error", err)
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "5")
		in.reject(ctx, t.name, "storage_unavailable", fasthttp.StatusServiceUnavailable, "the webhook could not be stored; retry later")
		return
	}
	if dup {
		in.cfg.Metrics.WebhookReceived(t.name, "duplicate")
		writeAck(ctx, "duplicate", stored.ID)
		return
	}
	in.cfg.Metrics.WebhookReceived(t.name, "accepted")
	if err := in.cfg.Bus.Publish(in.cfg.Topic, t.tenant.ID, stored.ID); err != nil {
		in.cfg.Logger.Warn("webhook accepted but not announced; the inbox rescan picks it up", "id", stored.ID, "error", err)
	}
	writeAck(ctx, "accepted", stored.ID)
}

type ack struct {
	Status string `json:"status"`
	ID     string `json:"id"`
}

// writeAck answers 200 with {"status":…,"id":…}, without the encoder
// when the id needs no escaping (the inbox's own ids never do).
func writeAck(ctx *fasthttp.RequestCtx, status, id string) {
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c == '_' || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			httpserver.WriteJSON(ctx, fasthttp.StatusOK, ack{Status: status, ID: id})
			return
		}
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.Response.SetBodyString(`{"status":"`)
	ctx.Response.AppendBodyString(status)
	ctx.Response.AppendBodyString(`","id":"`)
	ctx.Response.AppendBodyString(id)
	ctx.Response.AppendBodyString(`"}`)
}

// Get answers a provider's subscription handshake (GET), such as Meta's
// hub.challenge, from the tenant's verify token.
func (in *Ingress) Get(ctx *fasthttp.RequestCtx) {
	t, ok := in.resolve(ctx)
	if !ok {
		return
	}
	switch t.spec.Handshake {
	case provider.HandshakeMeta:
		args := ctx.QueryArgs()
		want := t.pt.Secret(t.spec.VerifyTokenField).Reveal()
		if want == "" {
			want = t.pt.Setting(t.spec.VerifyTokenField)
		}
		got := args.Peek("hub.verify_token")
		if string(args.Peek("hub.mode")) != "subscribe" || want == "" || subtle.ConstantTimeCompare(got, []byte(want)) != 1 {
			in.reject(ctx, t.name, "handshake_failed", fasthttp.StatusForbidden, "verify token mismatch")
			return
		}
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBody(args.Peek("hub.challenge"))
	default:
		httpserver.WriteError(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed", "this provider's webhooks are POSTed")
	}
}

func headers(h *fasthttp.RequestHeader) map[string][]string {
	out := make(map[string][]string, h.Len())
	for k, v := range h.All() {
		key := textproto.CanonicalMIMEHeaderKey(string(k))
		out[key] = append(out[key], string(v))
	}
	return out
}

func query(a *fasthttp.Args) map[string][]string {
	if a.Len() == 0 {
		return nil
	}
	out := make(map[string][]string, a.Len())
	for k, v := range a.All() {
		out[string(k)] = append(out[string(k)], string(v))
	}
	return out
}

// bodyKey is the fallback dedup key: only byte-identical redeliveries match.
func bodyKey(body []byte) string {
	sum := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(sum[:])
}
