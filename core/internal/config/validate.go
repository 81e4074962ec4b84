package config

import (
	"encoding/base64"
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/Masterminds/semver/v3"

	"github.com/pipecore/pipecore/core/internal/ssrf"
	"github.com/pipecore/pipecore/sdk/provider"
)

// tenantIDPattern is the shape of a tenant id; ids appear in URLs.
var tenantIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Channels are the messaging channels; each may also be a key under a
// tenant's defaults, naming the messaging provider used for it.
var Channels = []string{"whatsapp", "sms", "email"}

// capabilities are the keys allowed under a tenant's defaults.
var capabilities = []provider.Capability{
	provider.CapabilityDelivery,
	provider.CapabilityMessaging,
	provider.CapabilityPayments,
}

// Validate checks c on its own, without the plugin catalog (see
// ValidateProviders). It expects defaults to be applied, as Parse does:
// zero durations and sizes are errors here. It reports every problem,
// joined, and never includes a credential or API key in a message.
func (c *Config) Validate() error { return joinProblems(c.validate()) }

func (c *Config) validate() []*problem {
	v := validator{c: c}
	v.server()
	if c.Admin.Token != "" {
		if msg := checkAPIKey(c.Admin.Token); msg != "" {
			v.add("admin.token", "the operator token: %s", msg)
		}
	}
	if p, err := c.DeliveryPolicy(); err != nil {
		v.add("delivery.allow_networks", "%v", err)
	} else {
		v.policy = &p
	}
	owners := make(map[string]string) // key hash → tenant id
	for _, id := range slices.Sorted(maps.Keys(c.Tenants)) {
		v.tenant(id, c.Tenants[id], owners)
	}
	return v.probs
}

type validator struct {
	c      *Config
	probs  []*problem
	policy *ssrf.Policy // nil when delivery.allow_networks is invalid
}

// DeliveryPolicy returns the outbound address policy for tenant endpoints
// built from the delivery settings.
func (c *Config) DeliveryPolicy() (ssrf.Policy, error) {
	p, err := ssrf.ParsePolicy(c.Delivery.AllowHTTP, c.Delivery.AllowNetworks, nil)
	if err != nil {
		return p, err
	}
	p.AllowHosts = c.Delivery.AllowHosts
	return p, nil
}

func (v *validator) add(path, format string, args ...any) {
	v.probs = append(v.probs, &problem{source: v.c.source, path: path, line: v.c.lines[path], msg: fmt.Sprintf(format, args...)})
}

func (v *validator) server() {
	c := v.c
	if host, port, err := net.SplitHostPort(c.Listen); err != nil || strings.ContainsAny(host, " /") || !validPort(port) {
		v.add("listen", "%q is not a host:port address such as 127.0.0.1:8080", truncate(c.Listen))
	}
	u, err := url.Parse(c.PublicURL)
	switch {
	case err != nil:
		v.add("public_url", "not a valid URL; expected an absolute http:// or https:// URL such as https://gateway.example.com")
	case u.User != nil:
		v.add("public_url", "%q must not contain a user name or password", u.Redacted())
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		v.add("public_url", "%q is not an absolute http:// or https:// URL such as https://gateway.example.com", truncate(u.String()))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.add("log.level", "unknown level %q (use debug, info, warn or error)", truncate(c.Log.Level))
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		v.add("log.format", "unknown format %q (use json or text)", truncate(c.Log.Format))
	}
	for _, d := range []struct {
		path string
		d    Duration
	}{
		{"http.read_timeout", c.HTTP.ReadTimeout},
		{"http.write_timeout", c.HTTP.WriteTimeout},
		{"http.idle_timeout", c.HTTP.IdleTimeout},
		{"plugins.call_timeout", c.Plugins.CallTimeout},
		{"plugins.start_timeout", c.Plugins.StartTimeout},
	} {
		if d.d <= 0 {
			v.add(d.path, "must be a positive duration, got %s", d.d)
		}
	}
	if c.HTTP.MaxBodyBytes <= 0 {
		v.add("http.max_body_bytes", "must be a positive number of bytes, got %d", c.HTTP.MaxBodyBytes)
	}
}

func validPort(p string) bool {
	n, err := strconv.ParseUint(p, 10, 16)
	return err == nil && n <= 65535
}

