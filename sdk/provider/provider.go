package provider

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Provider is implemented by every plugin. A plugin additionally implements
// one or more capability interfaces (payments.Provider, delivery.Provider,
// messaging.Provider) and, when its provider sends webhooks, WebhookParser;
// providerserver.Serve discovers them by type assertion.
type Provider interface {
	// Info describes the plugin. It must be cheap, pure and constant.
	Info() Info
}

// Capability names a family of operations a plugin offers.
type Capability string

// The capabilities the gateway knows.
const (
	CapabilityPayments  Capability = "payments"
	CapabilityDelivery  Capability = "delivery"
	CapabilityMessaging Capability = "messaging"
)

// Info describes a plugin to the gateway.
type Info struct {
	// Name is lowercase and matches the binary suffix and the config key,
	// e.g. "stripe" for pipecore-plugin-stripe.
	Name string
	// Version is the plugin's semantic version, usually set with -ldflags.
	Version string
	// Capabilities lists what the plugin implements. providerserver fills it
	// from the interfaces the plugin satisfies; a value set here is ignored.
	Capabilities []Capability
	// Fields are the per-tenant settings and credentials the gateway
	// validates before any call. Every plugin also accepts the implicit
	// setting "base_url" (see BaseURLField).
	Fields []Field
	// Webhook tells the gateway how to verify this provider's webhooks.
	// Nil means the provider sends none.
	Webhook *WebhookSpec
}

// BaseURLField is the setting every plugin accepts to point it at a sandbox
// or a local fake instead of the provider's production API.
const BaseURLField = "base_url"

// Field declares one per-tenant setting or credential.
type Field struct {
	// Name is the key under a tenant's settings (or credentials when
	// Secret is true), lowercase with underscores.
	Name string
	// Secret fields are credentials: they are configured under
	// "credentials", stored encrypted, never logged, and reach the plugin
	// only as Secret values.
	Secret bool
	// Required fields must be set for every tenant that enables the plugin.
	Required bool
	// Doc is a one-line description shown to operators.
	Doc string
}

// SignatureScheme names a webhook signature algorithm implemented by the
// gateway core. Verification always happens in core, over the raw bytes,
// before a plugin sees a webhook.
type SignatureScheme string

// The signature schemes core verifies.
const (
	SchemeStripe      SignatureScheme = "stripe"      // Stripe-Signature: t=…,v1=…
	SchemeMercadoPago SignatureScheme = "mercadopago" // x-signature: ts=…,v1=… over the documented manifest
	SchemeMetaSHA256  SignatureScheme = "meta-sha256" // X-Hub-Signature-256: sha256=<hex>
	SchemeTwilio      SignatureScheme = "twilio"      // X-Twilio-Signature: HMAC-SHA1 over URL and params
	SchemeSvix        SignatureScheme = "svix"        // svix-*/webhook-* headers (Standard Webhooks)
	SchemeHMACSHA256  SignatureScheme = "hmac-sha256" // hex HMAC-SHA256 of the body in Header
	SchemeECDSA       SignatureScheme = "sendgrid-ecdsa"
	SchemeStaticToken SignatureScheme = "static-token" // shared token compared in constant time
	SchemeRappi       SignatureScheme = "rappi"        // Rappi-Signature: t=…,sign=<hex HMAC-SHA256 of t.body>
)

// WebhookSpec tells core how to verify inbound webhooks before the plugin
// sees them.
type WebhookSpec struct {
	Scheme SignatureScheme
	// Header carries the signature, for schemes whose header varies
	// (SchemeHMACSHA256, SchemeStaticToken). Empty means the scheme's default.
	Header string
	// SecretField is the Field.Name holding the signing secret.
	SecretField string
	// Tolerance bounds the age of a signed timestamp. Zero means the
	// scheme's default (300 s where the scheme signs a timestamp).
	Tolerance time.Duration
	// DedupKey tells core where the provider's id of a notification is, so
	// a redelivered webhook is stored once. Each source is one of
	// "json:<dotted.path>" (a field of the JSON body), "header:<Name>",
	// "query:<name>" or "form:<name>" (a form-encoded body field); the
	// values found are joined. Empty means the SHA-256 of the body: only
	// byte-identical redeliveries are recognised.
	DedupKey []string
	// Handshake names a subscription handshake core answers on GET, e.g.
	// HandshakeMeta for WhatsApp's hub.challenge. Empty means none.
	Handshake Handshake
	// VerifyTokenField is the Field.Name holding the token the handshake
	// checks.
	VerifyTokenField string

	// VariantSetting names a (non-secret) Field whose per-tenant value
	// selects one of Variants, for a plugin with several transports that
	// sign differently (WhatsApp over Meta's Cloud API or over Twilio).
	// A tenant whose value has no entry in Variants, or a spec without
	// VariantSetting, uses this spec itself. A variant must not itself
	// declare variants.
	VariantSetting string
	Variants       map[string]*WebhookSpec
}

