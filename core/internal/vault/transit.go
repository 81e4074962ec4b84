package vault

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/pipecore/pipecore/sdk/provider"
)

const (
	// DefaultTransitMount is where the transit engine is mounted when
	// TransitConfig.Mount is empty.
	DefaultTransitMount = "transit"
	// DefaultTransitTimeout bounds each transit request when
	// TransitConfig.Timeout is zero.
	DefaultTransitTimeout = 10 * time.Second

	// maxTransitResponse bounds a transit response body.
	maxTransitResponse = 1 << 20
)

var (
	// ErrTransitConfig reports a TransitConfig that is not valid, or a
	// transit key that does not match it.
	ErrTransitConfig = errors.New("vault: invalid transit config")
	// ErrTransitKeyNotFound reports a transit key that does not exist.
	ErrTransitKeyNotFound = errors.New("vault: transit key not found")
	// ErrTransitResponse reports a transit response that is not of the
	// documented shape.
	ErrTransitResponse = errors.New("vault: malformed transit response")
)

var (
	// transitKeyName is Vault's rule for a key name.
	transitKeyName = regexp.MustCompile(`^\w(?:[\w.-]*\w)?$`)
	// transitMount allows nested mounts ("team/transit") but no dot
	// segments.
	transitMount = regexp.MustCompile(`^[\w.-]+(?:/[\w.-]+)*$`)
	// transitCiphertext is "vault:v<version>:<base64>".
	transitCiphertext = regexp.MustCompile(`^vault:v([1-9][0-9]{0,9}):[A-Za-z0-9+/]+={0,2}$`)
)

// TransitConfig configures a Transit key holder. Its zero value is not
// valid: Key is required.
type TransitConfig struct {
	// Client, if set, is the Vault client to use, already authenticated;
	// Address, Token and Namespace are then ignored. Renewing its token is
	// the caller's job.
	Client *api.Client
	// Address of the Vault server. Empty means the Vault client's default:
	// VAULT_ADDR, else https://127.0.0.1:8200.
	Address string
	// Token to authenticate with. Empty means VAULT_TOKEN.
	Token provider.Secret
	// Namespace (Vault Enterprise). Empty means VAULT_NAMESPACE, else none.
	Namespace string
	// Mount is the transit engine's path. Empty means "transit".
	Mount string
	// Key is the transit key's name. Required. It should be of an AEAD
	// type (aes256-gcm96, the default, or chacha20-poly1305).
	Key string
	// Derived says the key was created with derived=true. Every request
	// then carries context = base64(SHA-256(associated data)), so each
	// binding gets its own derived key. Leave it false for a plain key.
	Derived bool
	// Timeout bounds each request. Zero means 10 s.
	Timeout time.Duration
}

func (c *TransitConfig) setDefaults() {
	c.Mount = strings.Trim(c.Mount, "/")
	if c.Mount == "" {
		c.Mount = DefaultTransitMount
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTransitTimeout
	}
}

// Validate reports a missing or malformed key name or mount, or a
// negative timeout. It expects defaults to be set.
func (c *TransitConfig) Validate() error {
	switch {
	case !transitKeyName.MatchString(c.Key):
		return fmt.Errorf("%w: key name %q", ErrTransitConfig, c.Key)
	case !transitMount.MatchString(c.Mount) || slices.Contains(strings.Split(c.Mount, "/"), ".."):
		return fmt.Errorf("%w: mount %q", ErrTransitConfig, c.Mount)
	case c.Timeout < 0:
		return fmt.Errorf("%w: negative timeout", ErrTransitConfig)
	}
	return nil
}

// Transit is a KeyHolder backed by HashiCorp Vault's transit engine: the
// KEK never leaves Vault, which encrypts and decrypts DEKs
// (transit/encrypt/<key>, transit/decrypt/<key>), rotates the key
// (transit/keys/<key>/rotate) and retires versions by raising
// min_decryption_version (transit/keys/<key>/config). A wrapped DEK is
// Vault's ciphertext string, "vault:v<N>:<base64>", whose N is the version.
//
// Every encrypt and decrypt sends the binding's associated data as
// associated_data (Vault 1.13 and later authenticate it with AEAD key
// types; older servers ignore it, and the value's own AES-GCM still binds
// it). With Derived, it also sends a context, as derived keys require.
//
// Transit holds no state of its own and is safe for concurrent use.
type Transit struct {
	c       *api.Client
	mount   string
	key     string
	derived bool
	timeout time.Duration
	id      string
}

var _ KeyHolder = (*Transit)(nil)

