// Package vault encrypts tenant provider credentials at rest with envelope
// encryption.
//
// Each credential value, identified by a Binding (tenant, provider, field),
// is encrypted with its own random 256-bit data key (DEK) under AES-256-GCM
// with a random 96-bit nonce. The DEK is then wrapped by a versioned master
// key (KEK) held by a KeyHolder: Local keeps the KEKs in a 0600 key file,
// Transit asks HashiCorp Vault's transit engine. The stored form, Sealed,
// records the holder's id and the KEK version that wrapped its DEK, so keys
// can rotate online: old versions keep unwrapping, Rewrap moves a value to
// the current version without touching its ciphertext, and once no stored
// value uses an old version, Retire removes it.
//
// The associated data of both the value and the wrapped DEK is
// "pipecore/v1" followed by tenant, provider and field, each length-prefixed,
// so a Sealed copied to another tenant, provider or field does not decrypt.
//
// No error from this package contains a plaintext, a DEK or a KEK. Decrypt
// failures are all the single ErrDecrypt, which does not say why.
package vault

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"
)

const (
	// aadContext starts the associated data of every value; a later
	// format would change it.
	aadContext = "pipecore/v1"

	dekSize   = 32 // AES-256
	nonceSize = 12 // GCM standard nonce
	tagSize   = 16 // GCM tag

	// MaxPlaintext is the largest credential value Seal accepts: 1 MiB.
	MaxPlaintext = 1 << 20
	// MaxBindingPart is the longest tenant, provider or field name, in bytes.
	MaxBindingPart = 1024
	// MinFingerprintKey is the shortest fingerprint key New accepts.
	MinFingerprintKey = 32

	// maxWrapped bounds a stored wrapped DEK; real ones are under 100 bytes.
	maxWrapped = 4096
)

var (
	// ErrDecrypt reports a value that does not decrypt: it was moved to
	// another binding, tampered with, or its key version is gone. It never
	// says which.
	ErrDecrypt = errors.New("vault: cannot decrypt")
	// ErrVersionUnavailable reports a key version the holder does not have
	// (retired, or never made). It matches ErrDecrypt with errors.Is.
	ErrVersionUnavailable = fmt.Errorf("%w: key version not available", ErrDecrypt)
	// ErrBinding reports an empty or over-long tenant, provider or field.
	ErrBinding = errors.New("vault: invalid binding")
	// ErrTooLarge reports a value longer than MaxPlaintext.
	ErrTooLarge = errors.New("vault: value too large")
	// ErrWrongHolder reports a Sealed wrapped by another key holder than
	// the Vault's (its KeyID differs).
	ErrWrongHolder = errors.New("vault: sealed by another key holder")
	// ErrFingerprintKey reports a fingerprint key shorter than
	// MinFingerprintKey.
	ErrFingerprintKey = errors.New("vault: fingerprint key too short")
	// ErrRetireCurrent reports an attempt to retire the current key
	// version (or a newer one).
	ErrRetireCurrent = errors.New("vault: cannot retire the current key version")
	// ErrVersionInUse reports a retirement refused because a stored value
	// still uses the version or an older one.
	ErrVersionInUse = errors.New("vault: key version still in use")
	// ErrCannotRotate reports a key holder that cannot add versions.
	ErrCannotRotate = errors.New("vault: key cannot rotate")
)

// Sealed is one stored credential. It holds no plaintext and is safe to
// persist as JSON. Only the ciphertext and the wrapped DEK are
// authenticated; KeyID and KeyVersion only select the key, so changing them
// makes Open fail.
type Sealed struct {
	KeyID      string `json:"key_id"`      // the KeyHolder's ID, e.g. "local" or "transit:pipecore"
	KeyVersion int    `json:"key_version"` // the KEK version that wrapped WrappedDEK
	WrappedDEK []byte `json:"wrapped_dek"`
	Nonce      []byte `json:"nonce"`
	Ciphertext []byte `json:"ciphertext"` // AES-256-GCM ciphertext and tag of the value
	// Fingerprint is the first 8 bytes of HMAC-SHA256(fingerprint key,
	// plaintext) in hex. It shows which value is set without revealing it;
	// it is keyed, so it cannot be brute-forced offline without the key.
	Fingerprint string    `json:"fingerprint"`
	SetAt       time.Time `json:"set_at"` // when Seal made it; Rewrap keeps it
}

// Binding names the owner of one credential value. All three parts are
// required; they are bound into the associated data.
type Binding struct{ Tenant, Provider, Field string }

func (b Binding) validate() error {
	for _, p := range [...]string{b.Tenant, b.Provider, b.Field} {
		if p == "" || len(p) > MaxBindingPart {
			return ErrBinding
		}
	}
	return nil
}

