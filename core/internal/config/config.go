// Package config loads, defaults and validates the gateway's configuration
// file (pipecore.yaml).
//
// Load and Parse are strict: an unknown key, a value of the wrong type or a
// reference to an unset environment variable is an error that names the
// offending path and line, and every problem in a file is reported at once.
// The zero value of every field means its documented default; Parse applies
// the defaults and runs Validate. Checks that need the installed plugins'
// descriptions live in ValidateProviders.
//
// Credentials and API keys never appear in an error message; Redacted and
// the String, Format and LogValue methods print them in redacted form.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Defaults applied by Parse to zero-valued fields.
const (
	defaultListen       = "127.0.0.1:8080"
	defaultDataDir      = "./data"
	defaultPluginsDir   = "./bin/plugins"
	defaultLogLevel     = "info"
	defaultLogFormat    = "json"
	defaultReadTimeout  = 30 * time.Second
	defaultWriteTimeout = 30 * time.Second
	defaultIdleTimeout  = 120 * time.Second
	defaultMaxBodyBytes = 1 << 20
	defaultCallTimeout  = 30 * time.Second
	defaultStartTimeout = 10 * time.Second
)

// MinAPIKeyLength is the minimum length, in characters, of a tenant API key
// configured in clear text: a key must carry at least 32 random bytes' worth
// of entropy (`pipecore keygen` prints 51-character keys).
const MinAPIKeyLength = 32

// HashedKeyPrefix starts an API key configured by its hash:
// "sha256:" followed by 64 lowercase hex digits.
const HashedKeyPrefix = "sha256:"

// redacted replaces every credential value in printed configuration.
const redacted = "[redacted]"

// Config is the whole gateway configuration. The zero value of each field
// means the default documented on it. A Config is not safe for concurrent
// mutation; treat it as read-only once loaded.
type Config struct {
	// Listen is the host:port of the HTTP server. Default "127.0.0.1:8080".
	Listen string `yaml:"listen"`
	// PublicURL is the absolute http(s) URL under which providers and
	// browsers reach the gateway (webhook and return URLs are built from
	// it). Default "http://" + Listen.
	PublicURL string `yaml:"public_url"`
	// DataDir holds the embedded database. Default "./data". A relative
	// path is relative to the process working directory, not to the
	// config file, so that `make run` from the repository root works.
	DataDir string `yaml:"data_dir"`
	// PluginsDir holds the pipecore-plugin-* binaries. Default
	// "./bin/plugins", relative to the working directory like DataDir.
	PluginsDir string `yaml:"plugins_dir"`
	// Log configures the structured logger.
	Log Log `yaml:"log"`
	// HTTP bounds the HTTP server.
	HTTP HTTP `yaml:"http"`
	// Plugins bounds calls to plugin processes.
	Plugins Plugins `yaml:"plugins"`
	// Admin configures the operator API.
	Admin Admin `yaml:"admin"`
	// Secrets says where the master key that encrypts stored credentials
	// lives.
	Secrets Secrets `yaml:"secrets"`
	// Limits bounds what one tenant may ask of the gateway.
	Limits Limits `yaml:"limits"`
	// Webhooks bounds the provider webhook ingress.
	Webhooks Webhooks `yaml:"webhooks"`
	// Delivery configures the signed delivery of events to tenant
	// endpoints.
	Delivery Delivery `yaml:"delivery"`
	// Payments configures the payment reconciliation job.
	Payments Payments `yaml:"payments"`
	// Couriers configures last-mile deliveries: quote fan-out and tracking.
	Couriers Couriers `yaml:"couriers"`
	// Messages configures the sending of messages.
	Messages Messages `yaml:"messages"`
	// Tenants maps a tenant id to its configuration.
	Tenants map[string]Tenant `yaml:"tenants"`

	source string         // file name errors are reported against
	lines  map[string]int // path → line, for messages
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is json or text. Default json.
	Format string `yaml:"format"`
}