// NewTransit returns a Transit holder. It does not contact Vault; call
// Current to check the key at startup.
func NewTransit(cfg TransitConfig) (*Transit, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.Client
	if c == nil {
		conf := api.DefaultConfig()
		if conf.Error != nil {
			return nil, fmt.Errorf("vault: transit client config: %w", conf.Error)
		}
		if cfg.Address != "" {
			conf.Address = cfg.Address
		}
		var err error
		if c, err = api.NewClient(conf); err != nil {
			return nil, fmt.Errorf("vault: transit client: %w", err)
		}
		if !cfg.Token.IsZero() {
			c.SetToken(cfg.Token.Reveal())
		}
		if cfg.Namespace != "" {
			c.SetNamespace(cfg.Namespace)
		}
	}
	id := "transit:" + cfg.Key
	if cfg.Mount != DefaultTransitMount {
		id = "transit:" + cfg.Mount + "/" + cfg.Key
	}
	return &Transit{c: c, mount: cfg.Mount, key: cfg.Key, derived: cfg.Derived, timeout: cfg.Timeout, id: id}, nil
}

// ID returns "transit:<key>", or "transit:<mount>/<key>" for a mount other
// than "transit".
func (t *Transit) ID() string { return t.id }

// transitKey is the part of the read-key response Transit uses.
type transitKey struct {
	Type                 string                     `json:"type"`
	Derived              bool                       `json:"derived"`
	Keys                 map[string]json.RawMessage `json:"keys"`
	LatestVersion        int                        `json:"latest_version"`
	MinDecryptionVersion int                        `json:"min_decryption_version"`
	SupportsEncryption   bool                       `json:"supports_encryption"`
}

// readKey reads transit/keys/<key> and checks it against the config.
func (t *Transit) readKey(ctx context.Context) (transitKey, error) {
	var k transitKey
	if err := t.call(ctx, "read key", "keys/"+t.key, nil, &k); err != nil {
		return k, err
	}
	if k.LatestVersion == 0 { // servers before latest_version was reported
		for name := range k.Keys {
			if v, err := strconv.Atoi(name); err == nil && v > k.LatestVersion {
				k.LatestVersion = v
			}
		}
	}
	switch {
	case k.LatestVersion < 1:
		return k, fmt.Errorf("%w: key %q has no version", ErrTransitResponse, t.key)
	case !k.SupportsEncryption:
		return k, fmt.Errorf("%w: key %q of type %q cannot encrypt", ErrTransitConfig, t.key, k.Type)
	case k.Derived != t.derived:
		return k, fmt.Errorf("%w: key %q has derived=%t, config says %t", ErrTransitConfig, t.key, k.Derived, t.derived)
	}
	if k.MinDecryptionVersion < 1 {
		k.MinDecryptionVersion = 1
	}
	return k, nil
}

// Current returns the key's latest_version, which encrypt uses. It also
// checks that the key exists, can encrypt and matches Derived.
func (t *Transit) Current(ctx context.Context) (int, error) {
	k, err := t.readKey(ctx)
	if err != nil {
		return 0, err
	}
	return k.LatestVersion, nil
}

// Versions returns min_decryption_version through latest_version.
func (t *Transit) Versions(ctx context.Context) ([]int, error) {
	k, err := t.readKey(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]int, 0, k.LatestVersion-k.MinDecryptionVersion+1)
	for v := k.MinDecryptionVersion; v <= k.LatestVersion; v++ {
		out = append(out, v)
	}
	return out, nil
}

// Wrap encrypts dek with transit/encrypt/<key>.
func (t *Transit) Wrap(ctx context.Context, dek, aad []byte) (int, []byte, error) {
	body := t.body("plaintext", dek, true, aad)
	defer clear(body)
	var out struct {
		Ciphertext string `json:"ciphertext"`
	}
	if err := t.call(ctx, "encrypt", "encrypt/"+t.key, body, &out); err != nil {
		return 0, nil, err
	}
	version, ok := transitVersion([]byte(out.Ciphertext))
	if !ok {
		return 0, nil, fmt.Errorf("%w: encrypt returned no vault:v<N>: ciphertext", ErrTransitResponse)
	}
	return version, []byte(out.Ciphertext), nil
}