// aad is the associated data: aadContext, tenant, provider and field, each
// preceded by its length as a big-endian uint32, so no two bindings share
// an encoding.
func (b Binding) aad() []byte {
	parts := [...]string{aadContext, b.Tenant, b.Provider, b.Field}
	n := 0
	for _, p := range parts {
		n += 4 + len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = binary.BigEndian.AppendUint32(out, uint32(len(p)))
		out = append(out, p...)
	}
	return out
}

// KeyHolder wraps and unwraps DEKs under a versioned KEK. Implementations
// are safe for concurrent use and never put a DEK or a KEK in an error.
type KeyHolder interface {
	// ID names the holder and its key; it is stored in every Sealed.
	ID() string
	// Current returns the version Wrap uses now.
	Current(ctx context.Context) (version int, err error)
	// Wrap encrypts dek with the current version, authenticating aad. It
	// does not keep dek.
	Wrap(ctx context.Context, dek, aad []byte) (version int, wrapped []byte, err error)
	// Unwrap decrypts a wrapped DEK. The caller owns (and zeroes) the
	// result. An error matching ErrDecrypt means wrapped does not
	// authenticate under version and aad, or version is not available;
	// any other error means the holder could not be asked.
	Unwrap(ctx context.Context, version int, wrapped, aad []byte) ([]byte, error)
	// Rotate adds a version and makes it current; old versions still
	// unwrap. A holder that cannot rotate returns ErrCannotRotate.
	Rotate(ctx context.Context) (newVersion int, err error)
	// Versions lists the versions that still unwrap, oldest first.
	Versions(ctx context.Context) ([]int, error)
	// Retire makes version and every older version stop unwrapping (Vault
	// transit's min_decryption_version). It returns ErrRetireCurrent for
	// the current version or a newer one, and nil for a version already
	// retired.
	Retire(ctx context.Context, version int) error
}

// Vault seals and opens credential values. It is safe for concurrent use.
type Vault struct {
	h     KeyHolder
	fpKey []byte
}

// New returns a Vault over h. fingerprintKey keys Fingerprint; it must be
// at least MinFingerprintKey bytes and stay the same across KEK rotations
// (fingerprints change with it). New copies it.
func New(h KeyHolder, fingerprintKey []byte) (*Vault, error) {
	if h == nil {
		return nil, errors.New("vault: nil key holder")
	}
	if len(fingerprintKey) < MinFingerprintKey {
		return nil, ErrFingerprintKey
	}
	return &Vault{h: h, fpKey: append([]byte(nil), fingerprintKey...)}, nil
}

// Holder returns the key holder, for rotation and listing versions.
func (v *Vault) Holder() KeyHolder { return v.h }

// Fingerprint returns the first 8 bytes of HMAC-SHA256(fingerprint key,
// plaintext) in lowercase hex: the same value always has the same
// fingerprint, under any binding.
func (v *Vault) Fingerprint(plaintext string) string {
	m := hmac.New(sha256.New, v.fpKey)
	_, _ = io.WriteString(m, plaintext)
	var sum [sha256.Size]byte
	return hex.EncodeToString(m.Sum(sum[:0])[:8])
}

// Seal encrypts plaintext for b under a fresh DEK and wraps the DEK with
// the holder's current version. The DEK and the byte copy of plaintext are
// zeroed before Seal returns; the plaintext string itself cannot be.
func (v *Vault) Seal(ctx context.Context, b Binding, plaintext string) (Sealed, error) {
	if err := b.validate(); err != nil {
		return Sealed{}, err
	}
	if len(plaintext) > MaxPlaintext {
		return Sealed{}, ErrTooLarge
	}
	aad := b.aad()

	dek := make([]byte, dekSize)
	defer clear(dek)
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(dek); err != nil {
		return Sealed{}, fmt.Errorf("vault: random dek: %w", err)
	}
	if _, err := rand.Read(nonce); err != nil {
		return Sealed{}, fmt.Errorf("vault: random nonce: %w", err)
	}
	gcm, err := newGCM(dek)
	if err != nil {
		return Sealed{}, err
	}
	pt := []byte(plaintext)
	ct := gcm.Seal(nil, nonce, pt, aad)
	clear(pt)

	version, wrapped, err := v.h.Wrap(ctx, dek, aad)
	if err != nil {
		return Sealed{}, fmt.Errorf("vault: wrap dek: %w", err)
	}
	return Sealed{
		KeyID:       v.h.ID(),
		KeyVersion:  version,
		WrappedDEK:  wrapped,
		Nonce:       nonce,
		Ciphertext:  ct,
		Fingerprint: v.Fingerprint(plaintext),
		SetAt:       time.Now().UTC(),
	}, nil
}

