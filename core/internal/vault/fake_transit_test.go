package vault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTransit is an httptest fake of Vault's transit engine HTTP API
// (https://developer.hashicorp.com/vault/api-docs/secret/transit), as much
// of it as Transit uses: read key, rotate, config, encrypt and decrypt.
// It follows the documented wire format: /v1/<mount>/... paths, the
// X-Vault-Token header, writes by POST or PUT, {"data":{...}} responses and
// {"errors":[...]} failures. Ciphertexts are "vault:v<N>:" followed by
// base64 of nonce ‖ AES-256-GCM ciphertext, with associated_data as the
// GCM additional data; derived keys derive a per-context key (by HMAC
// here, HKDF in Vault).
type fakeTransit struct {
	srv   *httptest.Server
	token string
	mount string

	mu       sync.Mutex
	keys     map[string]*fakeKey
	requests []fakeRequest
	// failStatus, when set, answers every request with that status.
	failStatus int
	// nullData, when set, answers reads with "data": null.
	nullData bool
}

type fakeKey struct {
	derived    bool
	versions   map[int][]byte
	created    map[int]int64
	latest     int
	minDecrypt int
}

// fakeRequest is one request as the fake saw it.
type fakeRequest struct {
	Method, Path, Token string
	Body                []byte
}

const fakeToken = "hvs.fake-root-token"

// newFakeTransit starts a fake with the transit engine at mount.
func newFakeTransit(tb testing.TB, mount string) *fakeTransit {
	tb.Helper()
	f := &fakeTransit{token: fakeToken, mount: mount, keys: map[string]*fakeKey{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	fakesMu.Lock()
	fakes[f.srv.URL] = f
	fakesMu.Unlock()
	tb.Cleanup(func() {
		f.srv.Close()
		fakesMu.Lock()
		delete(fakes, f.srv.URL)
		fakesMu.Unlock()
	})
	return f
}

// fakes maps each running fake's URL to it, for fakeFor.
var (
	fakesMu sync.Mutex
	fakes   = map[string]*fakeTransit{}
)

// createKey makes an aes256-gcm96 key with version 1.
func (f *fakeTransit) createKey(tb testing.TB, name string, derived bool) {
	tb.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	k := &fakeKey{derived: derived, versions: map[int][]byte{}, created: map[int]int64{}, minDecrypt: 1}
	k.rotate()
	f.keys[name] = k
}

func (k *fakeKey) rotate() {
	k.latest++
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	k.versions[k.latest] = key
	k.created[k.latest] = time.Now().Unix()
}

// key returns a copy of a key's state.
func (f *fakeTransit) key(name string) fakeKey {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.keys[name]
}

// seen returns the requests received so far.
func (f *fakeTransit) seen() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.requests...)
}

func (f *fakeTransit) setFail(status int) {
	f.mu.Lock()
	f.failStatus = status
	f.mu.Unlock()
}

func (f *fakeTransit) setNullData(on bool) {
	f.mu.Lock()
	f.nullData = on
	f.mu.Unlock()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func vaultErrors(w http.ResponseWriter, status int, msgs ...string) {
	if msgs == nil {
		msgs = []string{}
	}
	writeJSON(w, status, map[string]any{"errors": msgs})
}

// secret is Vault's response envelope.
func secret(data any) map[string]any {
	return map[string]any{
		"request_id": "6f1c2d1e-0000-4000-8000-000000000000", "lease_id": "",
		"renewable": false, "lease_duration": 0, "data": data,
		"wrap_info": nil, "warnings": nil, "auth": nil,
	}
}

func (f *fakeTransit) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, fakeRequest{Method: r.Method, Path: r.URL.Path, Token: r.Header.Get("X-Vault-Token"), Body: body})

	if f.failStatus != 0 {
		vaultErrors(w, f.failStatus, "local node not active but active cluster node not found")
		return
	}
	if r.Header.Get("X-Vault-Token") != f.token {
		vaultErrors(w, http.StatusForbidden, "permission denied")
		return
	}
	prefix := "/v1/" + f.mount + "/"
	rest, ok := strings.CutPrefix(r.URL.Path, prefix)
	if !ok {
		vaultErrors(w, http.StatusNotFound, fmt.Sprintf("no handler for route %q. route entry not found.", r.URL.Path))
		return
	}
	write := r.Method == http.MethodPost || r.Method == http.MethodPut
	var params map[string]any
	if write && len(body) > 0 {
		if err := json.Unmarshal(body, &params); err != nil {
			vaultErrors(w, http.StatusBadRequest, "failed to parse JSON input: "+err.Error())
			return
		}
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 2 && parts[0] == "keys" && r.Method == http.MethodGet:
		f.readKey(w, parts[1])
	case len(parts) == 3 && parts[0] == "keys" && parts[2] == "rotate" && write:
		k := f.keys[parts[1]]
		if k == nil {
			vaultErrors(w, http.StatusBadRequest, "key not found")
			return
		}
		k.rotate()
		f.readKey(w, parts[1]) // Vault 1.12+ answers with the key, as a read does
	case len(parts) == 3 && parts[0] == "keys" && parts[2] == "config" && write:
		f.config(w, parts[1], params)
	case len(parts) == 2 && parts[0] == "encrypt" && write:
		f.encrypt(w, parts[1], params)
	case len(parts) == 2 && parts[0] == "decrypt" && write:
		f.decrypt(w, parts[1], params)
	default:
		vaultErrors(w, http.StatusNotFound, "unsupported path")
	}
}