// HTTP configures the HTTP server.
type HTTP struct {
	// ReadTimeout bounds reading a whole request. Default 30s.
	ReadTimeout Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing a response. Default 30s.
	WriteTimeout Duration `yaml:"write_timeout"`
	// IdleTimeout bounds an idle keep-alive connection. Default 120s.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// MaxBodyBytes caps a request body. Default 1 MiB (1048576).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// Plugins configures the plugin host.
type Plugins struct {
	// CallTimeout bounds one call into a plugin. Default 30s.
	CallTimeout Duration `yaml:"call_timeout"`
	// StartTimeout bounds launching a plugin process. Default 10s.
	StartTimeout Duration `yaml:"start_timeout"`
	// Watch, when set, polls plugins_dir (and the registered pins) at this
	// interval and hot-reloads what changed, as `pipecore plugins reload`
	// does. Zero (the default) means only explicit reloads.
	Watch Duration `yaml:"watch"`
}

// Admin configures the operator API (/admin/v1) and the CLI that uses it.
type Admin struct {
	// Token is the operator credential: a plain token of at least 32
	// characters (typically "${PIPECORE_ADMIN_TOKEN}") or "sha256:<hex>"
	// of it. Empty disables the admin API.
	Token string `yaml:"token"`
}

// Secrets configures the key holder of credential encryption.
type Secrets struct {
	// KeyFile is the local master key file (created 0600 on first start
	// when missing). Default <data_dir>/master.key; keep it outside the
	// data directory in production so a copy of the data alone reveals
	// nothing.
	KeyFile string `yaml:"key_file"`
	// HMACKeyFile holds the key of the API key hashes and credential
	// fingerprints (created when missing). Default <data_dir>/hmac.key.
	HMACKeyFile string `yaml:"hmac_key_file"`
	// Transit, when Address is set, makes HashiCorp Vault's transit engine
	// hold the master key instead of KeyFile.
	Transit Transit `yaml:"transit"`
}

// Transit configures HashiCorp Vault transit as the key holder.
type Transit struct {
	Address string `yaml:"address"`
	Token   string `yaml:"token"`
	Mount   string `yaml:"mount"` // default "transit"
	Key     string `yaml:"key"`   // default "pipecore"
}

// Limits bounds each tenant's use of the tenant API.
type Limits struct {
	// TenantRPS is the sustained requests per second of one tenant's API
	// calls; past it the tenant gets 429 with Retry-After. Default 100;
	// a negative value disables the limit.
	TenantRPS float64 `yaml:"tenant_rps"`
	// TenantBurst is how many requests a tenant may make at once.
	// Default 200.
	TenantBurst int `yaml:"tenant_burst"`
}

// Webhooks configures the provider webhook ingress.
type Webhooks struct {
	// MaxBodyBytes caps a webhook body. Default 5 MiB (5242880).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// DedupRetention is how long a provider's event id is remembered, so a
	// redelivery is stored once. Default 192h (8 days, longer than every
	// provider's retry horizon).
	DedupRetention Duration `yaml:"dedup_retention"`
	// Workers bounds concurrent normalisation (plugin ParseWebhook calls).
	// Default 32.
	Workers int `yaml:"workers"`
}

// Payments configures how unsettled payments are reconciled.
type Payments struct {
	// ReconcileAfter is how old a payment still pending or requiring
	// action must be before the gateway reads it from the provider (then
	// again on a doubling backoff). Default 15m.
	ReconcileAfter Duration `yaml:"reconcile_after"`
	// ReconcileMaxAge is when the gateway stops reading an unsettled
	// payment. Default 72h.
	ReconcileMaxAge Duration `yaml:"reconcile_max_age"`
}

// Messages configures the sending of tenant messages.
type Messages struct {
	// Schedule is the wait before each retry of a send that failed with a
	// retryable error (provider outage, rate limit); after the last the
	// message fails. Default 5s, 30s, 2m, 10m, 30m, 1h, 2h, 4h.
	Schedule []Duration `yaml:"schedule"`
	// Workers bounds concurrent sends. Default 8.
	Workers int `yaml:"workers"`
}

// Couriers configures last-mile deliveries (quotes, tracking).
type Couriers struct {
	// QuoteTimeout is each provider's deadline in a quote fan-out; a
	// provider slower than this is reported as timed out while the others'
	// quotes are returned. Default 8s.
	QuoteTimeout Duration `yaml:"quote_timeout"`
	// PollInterval is how long a delivery that is not finished may go
	// without news (webhook or poll) before its status is read from the
	// provider. Providers without webhooks are polled at this interval.
	// Default 2m.
	PollInterval Duration `yaml:"poll_interval"`
}

// Delivery configures the signed delivery of events to tenant endpoints.
type Delivery struct {
	// Schedule is the delay before each attempt after the first (which is
	// immediate). Default the Standard Webhooks schedule: 5s, 5m, 30m, 2h,
	// 5h, 10h, 14h, 20h, 24h (10 attempts in about 3 days); each delay
	// gets ±20% jitter.
	Schedule []Duration `yaml:"schedule"`
	// Timeout bounds one attempt. Default 15s.
	Timeout Duration `yaml:"timeout"`
	// MaxInFlightPerEndpoint bounds concurrent attempts to one endpoint, so
	// one slow tenant does not delay others. Default 10.
	MaxInFlightPerEndpoint int `yaml:"max_in_flight_per_endpoint"`
	// Workers bounds concurrent attempts overall. Default 256.
	Workers int `yaml:"workers"`
	// DisableAfter disables an endpoint whose every attempt has failed for
	// this long, from its first failure after its last success; its
	// deliveries wait until it is enabled again. Default 120h (5 days);
	// a negative value never disables (a 410 still does).
	DisableAfter Duration `yaml:"disable_after"`
	// AllowHTTP lets endpoints use plain http (development only); by
	// default only https is delivered to.
	AllowHTTP bool `yaml:"allow_http"`
	// AllowNetworks lists CIDRs or IPs that endpoints may resolve to even
	// though they are private, loopback or link-local (e.g. 127.0.0.1 for
	// local development). Every other internal address is refused, at
	// registration and again at dial time.
	AllowNetworks []string `yaml:"allow_networks"`
	// AllowHosts lists host names accepted at registration despite the
	// internal-name rules (localhost, *.internal, ...); their addresses
	// must still pass AllowNetworks.
	AllowHosts []string `yaml:"allow_hosts"`
}

// Endpoint is a tenant's receiver of events, declared in the config.
type Endpoint struct {
	// ID names the endpoint in the API and in delivery records; it must
	// stay stable across restarts.
	ID string `yaml:"id"`
	// URL receives a signed POST per event.
	URL string `yaml:"url"`
	// Secret signs deliveries: "whsec_" + base64 of 24 to 64 random bytes
	// (typically "${ENV_VAR}"). PreviousSecret, during a rotation, signs
	// every delivery too.
	Secret         string `yaml:"secret"`
	PreviousSecret string `yaml:"previous_secret"`
	// Types filters event types ("payment.confirmed", "payment.*", "*");
	// empty means every event.
	Types []string `yaml:"types"`
	// Enabled nil means true.
	Enabled *bool `yaml:"enabled,omitempty"`
	// Ordered delivers the events of one subject (one payment) one at a
	// time, in order.
	Ordered bool `yaml:"ordered"`
}

// IsEnabled reports whether the endpoint is enabled: Enabled is nil or true.
func (e Endpoint) IsEnabled() bool { return e.Enabled == nil || *e.Enabled }

// Tenant is one gateway customer.
type Tenant struct {
	// APIKeys authenticate the tenant's backend. Each is either a plain key
	// of at least MinAPIKeyLength characters (typically "${ENV_VAR}") or
	// "sha256:" followed by the 64 lowercase hex digits of the key's
	// SHA-256. Several keys allow rotation.
	APIKeys []string `yaml:"api_keys"`
	// Defaults maps a capability (payments, delivery, messaging) to the
	// enabled provider used when a request names none.
	Defaults map[string]string `yaml:"defaults"`
	// Providers maps a provider (plugin) name to its per-tenant setup.
	Providers map[string]Provider `yaml:"providers"`
	// Endpoints receive the tenant's events.
	Endpoints []Endpoint `yaml:"endpoints"`
	// Templates are the tenant's message templates (more can be added
	// with /v1/templates).
	Templates []Template `yaml:"templates"`
	// Automations send messages on events and on inbound keywords (more
	// can be added with /v1/automations).
	Automations []Automation `yaml:"automations"`
}

// Template is a message template: per-language variants rendered with Go
// templates from the request's params (or, for automations, the event).
type Template struct {
	Name string `yaml:"name" json:"name"`
	// Channel restricts the template to one channel (whatsapp, sms,
	// email); empty means any.
	Channel string `yaml:"channel,omitempty" json:"channel,omitempty"`
	// Params are the parameters every render must be given.
	Params []string `yaml:"params,omitempty" json:"params,omitempty"`
	// DefaultLanguage is the variant used when a request names none or
	// one without a variant. Empty means the only variant, or "es".
	DefaultLanguage string `yaml:"default_language,omitempty" json:"default_language,omitempty"`
	// Variants maps a language ("es", "en", "pt_BR") to its content.
	Variants map[string]TemplateVariant `yaml:"variants" json:"variants"`
}

// TemplateVariant is a template in one language.
type TemplateVariant struct {
	Subject string `yaml:"subject,omitempty" json:"subject,omitempty"`
	Text    string `yaml:"text,omitempty" json:"text,omitempty"`
	HTML    string `yaml:"html,omitempty" json:"html,omitempty"`
	// WhatsApp maps the template to a Meta-approved one: its name, its
	// language code and its body parameters in order, each a Go template.
	WhatsApp *WhatsAppTemplate `yaml:"whatsapp,omitempty" json:"whatsapp,omitempty"`
}

// WhatsAppTemplate is a Meta-approved WhatsApp template.
type WhatsAppTemplate struct {
	Name     string   `yaml:"name" json:"name"`
	Language string   `yaml:"language,omitempty" json:"language,omitempty"`
	Params   []string `yaml:"params,omitempty" json:"params,omitempty"`
}

// Automation is a rule that sends a message: on an event type (On), or on
// an inbound message containing one of Keywords (case and accent
// insensitive), in which case the reply goes back to the sender.
type Automation struct {
	ID       string   `yaml:"id" json:"id"`
	On       string   `yaml:"on,omitempty" json:"on,omitempty"`
	Keywords []string `yaml:"keywords,omitempty" json:"keywords,omitempty"`
	Channel  string   `yaml:"channel" json:"channel"`
	Provider string   `yaml:"provider,omitempty" json:"provider,omitempty"`
	// To is a Go template over the event ({{ .data.customer.phone }});
	// keyword rules reply to the sender when it is empty.
	To       string            `yaml:"to,omitempty" json:"to,omitempty"`
	Template string            `yaml:"template,omitempty" json:"template,omitempty"`
	Language string            `yaml:"language,omitempty" json:"language,omitempty"`
	Params   map[string]string `yaml:"params,omitempty" json:"params,omitempty"`
	Text     string            `yaml:"text,omitempty" json:"text,omitempty"`
	Enabled  *bool             `yaml:"enabled,omitempty" json:"enabled,omitempty"`
}

// IsEnabled reports whether the rule runs: Enabled is nil or true.
func (a Automation) IsEnabled() bool { return a.Enabled == nil || *a.Enabled }

// Provider is a tenant's setup of one provider plugin.
type Provider struct {
	// Enabled nil means true: listing a provider enables it unless it says
	// enabled: false.
	Enabled *bool `yaml:"enabled,omitempty"`
	// Settings are the plugin's non-secret fields, plus base_url.
	Settings map[string]string `yaml:"settings"`
	// Credentials are the plugin's secret fields.
	Credentials map[string]string `yaml:"credentials"`
	// Version constrains the plugin versions that may serve the tenant,
	// e.g. "~1.3" (>= 1.3.0, < 1.4.0), "^1.2" or ">= 1.2, < 1.5": the
	// newest installed healthy version satisfying it serves the tenant.
	// Empty means the newest installed version.
	Version string `yaml:"version,omitempty"`
}

// IsEnabled reports whether the provider is enabled: Enabled is nil or true.
func (p Provider) IsEnabled() bool { return p.Enabled == nil || *p.Enabled }

// Versions returns every tenant's plugin version constraints: tenant id →
// provider name → constraint, for the providers that set one.
func (c *Config) Versions() map[string]map[string]string {
	out := map[string]map[string]string{}
	for id, t := range c.Tenants {
		for name, p := range t.Providers {
			if p.Version == "" {
				continue
			}
			if out[id] == nil {
				out[id] = map[string]string{}
			}
			out[id][name] = p.Version
		}
	}
	return out
}

// Duration is a time.Duration written as in Go, e.g. "30s" or "2m".
type Duration time.Duration

// Duration returns d as a time.Duration.
func (d Duration) Duration() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText encodes d like time.Duration.String.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a Go duration such as "30s". A bare number has no
// unit and is rejected.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (write a number with a unit, e.g. \"30s\" or \"2m\")", truncate(string(b)))
	}
	*d = Duration(v)
	return nil
}