// Open decrypts s for b. A Sealed made for another binding, or altered in
// any way, returns ErrDecrypt (or ErrVersionUnavailable, which matches it);
// a holder that cannot be reached returns another error. The DEK and the
// decrypted bytes are zeroed; the returned string cannot be.
func (v *Vault) Open(ctx context.Context, b Binding, s Sealed) (string, error) {
	dek, pt, err := v.open(ctx, b, s)
	if err != nil {
		return "", err
	}
	clear(dek)
	out := string(pt)
	clear(pt)
	return out, nil
}

// open checks s against b and returns its DEK and plaintext bytes; the
// caller zeroes both.
func (v *Vault) open(ctx context.Context, b Binding, s Sealed) (dek, pt []byte, err error) {
	if err := b.validate(); err != nil {
		return nil, nil, err
	}
	if s.KeyID != v.h.ID() {
		return nil, nil, ErrWrongHolder
	}
	if len(s.Nonce) != nonceSize || len(s.Ciphertext) < tagSize ||
		len(s.WrappedDEK) == 0 || len(s.WrappedDEK) > maxWrapped {
		return nil, nil, ErrDecrypt
	}
	aad := b.aad()
	dek, err = v.unwrap(ctx, s, aad)
	if err != nil {
		return nil, nil, err
	}
	gcm, err := newGCM(dek)
	if err != nil {
		clear(dek)
		return nil, nil, err
	}
	pt, err = gcm.Open(nil, s.Nonce, s.Ciphertext, aad)
	if err != nil {
		clear(dek)
		return nil, nil, ErrDecrypt
	}
	return dek, pt, nil
}

// unwrap asks the holder for the DEK of s and checks its size.
func (v *Vault) unwrap(ctx context.Context, s Sealed, aad []byte) ([]byte, error) {
	dek, err := v.h.Unwrap(ctx, s.KeyVersion, s.WrappedDEK, aad)
	switch {
	case errors.Is(err, ErrVersionUnavailable):
		return nil, ErrVersionUnavailable
	case errors.Is(err, ErrDecrypt):
		return nil, ErrDecrypt
	case err != nil:
		return nil, fmt.Errorf("vault: unwrap dek: %w", err)
	case len(dek) != dekSize:
		clear(dek)
		return nil, ErrDecrypt
	}
	return dek, nil
}

// Rewrap re-wraps the DEK of s under the holder's current version when s
// uses an older one, and reports whether it did. Nonce, Ciphertext,
// Fingerprint and SetAt are unchanged; on error s is returned as it was.
// Rewrap first checks that s opens for b, so it never carries a broken
// value forward; it fails as Open does.
func (v *Vault) Rewrap(ctx context.Context, b Binding, s Sealed) (Sealed, bool, error) {
	cur, err := v.h.Current(ctx)
	if err != nil {
		return s, false, fmt.Errorf("vault: current key version: %w", err)
	}
	if s.KeyID == v.h.ID() && s.KeyVersion >= cur {
		return s, false, nil
	}
	dek, pt, err := v.open(ctx, b, s)
	if err != nil {
		return s, false, err
	}
	clear(pt)
	defer clear(dek)
	version, wrapped, err := v.h.Wrap(ctx, dek, b.aad())
	if err != nil {
		return s, false, fmt.Errorf("vault: wrap dek: %w", err)
	}
	out := s
	out.KeyVersion = version
	out.WrappedDEK = wrapped
	return out, true, nil
}

// InUse reports whether any of sealed was wrapped by this Vault's holder
// with version or an older version, that is, whether retiring version
// would make one of them unreadable.
func (v *Vault) InUse(sealed []Sealed, version int) bool {
	id := v.h.ID()
	for _, s := range sealed {
		if s.KeyID == id && s.KeyVersion <= version {
			return true
		}
	}
	return false
}

// Retire retires version (and every older one) in the holder, after
// checking that none of stored, which should be every value the caller
// keeps, still uses it: it returns ErrVersionInUse if one does. Run
// Rewrap over stored first.
func (v *Vault) Retire(ctx context.Context, version int, stored []Sealed) error {
	if v.InUse(stored, version) {
		return ErrVersionInUse
	}
	if err := v.h.Retire(ctx, version); err != nil {
		if errors.Is(err, ErrRetireCurrent) {
			return ErrRetireCurrent
		}
		return fmt.Errorf("vault: retire key version: %w", err)
	}
	return nil
}

// newGCM returns AES-256-GCM with key. Its errors cannot carry key bytes.
func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, errors.New("vault: bad key size")
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, errors.New("vault: cannot make gcm")
	}
	return gcm, nil
}