// Unwrap decrypts a wrapped DEK with transit/decrypt/<key>. A ciphertext
// whose vault:v<N>: prefix is not version, or that Vault refuses as a bad
// request (tampered, wrong associated data, version below
// min_decryption_version), returns ErrDecrypt.
func (t *Transit) Unwrap(ctx context.Context, version int, wrapped, aad []byte) ([]byte, error) {
	if v, ok := transitVersion(wrapped); !ok || v != version {
		return nil, ErrDecrypt
	}
	// wrapped matched transitCiphertext, so it needs no JSON escaping.
	body := t.body("ciphertext", wrapped, false, aad)
	var out struct {
		Plaintext []byte `json:"plaintext"` // json decodes base64
	}
	err := t.call(ctx, "decrypt", "decrypt/"+t.key, body, &out)
	clear(body)
	if re := (*api.ResponseError)(nil); errors.As(err, &re) && re.StatusCode == http.StatusBadRequest {
		return nil, ErrDecrypt
	}
	if err != nil {
		return nil, err
	}
	return out.Plaintext, nil
}

// Rotate calls transit/keys/<key>/rotate and returns the new
// latest_version.
func (t *Transit) Rotate(ctx context.Context) (int, error) {
	if err := t.call(ctx, "rotate", "keys/"+t.key+"/rotate", []byte("{}"), nil); err != nil {
		return 0, err
	}
	return t.Current(ctx)
}

// Retire sets the key's min_decryption_version to version+1. Vault
// archives the older versions; an operator can lower the minimum again.
func (t *Transit) Retire(ctx context.Context, version int) error {
	if version < 1 {
		return fmt.Errorf("vault: invalid key version %d", version)
	}
	k, err := t.readKey(ctx)
	if err != nil {
		return err
	}
	if version >= k.LatestVersion {
		return ErrRetireCurrent
	}
	if version < k.MinDecryptionVersion {
		return nil
	}
	body := []byte(`{"min_decryption_version":` + strconv.Itoa(version+1) + `}`)
	return t.call(ctx, "config key", "keys/"+t.key+"/config", body, nil)
}

// body builds an encrypt or decrypt request by hand, so the base64 of the
// DEK exists only in the returned slice, which the caller zeroes. value is
// base64-encoded if b64, else copied as is (it must need no JSON escaping).
func (t *Transit) body(field string, value []byte, b64 bool, aad []byte) []byte {
	enc := base64.StdEncoding
	out := make([]byte, 0, 96+enc.EncodedLen(len(value))+enc.EncodedLen(len(aad)))
	out = append(out, `{"`...)
	out = append(out, field...)
	out = append(out, `":"`...)
	if b64 {
		out = enc.AppendEncode(out, value)
	} else {
		out = append(out, value...)
	}
	out = append(out, `","associated_data":"`...)
	out = enc.AppendEncode(out, aad)
	if t.derived {
		sum := sha256.Sum256(aad)
		out = append(out, `","context":"`...)
		out = enc.AppendEncode(out, sum[:])
	}
	return append(out, `"}`...)
}

// call sends one request to <mount>/<path>: a GET when body is nil, else a
// write with body. It decodes the response's "data" into out, if out is
// not nil. Its errors wrap Vault's (*api.ResponseError) and never include
// the body.
func (t *Transit) call(ctx context.Context, op, path string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	full := t.mount + "/" + path
	var (
		resp *api.Response
		err  error
	)
	if body == nil {
		resp, err = t.c.Logical().ReadRawWithContext(ctx, full)
	} else {
		resp, err = t.c.Logical().WriteRawWithContext(ctx, full, body)
	}
	if resp != nil && resp.Body != nil {
		defer resp.Body.Close()
	}
	if re := (*api.ResponseError)(nil); errors.As(err, &re) && re.StatusCode == http.StatusNotFound && op == "read key" {
		return fmt.Errorf("%w: %q at mount %q", ErrTransitKeyNotFound, t.key, t.mount)
	}
	if err != nil {
		return fmt.Errorf("vault: transit %s: %w", op, err)
	}
	if out == nil {
		return nil
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxTransitResponse))
	defer clear(raw)
	if err != nil {
		return fmt.Errorf("vault: transit %s: read response: %w", op, err)
	}
	var env struct {
		Data json.RawMessage `json:"data"` // a copy: zeroed too
	}
	defer func() { clear(env.Data) }()
	if err := json.Unmarshal(raw, &env); err != nil || len(env.Data) == 0 || bytes.Equal(env.Data, []byte("null")) {
		return fmt.Errorf("%w: %s: no data", ErrTransitResponse, op)
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return fmt.Errorf("%w: %s: unexpected data", ErrTransitResponse, op)
	}
	return nil
}

// transitVersion parses the version of a "vault:v<N>:<base64>" ciphertext.
func transitVersion(ciphertext []byte) (int, bool) {
	m := transitCiphertext.FindSubmatch(ciphertext)
	if m == nil {
		return 0, false
	}
	v, err := strconv.Atoi(string(m[1]))
	if err != nil {
		return 0, false
	}
	return v, true
}