// setDefaults replaces zero values with the documented defaults and cleans
// the directory paths.
func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = defaultListen
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.Listen
	}
	if c.DataDir == "" {
		c.DataDir = defaultDataDir
	}
	c.DataDir = filepath.Clean(c.DataDir)
	if c.PluginsDir == "" {
		c.PluginsDir = defaultPluginsDir
	}
	c.PluginsDir = filepath.Clean(c.PluginsDir)
	if c.Log.Level == "" {
		c.Log.Level = defaultLogLevel
	}
	if c.Log.Format == "" {
		c.Log.Format = defaultLogFormat
	}
	setDuration(&c.HTTP.ReadTimeout, defaultReadTimeout)
	setDuration(&c.HTTP.WriteTimeout, defaultWriteTimeout)
	setDuration(&c.HTTP.IdleTimeout, defaultIdleTimeout)
	if c.HTTP.MaxBodyBytes == 0 {
		c.HTTP.MaxBodyBytes = defaultMaxBodyBytes
	}
	setDuration(&c.Plugins.CallTimeout, defaultCallTimeout)
	setDuration(&c.Plugins.StartTimeout, defaultStartTimeout)
	if c.Secrets.KeyFile == "" {
		c.Secrets.KeyFile = filepath.Join(c.DataDir, "master.key")
	}
	if c.Secrets.HMACKeyFile == "" {
		c.Secrets.HMACKeyFile = filepath.Join(c.DataDir, "hmac.key")
	}
	if c.Secrets.Transit.Mount == "" {
		c.Secrets.Transit.Mount = "transit"
	}
	if c.Secrets.Transit.Key == "" {
		c.Secrets.Transit.Key = "pipecore"
	}
	if c.Limits.TenantRPS == 0 {
		c.Limits.TenantRPS = 100
	}
	if c.Limits.TenantBurst == 0 {
		c.Limits.TenantBurst = 200
	}
	if c.Webhooks.MaxBodyBytes == 0 {
		c.Webhooks.MaxBodyBytes = 5 << 20
	}
	setDuration(&c.Webhooks.DedupRetention, 8*24*time.Hour)
	if c.Webhooks.Workers == 0 {
		c.Webhooks.Workers = 32
	}
	if len(c.Delivery.Schedule) == 0 {
		for _, d := range DefaultDeliverySchedule {
			c.Delivery.Schedule = append(c.Delivery.Schedule, Duration(d))
		}
	}
	setDuration(&c.Delivery.Timeout, 15*time.Second)
	setDuration(&c.Delivery.DisableAfter, 5*24*time.Hour)
	setDuration(&c.Couriers.QuoteTimeout, 8*time.Second)
	setDuration(&c.Payments.ReconcileAfter, 15*time.Minute)
	setDuration(&c.Payments.ReconcileMaxAge, 72*time.Hour)
	setDuration(&c.Couriers.PollInterval, 2*time.Minute)
	if c.Delivery.MaxInFlightPerEndpoint == 0 {
		c.Delivery.MaxInFlightPerEndpoint = 10
	}
	if c.Delivery.Workers == 0 {
		c.Delivery.Workers = 256
	}
}