func (v *validator) tenant(id string, t Tenant, owners map[string]string) {
	path := join("tenants", id)
	if !tenantIDPattern.MatchString(id) {
		v.add(path, "tenant id %q must be 1 to 63 lowercase letters, digits, _ or -, starting with a letter or digit", truncate(id))
	}
	if len(t.APIKeys) == 0 {
		v.add(join(path, "api_keys"), "tenant %q has no api key; add at least one (generate it with `pipecore keygen`)", id)
	}
	for i, key := range t.APIKeys {
		kp := join(path, "api_keys") + "[" + strconv.Itoa(i) + "]"
		if msg := checkAPIKey(key); msg != "" {
			v.add(kp, "tenant %q: %s", id, msg)
			continue
		}
		h := keyHash(key)
		if other, dup := owners[h]; dup && other != id {
			v.add(kp, "tenant %q: this api key is also configured for tenant %q; a key must identify exactly one tenant", id, other)
			continue
		}
		owners[h] = id
	}
	seenEndpoints := map[string]bool{}
	for i, e := range t.Endpoints {
		ep := join(path, "endpoints") + "[" + strconv.Itoa(i) + "]"
		switch {
		case !endpointIDPattern.MatchString(e.ID):
			v.add(join(ep, "id"), "tenant %q: endpoint id %q must be 1 to 63 lowercase letters, digits, _ or -", id, truncate(e.ID))
		case seenEndpoints[e.ID]:
			v.add(join(ep, "id"), "tenant %q: endpoint id %q is used twice", id, e.ID)
		}
		seenEndpoints[e.ID] = true
		if u, err := url.Parse(e.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			v.add(join(ep, "url"), "tenant %q: endpoint %q: url must be an absolute http(s) URL without user info", id, e.ID)
		} else if v.policy != nil {
			if err := v.policy.CheckURL(e.URL); err != nil {
				v.add(join(ep, "url"), "tenant %q: endpoint %q: %v", id, e.ID, err)
			}
		}
		for _, sec := range []struct{ name, val string }{{"secret", e.Secret}, {"previous_secret", e.PreviousSecret}} {
			if sec.val == "" && sec.name == "previous_secret" {
				continue
			}
			if msg := checkSigningSecret(sec.val); msg != "" {
				v.add(join(ep, sec.name), "tenant %q: endpoint %q: %s", id, e.ID, msg)
			}
		}
		for _, typ := range e.Types {
			if !eventTypePattern.MatchString(typ) {
				v.add(join(ep, "types"), "tenant %q: endpoint %q: type filter %q must be an event type (payment.confirmed), a prefix (payment.*) or *", id, e.ID, truncate(typ))
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(t.Providers)) {
		if c := t.Providers[name].Version; c != "" {
			if _, err := semver.NewConstraint(c); err != nil {
				v.add(join(join(join(path, "providers"), name), "version"), "tenant %q: provider %q: version constraint %q is invalid (write e.g. \"~1.3\", \"^1.2\" or \">= 1.2, < 1.5\")", id, name, truncate(c))
			}
		}
	}
	for _, capName := range slices.Sorted(maps.Keys(t.Defaults)) {
		dp := join(join(path, "defaults"), capName)
		name := t.Defaults[capName]
		p, listed := t.Providers[name]
		switch {
		case !slices.Contains(capabilities, provider.Capability(capName)) && !slices.Contains(Channels, capName):
			v.add(dp, "tenant %q: unknown capability %q (use %s, or a messaging channel: %s)", id, truncate(capName), joinCapabilities(), strings.Join(Channels, ", "))
		case name == "":
			v.add(dp, "tenant %q: default %s provider is empty; name one of the tenant's enabled providers", id, capName)
		case !listed:
			v.add(dp, "tenant %q: default %s provider %q is not configured; add it under %s", id, capName, truncate(name), join(path, "providers"))
		case !p.IsEnabled():
			v.add(dp, "tenant %q: default %s provider %q is disabled (enabled: false); enable it or choose another default", id, capName, name)
		}
	}
}

// PreviousSuffix names the credential holding a plugin's previous webhook
// secret during a rotation: webhook_secret_previous.
const PreviousSuffix = "_previous"

var (
	endpointIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	eventTypePattern  = regexp.MustCompile(`^(\*|[a-z_]+(\.[a-z_]+)*(\.\*)?)$`)
)

// checkSigningSecret returns why an endpoint signing secret is
// unacceptable, or "". The message never contains the secret.
func checkSigningSecret(s string) string {
	raw, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return `secret must start with "whsec_" followed by base64 (generate one with ` + "`pipecore keygen --webhook`" + `)`
	}
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(b) < 24 || len(b) > 64 {
		return "secret must be whsec_ + standard base64 of 24 to 64 random bytes"
	}
	return ""
}

// checkAPIKey returns why a configured API key is unacceptable, or "".
// The message never contains the key.
func checkAPIKey(key string) string {
	if len(key) >= len(HashedKeyPrefix) && strings.EqualFold(key[:len(HashedKeyPrefix)], HashedKeyPrefix) {
		if !strings.HasPrefix(key, HashedKeyPrefix) || !isLowerHex(key[len(HashedKeyPrefix):], 64) {
			return `a hashed api key must be "sha256:" followed by exactly 64 lowercase hex digits (the SHA-256 of the key)`
		}
		return ""
	}
	if key == "" {
		return "api key is empty"
	}
	if n := utf8.RuneCountInString(key); n < MinAPIKeyLength {
		return fmt.Sprintf("api key is %d characters long; a key must be at least %d characters because it must carry at least 32 random bytes' worth of entropy; generate one with `pipecore keygen`", n, MinAPIKeyLength)
	}
	return ""
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func joinCapabilities() string {
	names := make([]string, len(capabilities))
	for i, c := range capabilities {
		names[i] = string(c)
	}
	return strings.Join(names, ", ")
}

// ValidateProviders checks every tenant's providers against catalog, the
// descriptions of the installed plugins keyed by Info.Name:
//
//   - every listed provider, enabled or not, has a plugin;
//   - settings hold only the plugin's non-secret fields and base_url, and
//     credentials only its secret fields; a field under the wrong one is
//     rejected with a hint to move it;
//   - an enabled provider sets every Required field to a non-empty value;
//   - a tenant's default for a capability names a plugin offering it.
//
// Every message names the tenant, the provider and the field, and never
// contains a setting's or credential's value. Problems are joined.
func (c *Config) ValidateProviders(catalog map[string]provider.Info) error {
	var probs []*problem
	add := func(tenant, prov, format string, args ...any) {
		msg := fmt.Sprintf("tenant %q: provider %q: ", tenant, prov) + fmt.Sprintf(format, args...)
		probs = append(probs, &problem{msg: msg})
	}
	available := slices.Sorted(maps.Keys(catalog))
	for _, id := range slices.Sorted(maps.Keys(c.Tenants)) {
		t := c.Tenants[id]
		base := join(join("tenants", id), "providers")
		for _, name := range slices.Sorted(maps.Keys(t.Providers)) {
			info, ok := catalog[name]
			if !ok {
				add(id, name, "no plugin provides it (available: %s)", listOrNone(available))
				continue
			}
			checkFields(id, name, join(base, name), t.Providers[name], info, add)
		}
		for _, capName := range slices.Sorted(maps.Keys(t.Defaults)) {
			name := t.Defaults[capName]
			info, ok := catalog[name]
			if slices.Contains(Channels, capName) {
				capName = string(provider.CapabilityMessaging)
			}
			if !ok || !slices.Contains(capabilities, provider.Capability(capName)) {
				continue // reported above or by Validate
			}
			if !info.Has(provider.Capability(capName)) {
				add(id, name, "defaults.%s: the plugin does not offer %s (it offers: %s)", capName, capName, listOrNone(capabilityNames(info)))
			}
		}
	}
	return joinProblems(probs)
}

func checkFields(tenant, name, path string, p Provider, info provider.Info, add func(tenant, prov, format string, args ...any)) {
	var settings, credentials []string
	for _, f := range info.Fields {
		if f.Secret {
			credentials = append(credentials, f.Name)
		} else {
			settings = append(settings, f.Name)
		}
	}
	if _, declared := info.Field(provider.BaseURLField); !declared {
		settings = append(settings, provider.BaseURLField)
	}
	for _, sf := range info.Webhook.SecretFields() {
		// During a rotation the previous webhook secret verifies too.
		credentials = append(credentials, sf+PreviousSuffix)
	}
	slices.Sort(settings)
	slices.Sort(credentials)

	for _, k := range slices.Sorted(maps.Keys(p.Settings)) {
		switch {
		case slices.Contains(settings, k):
		case slices.Contains(credentials, k):
			add(tenant, name, "settings.%s: %q is a credential: move it from %s to %s, which are stored encrypted and never printed", k, k, join(path, "settings"), join(path, "credentials"))
		default:
			add(tenant, name, "settings.%s: unknown setting %q (settings of this plugin: %s)", truncate(k), truncate(k), listOrNone(settings))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(p.Credentials)) {
		switch {
		case slices.Contains(credentials, k):
		case slices.Contains(settings, k):
			add(tenant, name, "credentials.%s: %q is a setting, not a credential: move it from %s to %s", k, k, join(path, "credentials"), join(path, "settings"))
		default:
			add(tenant, name, "credentials.%s: unknown credential %q (credentials of this plugin: %s)", truncate(k), truncate(k), listOrNone(credentials))
		}
	}
	if !p.IsEnabled() {
		return
	}
	for _, f := range info.Fields {
		if !f.Required {
			continue
		}
		kind, where, set := "setting", "settings", p.Settings[f.Name] != ""
		if f.Secret {
			kind, where, set = "credential", "credentials", p.Credentials[f.Name] != ""
		}
		if set {
			continue
		}
		doc := ""
		if f.Doc != "" {
			doc = " (" + f.Doc + ")"
		}
		add(tenant, name, "%s.%s: required %s %q is not set; add it under %s%s", where, f.Name, kind, f.Name, join(path, where), doc)
	}
}

func capabilityNames(info provider.Info) []string {
	names := make([]string, len(info.Capabilities))
	for i, c := range info.Capabilities {
		names[i] = string(c)
	}
	slices.Sort(names)
	return names
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
