package vault

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// LocalID is the KeyID of values wrapped by a Local key holder.
const LocalID = "local"

const (
	kekSize = 32 // AES-256
	// maxKeyFile bounds the key file read: thousands of versions.
	maxKeyFile = 1 << 20
	// reloadEvery throttles the reload that Unwrap triggers for a version
	// newer than any it knows.
	reloadEvery = 5 * time.Second
)

var (
	// ErrKeyFile reports a key file that is not valid: not JSON of the
	// documented shape, a key that is not 32 bytes of base64, or a
	// current version without a key. Its messages never quote the file.
	ErrKeyFile = errors.New("vault: invalid key file")
	// ErrKeyFilePerm reports a key file that its group or others may
	// read, write or execute, or that is not a regular file.
	ErrKeyFilePerm = errors.New("vault: unsafe key file permissions")
	// ErrKey reports a key from the environment that is not 32 bytes of
	// standard base64. The message never quotes the value.
	ErrKey = errors.New("vault: key must be 32 bytes of standard base64")
)

// Local is a KeyHolder whose KEKs live in this process: from a key file
// (LoadLocal, NewKeyFile) or from one environment value (LocalFromEnv). It
// wraps each DEK with AES-256-GCM under the KEK, a random 96-bit nonce and
// the binding's associated data; a wrapped DEK is nonce ‖ ciphertext ‖ tag.
// It is safe for concurrent use.
//
// The key file is JSON, mode 0600 or stricter:
//
//	{"versions": {"1": "<base64 of 32 bytes>", "2": "..."}, "current": 2}
//
// Rotate and Retire rewrite it atomically (temporary file, fsync, rename,
// fsync of the directory). Only one process should rotate or retire at a
// time; others see the change on Reload, and Unwrap reloads by itself
// (at most every 5 s) when it meets a version newer than any it knows.
//
// AES-GCM with random nonces should see at most 2^32 encryptions per key;
// one Wrap per stored credential keeps a KEK far below that, and rotating
// every 90 days keeps it so.
type Local struct {
	path string // "" for a key from the environment

	mu         sync.RWMutex
	keys       map[int][]byte
	current    int
	lastReload time.Time
}

var _ KeyHolder = (*Local)(nil)

// LoadLocal reads the key file at path. It refuses a file that is not
// regular or whose mode lets group or others in (ErrKeyFilePerm), and a
// file that is not valid (ErrKeyFile). A missing file returns an error
// matching fs.ErrNotExist; NewKeyFile makes one.
func LoadLocal(path string) (*Local, error) {
	keys, current, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	return &Local{path: path, keys: keys, current: current, lastReload: time.Now()}, nil
}

