package provider

import (
	"fmt"
	"log/slog"
	"maps"
)

// Tenant is the gateway customer on whose behalf a call is made, with its
// settings and decrypted credentials for this provider. One plugin process
// serves every tenant, so plugins must not keep tenant state in globals.
//
// The zero Tenant has no ID, settings or secrets. A Tenant is immutable and
// safe for concurrent use.
type Tenant struct {
	id       string
	settings map[string]string
	secrets  map[string]Secret
}

// NewTenant returns a Tenant. The maps are copied.
func NewTenant(id string, settings map[string]string, secrets map[string]string) Tenant {
	t := Tenant{id: id, settings: maps.Clone(settings), secrets: make(map[string]Secret, len(secrets))}
	for k, v := range secrets {
		t.secrets[k] = NewSecret(v)
	}
	return t
}

// ID returns the tenant's identifier, e.g. "tableflow".
func (t Tenant) ID() string { return t.id }

// Setting returns the non-secret setting called name, or "" when unset.
func (t Tenant) Setting(name string) string { return t.settings[name] }

// Secret returns the credential called name; it is empty when unset.
func (t Tenant) Secret(name string) Secret { return t.secrets[name] }

// Settings returns a copy of every non-secret setting.
func (t Tenant) Settings() map[string]string { return maps.Clone(t.settings) }

// SecretNames returns the names of the credentials that are set, unsorted.
func (t Tenant) SecretNames() []string {
	names := make([]string, 0, len(t.secrets))
	for k := range t.secrets {
		names = append(names, k)
	}
	return names
}

// RevealSecrets returns every credential in clear text. It exists for the
// transport layer, which must carry credentials to the plugin; nothing else
// should call it.
func (t Tenant) RevealSecrets() map[string]string {
	out := make(map[string]string, len(t.secrets))
	for k, v := range t.secrets {
		out[k] = v.Reveal()
	}
	return out
}

// String prints the tenant id only.
func (t Tenant) String() string { return "tenant(" + t.id + ")" }

// LogValue logs the tenant id only.
func (t Tenant) LogValue() slog.Value { return slog.StringValue(t.id) }

// Secret holds a credential. Every way of printing it (fmt verbs, JSON,
// slog) yields "[redacted]"; only Reveal returns the value.
type Secret struct{ v string }

const redacted = "[redacted]"

// NewSecret wraps v.
func NewSecret(v string) Secret { return Secret{v: v} }

// Reveal returns the credential in clear text. Call it where the value is
// handed to the provider's client, never to build a message.
func (s Secret) Reveal() string { return s.v }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.v == "" }

// String returns "[redacted]".
func (Secret) String() string { return redacted }

// GoString returns "[redacted]", so %#v does not leak either.
func (Secret) GoString() string { return redacted }

// Format prints "[redacted]" for every verb.
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalJSON encodes "[redacted]".
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// LogValue logs "[redacted]".
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// GoString prints the tenant id only, so %#v does not leak credentials.
func (t Tenant) GoString() string { return t.String() }