// DefaultDeliverySchedule is the Standard Webhooks example schedule: the
// delays before attempts 2 to 10.
var DefaultDeliverySchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour,
	10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour,
}

func setDuration(d *Duration, def time.Duration) {
	if *d == 0 {
		*d = Duration(def)
	}
}

// Redacted returns a deep copy of c that is safe to print: every non-empty
// credential value is replaced by "[redacted]", every plain API key by its
// "sha256:<hex>" form, and Enabled is made explicit. Settings are copied as
// they are; ValidateProviders rejects a credential placed among them.
func (c *Config) Redacted() *Config {
	out := *c
	out.lines = nil
	if out.Admin.Token != "" {
		out.Admin.Token = keyHash(out.Admin.Token)
	}
	if out.Secrets.Transit.Token != "" {
		out.Secrets.Transit.Token = redacted
	}
	if c.Tenants == nil {
		return &out
	}
	out.Tenants = make(map[string]Tenant, len(c.Tenants))
	for id, t := range c.Tenants {
		out.Tenants[id] = t.redacted()
	}
	return &out
}

func (t Tenant) redacted() Tenant {
	out := Tenant{Defaults: maps.Clone(t.Defaults)}
	if t.APIKeys != nil {
		out.APIKeys = make([]string, len(t.APIKeys))
		for i, k := range t.APIKeys {
			out.APIKeys[i] = keyHash(k)
		}
	}
	if t.Providers != nil {
		out.Providers = make(map[string]Provider, len(t.Providers))
		for name, p := range t.Providers {
			out.Providers[name] = p.redacted()
		}
	}
	for _, e := range t.Endpoints {
		e.Types = slices.Clone(e.Types)
		if e.Secret != "" {
			e.Secret = redacted
		}
		if e.PreviousSecret != "" {
			e.PreviousSecret = redacted
		}
		out.Endpoints = append(out.Endpoints, e)
	}
	return out
}