// SecretFields returns the distinct secret fields of w and its variants, in
// a stable order (w's first, then the variants' by setting value).
func (w *WebhookSpec) SecretFields() []string {
	if w == nil {
		return nil
	}
	out := []string{w.SecretField}
	values := make([]string, 0, len(w.Variants))
	for v := range w.Variants {
		values = append(values, v)
	}
	sort.Strings(values)
	for _, v := range values {
		if f := w.Variants[v].SecretField; f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// For returns the spec that applies to a tenant whose setting
// VariantSetting has the given value: the matching variant, else w.
func (w *WebhookSpec) For(settingValue string) *WebhookSpec {
	if w == nil || w.VariantSetting == "" {
		return w
	}
	if v, ok := w.Variants[settingValue]; ok && v != nil {
		return v
	}
	return w
}

// Handshake is a webhook subscription handshake answered by core.
type Handshake string

// The handshakes core implements.
const (
	// HandshakeMeta answers GET ?hub.mode=subscribe&hub.verify_token=T&hub.challenge=C
	// with C when T equals the tenant's verify token.
	HandshakeMeta Handshake = "meta"
)

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// Validate reports whether i is a well-formed plugin description: a
// lowercase name, a version, uniquely named fields and, when a webhook is
// declared, a secret field that exists and is a Secret.
func (i Info) Validate() error {
	if !namePattern.MatchString(i.Name) {
		return fmt.Errorf("provider: info: name %q must match %s", i.Name, namePattern)
	}
	if i.Version == "" {
		return fmt.Errorf("provider: info %s: version is empty", i.Name)
	}
	seen := make(map[string]Field, len(i.Fields))
	for _, f := range i.Fields {
		if !namePattern.MatchString(f.Name) {
			return fmt.Errorf("provider: info %s: field name %q must match %s", i.Name, f.Name, namePattern)
		}
		if _, dup := seen[f.Name]; dup {
			return fmt.Errorf("provider: info %s: field %q declared twice", i.Name, f.Name)
		}
		seen[f.Name] = f
	}
	if w := i.Webhook; w != nil {
		if err := i.validateWebhook(w, seen); err != nil {
			return err
		}
		if w.VariantSetting != "" {
			if f, ok := seen[w.VariantSetting]; !ok || f.Secret {
				return fmt.Errorf("provider: info %s: webhook variant setting %q is not a declared non-secret field", i.Name, w.VariantSetting)
			}
		}
		for value, v := range w.Variants {
			if v == nil {
				return fmt.Errorf("provider: info %s: webhook variant %q is nil", i.Name, value)
			}
			if v.VariantSetting != "" || len(v.Variants) > 0 {
				return fmt.Errorf("provider: info %s: webhook variant %q declares variants of its own", i.Name, value)
			}
			if err := i.validateWebhook(v, seen); err != nil {
				return fmt.Errorf("%w (variant %q)", err, value)
			}
		}
	}
	return nil
}

func (i Info) validateWebhook(w *WebhookSpec, seen map[string]Field) error {
	if w.Scheme == "" {
		return fmt.Errorf("provider: info %s: webhook scheme is empty", i.Name)
	}
	f, ok := seen[w.SecretField]
	if !ok || !f.Secret {
		return fmt.Errorf("provider: info %s: webhook secret field %q is not a declared secret field", i.Name, w.SecretField)
	}
	for _, src := range w.DedupKey {
		kind, name, ok := strings.Cut(src, ":")
		if !ok || name == "" || (kind != "json" && kind != "header" && kind != "query" && kind != "form") {
			return fmt.Errorf("provider: info %s: webhook dedup key source %q must be json:, header:, query: or form: followed by a name", i.Name, src)
		}
	}
	if w.Handshake != "" {
		if w.Handshake != HandshakeMeta {
			return fmt.Errorf("provider: info %s: unknown webhook handshake %q", i.Name, w.Handshake)
		}
		if _, ok := seen[w.VerifyTokenField]; !ok {
			return fmt.Errorf("provider: info %s: handshake verify token field %q is not declared", i.Name, w.VerifyTokenField)
		}
	}
	return nil
}

// Field returns the field called name and whether it is declared.
func (i Info) Field(name string) (Field, bool) {
	for _, f := range i.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// Has reports whether the plugin offers capability c.
func (i Info) Has(c Capability) bool {
	for _, have := range i.Capabilities {
		if have == c {
			return true
		}
	}
	return false
}

// ErrUnsupported is returned (possibly wrapped) for an operation a plugin
// does not implement, such as Capture on a provider without manual capture.
var ErrUnsupported = errors.New("provider: operation not supported")