func (f *fakeTransit) readKey(w http.ResponseWriter, name string) {
	k := f.keys[name]
	if k == nil {
		vaultErrors(w, http.StatusNotFound)
		return
	}
	if f.nullData {
		writeJSON(w, http.StatusOK, secret(nil))
		return
	}
	keys := map[string]int64{}
	for v := k.minDecrypt; v <= k.latest; v++ {
		keys[strconv.Itoa(v)] = k.created[v]
	}
	writeJSON(w, http.StatusOK, secret(map[string]any{
		"type": "aes256-gcm96", "name": name, "derived": k.derived,
		"deletion_allowed": false, "exportable": false, "allow_plaintext_backup": false,
		"keys": keys, "latest_version": k.latest, "min_available_version": 0,
		"min_decryption_version": k.minDecrypt, "min_encryption_version": 0,
		"supports_encryption": true, "supports_decryption": true,
		"supports_derivation": true, "supports_signing": false, "imported": false,
	}))
}

func (f *fakeTransit) config(w http.ResponseWriter, name string, params map[string]any) {
	k := f.keys[name]
	if k == nil {
		vaultErrors(w, http.StatusBadRequest, "no such key")
		return
	}
	if raw, ok := params["min_decryption_version"]; ok {
		n, ok := raw.(float64)
		if !ok || n != float64(int(n)) {
			vaultErrors(w, http.StatusBadRequest, "min_decryption_version must be an integer")
			return
		}
		v := int(n)
		if v > k.latest {
			vaultErrors(w, http.StatusBadRequest, fmt.Sprintf("cannot set min decryption version of %d, latest key version is %d", v, k.latest))
			return
		}
		if v > 0 {
			k.minDecrypt = v
		}
	}
	w.WriteHeader(http.StatusNoContent) // older servers; newer ones return the key
}

// gcmFor returns the AEAD for a key version and the request's context.
func (k *fakeKey) gcmFor(version int, params map[string]any) (cipher.AEAD, string) {
	key := k.versions[version]
	if k.derived {
		ctxB64, _ := params["context"].(string)
		ctx, err := base64.StdEncoding.DecodeString(ctxB64)
		if ctxB64 == "" || err != nil {
			return nil, "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key"
		}
		m := hmac.New(sha256.New, key)
		m.Write(ctx)
		key = m.Sum(nil)
	}
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	return gcm, ""
}

func associatedData(params map[string]any) ([]byte, bool) {
	s, _ := params["associated_data"].(string)
	ad, err := base64.StdEncoding.DecodeString(s)
	return ad, err == nil
}

func (f *fakeTransit) encrypt(w http.ResponseWriter, name string, params map[string]any) {
	k := f.keys[name]
	if k == nil {
		vaultErrors(w, http.StatusBadRequest, "encryption key not found")
		return
	}
	ptB64, ok := params["plaintext"].(string)
	if !ok {
		vaultErrors(w, http.StatusBadRequest, "missing plaintext to encrypt")
		return
	}
	pt, err := base64.StdEncoding.DecodeString(ptB64)
	if err != nil {
		vaultErrors(w, http.StatusBadRequest, "failed to base64-decode plaintext")
		return
	}
	ad, ok := associatedData(params)
	if !ok {
		vaultErrors(w, http.StatusBadRequest, "failed to base64-decode associated_data")
		return
	}
	gcm, msg := k.gcmFor(k.latest, params)
	if gcm == nil {
		vaultErrors(w, http.StatusBadRequest, msg)
		return
	}
	nonce := make([]byte, gcm.NonceSize())
	_, _ = rand.Read(nonce)
	ct := gcm.Seal(nonce, nonce, pt, ad)
	writeJSON(w, http.StatusOK, secret(map[string]any{
		"ciphertext":  fmt.Sprintf("vault:v%d:%s", k.latest, base64.StdEncoding.EncodeToString(ct)),
		"key_version": k.latest,
	}))
}

func (f *fakeTransit) decrypt(w http.ResponseWriter, name string, params map[string]any) {
	k := f.keys[name]
	if k == nil {
		vaultErrors(w, http.StatusBadRequest, "encryption key not found")
		return
	}
	ctext, _ := params["ciphertext"].(string)
	rest, ok := strings.CutPrefix(ctext, "vault:v")
	if !ok {
		vaultErrors(w, http.StatusBadRequest, "invalid ciphertext: no prefix")
		return
	}
	vs, b64, ok := strings.Cut(rest, ":")
	version, err := strconv.Atoi(vs)
	if !ok || err != nil {
		vaultErrors(w, http.StatusBadRequest, "invalid ciphertext: wrong number of fields")
		return
	}
	switch {
	case version < k.minDecrypt:
		vaultErrors(w, http.StatusBadRequest, "ciphertext or signature version is disallowed by policy (too old)")
		return
	case version > k.latest:
		vaultErrors(w, http.StatusBadRequest, "invalid ciphertext: version is too new")
		return
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		vaultErrors(w, http.StatusBadRequest, "invalid ciphertext: could not decode base64")
		return
	}
	ad, ok := associatedData(params)
	if !ok {
		vaultErrors(w, http.StatusBadRequest, "failed to base64-decode associated_data")
		return
	}
	gcm, msg := k.gcmFor(version, params)
	if gcm == nil {
		vaultErrors(w, http.StatusBadRequest, msg)
		return
	}
	if len(raw) < gcm.NonceSize() {
		vaultErrors(w, http.StatusBadRequest, "invalid ciphertext: too short")
		return
	}
	pt, err := gcm.Open(nil, raw[:gcm.NonceSize()], raw[gcm.NonceSize():], ad)
	if err != nil {
		vaultErrors(w, http.StatusBadRequest, "cipher: message authentication failed")
		return
	}
	writeJSON(w, http.StatusOK, secret(map[string]any{"plaintext": base64.StdEncoding.EncodeToString(pt)}))
}