func (p Provider) redacted() Provider {
	enabled := p.IsEnabled()
	out := Provider{Enabled: &enabled, Settings: maps.Clone(p.Settings), Version: p.Version}
	if p.Credentials != nil {
		out.Credentials = make(map[string]string, len(p.Credentials))
		for k, v := range p.Credentials {
			if v != "" {
				v = redacted
			}
			out.Credentials[k] = v
		}
	}
	return out
}

// keyHash returns the "sha256:<hex>" form of an API key as configured: a
// hashed key is returned lowercased, a plain key is hashed.
func keyHash(key string) string {
	if strings.HasPrefix(key, HashedKeyPrefix) {
		return strings.ToLower(key)
	}
	sum := sha256.Sum256([]byte(key))
	return HashedKeyPrefix + hex.EncodeToString(sum[:])
}

// String returns the redacted configuration as YAML.
func (c Config) String() string { return toYAML(c.Redacted()) }

// Format prints the redacted configuration for every verb, so that no fmt
// verb can print a credential.
func (c Config) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }

// LogValue logs the redacted configuration.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// String returns the redacted tenant as YAML.
func (t Tenant) String() string { return toYAML(t.redacted()) }

// Format prints the redacted tenant for every verb.
func (t Tenant) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(t.String())) }

// LogValue logs the redacted tenant.
func (t Tenant) LogValue() slog.Value { return slog.StringValue(t.String()) }

// String returns the redacted provider setup as YAML.
func (p Provider) String() string { return toYAML(p.redacted()) }

// Format prints the redacted provider setup for every verb.
func (p Provider) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(p.String())) }

// LogValue logs the redacted provider setup.
func (p Provider) LogValue() slog.Value { return slog.StringValue(p.String()) }

func toYAML(v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		return "<unprintable config: " + err.Error() + ">"
	}
	return string(b)
}

// TokenHash returns the SHA-256 of the operator token (from its plain or
// "sha256:" form), or nil when no token is configured.
func (a Admin) TokenHash() []byte {
	if a.Token == "" {
		return nil
	}
	h, err := hex.DecodeString(strings.TrimPrefix(keyHash(a.Token), HashedKeyPrefix))
	if err != nil || len(h) != sha256.Size {
		return nil
	}
	return h
}