// NewKeyFile creates a key file at path with mode 0600 and one fresh
// random key as version 1, and returns its holder. It fails, matching
// fs.ErrExist, if path already exists: it never replaces keys.
func NewKeyFile(path string) (*Local, error) {
	key := make([]byte, kekSize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("vault: random key: %w", err)
	}
	keys := map[int][]byte{1: key}
	data := encodeKeyFile(keys, 1)
	defer clear(data)

	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("vault: create key file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("vault: write key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("vault: sync key file: %w", err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("vault: close key file: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	return &Local{path: path, keys: keys, current: 1, lastReload: time.Now()}, nil
}

// LocalFromEnv returns a holder for a single KEK given as standard base64
// of 32 bytes, typically read from an environment variable. Its only
// version is 1 and it cannot rotate; move to a key file for that (copy the
// key in as version 1, so existing values still open).
//
// Unset the variable (os.Unsetenv) once it is read: plugins inherit the
// environment, and a KEK must not reach them.
func LocalFromEnv(value string) (*Local, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(value))
	if err != nil || len(key) != kekSize {
		clear(key)
		return nil, ErrKey
	}
	return &Local{keys: map[int][]byte{1: key}, current: 1}, nil
}

// ID returns LocalID.
func (l *Local) ID() string { return LocalID }

// Current returns the version Wrap uses.
func (l *Local) Current(context.Context) (int, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.current, nil
}

// Versions returns the versions held, oldest first.
func (l *Local) Versions(context.Context) ([]int, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return slices.Sorted(maps.Keys(l.keys)), nil
}

// Wrap encrypts dek under the current KEK with aad.
func (l *Local) Wrap(_ context.Context, dek, aad []byte) (int, []byte, error) {
	l.mu.RLock()
	version := l.current
	l.mu.RUnlock()
	gcm, ok := l.aead(version)
	if !ok {
		return 0, nil, ErrVersionUnavailable // only if the current key vanished
	}
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return 0, nil, fmt.Errorf("vault: random nonce: %w", err)
	}
	out := make([]byte, nonceSize, nonceSize+len(dek)+tagSize)
	copy(out, nonce)
	return version, gcm.Seal(out, nonce, dek, aad), nil
}

// Unwrap decrypts a DEK wrapped by Wrap. An unknown or retired version
// returns ErrVersionUnavailable, a wrapped DEK that does not authenticate
// ErrDecrypt.
func (l *Local) Unwrap(_ context.Context, version int, wrapped, aad []byte) ([]byte, error) {
	if len(wrapped) < nonceSize+tagSize {
		return nil, ErrDecrypt
	}
	gcm, ok := l.aead(version)
	if !ok && l.mayReload(version) {
		// Another process may have rotated the key file.
		if err := l.Reload(); err != nil {
			return nil, err
		}
		gcm, ok = l.aead(version)
	}
	if !ok {
		return nil, ErrVersionUnavailable
	}
	dek, err := gcm.Open(nil, wrapped[:nonceSize], wrapped[nonceSize:], aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return dek, nil
}

// aead returns AES-256-GCM under the KEK of version, if held.
func (l *Local) aead(version int) (cipher.AEAD, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	key, ok := l.keys[version]
	if !ok {
		return nil, false
	}
	gcm, err := newGCM(key)
	return gcm, err == nil
}

// mayReload reports whether an unknown version is newer than any held and
// the file was not read within reloadEvery.
func (l *Local) mayReload(version int) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.path != "" && version > l.current && time.Since(l.lastReload) >= reloadEvery
}

// Rotate adds a fresh random key as the next version, makes it current and
// rewrites the key file. A key from the environment returns
// ErrCannotRotate.
func (l *Local) Rotate(context.Context) (int, error) {
	if l.path == "" {
		return 0, fmt.Errorf("%w: a key from the environment has one version; use a key file to rotate", ErrCannotRotate)
	}
	key := make([]byte, kekSize)
	if _, err := rand.Read(key); err != nil {
		return 0, fmt.Errorf("vault: random key: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	next := slices.Max(slices.Collect(maps.Keys(l.keys))) + 1
	keys := maps.Clone(l.keys)
	keys[next] = key
	if err := writeKeyFile(l.path, keys, next); err != nil {
		clear(key)
		return 0, err
	}
	l.keys, l.current = keys, next
	return next, nil
}

// Retire deletes the keys of version and every older version from the key
// file and from memory. Unlike Vault transit, this cannot be undone. It
// returns ErrRetireCurrent for the current version or a newer one.
func (l *Local) Retire(_ context.Context, version int) error {
	if version < 1 {
		return fmt.Errorf("vault: invalid key version %d", version)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if version >= l.current {
		return ErrRetireCurrent
	}
	keys := maps.Clone(l.keys)
	var gone [][]byte
	for v, k := range keys {
		if v <= version {
			gone = append(gone, k)
			delete(keys, v)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	if err := writeKeyFile(l.path, keys, l.current); err != nil {
		return err
	}
	l.keys = keys
	for _, k := range gone {
		clear(k)
	}
	return nil
}

// Reload re-reads the key file, with the same checks as LoadLocal; on
// error the keys held so far stay in use. It does nothing for a key from
// the environment. Call it when the file changes (on SIGHUP, say).
func (l *Local) Reload() error {
	if l.path == "" {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastReload = time.Now()
	keys, current, err := readKeyFile(l.path)
	if err != nil {
		return err
	}
	l.keys, l.current = keys, current
	return nil
}

// keyFile is the JSON shape of the key file. json decodes each []byte
// from standard base64.
type keyFile struct {
	Versions map[string][]byte `json:"versions"`
	Current  int               `json:"current"`
}

// readKeyFile opens path, checks the opened file's mode and parses it.
func readKeyFile(path string) (map[int][]byte, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("vault: open key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("vault: stat key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("%w: %s is not a regular file", ErrKeyFilePerm, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, 0, fmt.Errorf("%w: %s has mode %04o; want 0600 or stricter", ErrKeyFilePerm, path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	defer clear(data)
	if err != nil {
		return nil, 0, fmt.Errorf("vault: read key file: %w", err)
	}
	if len(data) > maxKeyFile {
		return nil, 0, fmt.Errorf("%w: larger than %d bytes", ErrKeyFile, maxKeyFile)
	}
	return parseKeyFile(data)
}

// parseKeyFile validates the JSON key file. Its errors name versions but
// never quote file content, which holds keys.
func parseKeyFile(data []byte) (map[int][]byte, int, error) {
	var kf keyFile
	if err := json.Unmarshal(data, &kf); err != nil {
		// json's messages can quote a character of the input.
		return nil, 0, fmt.Errorf("%w: not JSON of the form {\"versions\":{\"1\":\"<base64>\"},\"current\":1}", ErrKeyFile)
	}
	keys := make(map[int][]byte, len(kf.Versions))
	fail := func(format string, args ...any) (map[int][]byte, int, error) {
		for _, k := range kf.Versions {
			clear(k)
		}
		return nil, 0, fmt.Errorf("%w: "+format, append([]any{ErrKeyFile}, args...)...)
	}
	for name, key := range kf.Versions {
		v, err := strconv.Atoi(name)
		if err != nil || v < 1 || strconv.Itoa(v) != name {
			return fail("version %q is not a positive integer", name)
		}
		if len(key) != kekSize {
			return fail("key of version %d is not %d bytes", v, kekSize)
		}
		keys[v] = key
	}
	if _, ok := keys[kf.Current]; !ok {
		return fail("current version %d has no key", kf.Current)
	}
	return keys, kf.Current, nil
}

// encodeKeyFile renders the key file by hand, so the only copy of the
// encoded keys is the returned slice, which the caller zeroes.
func encodeKeyFile(keys map[int][]byte, current int) []byte {
	out := []byte("{\n  \"versions\": {")
	for i, v := range slices.Sorted(maps.Keys(keys)) {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, "\n    \""...)
		out = strconv.AppendInt(out, int64(v), 10)
		out = append(out, "\": \""...)
		out = base64.StdEncoding.AppendEncode(out, keys[v])
		out = append(out, '"')
	}
	out = append(out, "\n  },\n  \"current\": "...)
	out = strconv.AppendInt(out, int64(current), 10)
	return append(out, "\n}\n"...)
}

// writeKeyFile replaces path atomically: a 0600 temporary file in the same
// directory, fsync, rename, fsync of the directory.
func writeKeyFile(path string, keys map[int][]byte, current int) error {
	data := encodeKeyFile(keys, current)
	defer clear(data)
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("vault: write key file: %w", err)
	}
	name := tmp.Name()
	done := false
	defer func() {
		if !done {
			_ = tmp.Close()
			_ = os.Remove(name)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("vault: write key file: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("vault: write key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("vault: sync key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("vault: close key file: %w", err)
	}
	if err := os.Rename(name, path); err != nil {
		return fmt.Errorf("vault: replace key file: %w", err)
	}
	done = true
	return syncDir(dir)
}

// syncDir makes a rename or create in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("vault: sync key directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("vault: sync key directory: %w", err)
	}
	return nil
}
