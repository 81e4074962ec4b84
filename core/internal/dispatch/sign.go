// Package dispatch delivers normalized events to tenant backends as
// Standard Webhooks: it signs each attempt (Sign), makes one HTTP attempt
// and classifies its outcome (Sender), and says when the next attempt is
// due (Schedule). The dispatcher loop that reads the outbox, records
// attempts and dead-letters exhausted messages builds on these pieces.
//
// Delivery is at least once: a Message keeps its webhook-id on every
// attempt and replay, so tenants deduplicate on it. Each attempt carries its
// own webhook-timestamp and signature.
package dispatch

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every endpoint signing secret.
const SecretPrefix = "whsec_"

// secretBytes is the number of random bytes in a generated secret (the
// Standard Webhooks spec asks for 24 to 64).
const secretBytes = 32

var (
	// ErrNoSecret reports a Sign call without any secret.
	ErrNoSecret = errors.New("dispatch: no signing secret")
	// ErrInvalidSecret reports a secret that is not "whsec_" followed by
	// standard, padded base64 of at least one byte. Its text never holds
	// the secret.
	ErrInvalidSecret = errors.New("dispatch: invalid signing secret")
	// ErrInvalidID reports a webhook id that is empty, contains '.', or
	// contains a byte outside printable ASCII.
	ErrInvalidID = errors.New("dispatch: invalid webhook id")
)

// GenerateSecret returns a new endpoint signing secret: "whsec_" followed by
// the standard base64 encoding of 32 bytes from crypto/rand.
func GenerateSecret() (string, error) {
	var key [secretBytes]byte
	if _, err := rand.Read(key[:]); err != nil {
		return "", fmt.Errorf("dispatch: generate secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key[:]), nil
}

// Sign returns the webhook-signature header value for one attempt: one
// "v1,<base64 HMAC-SHA256>" per secret, in the order given and separated by
// single spaces (two during a secret rotation, so the tenant may verify with
// either). Each MAC covers id + "." + ts.Unix() + "." + body, body being the
// exact bytes sent.
//
// A secret is "whsec_" followed by standard, padded base64 (the form every
// Standard Webhooks library decodes); the prefix may be left out, as those
// libraries allow. Sign fails with ErrNoSecret when secrets is empty, with
// ErrInvalidSecret for an empty or undecodable secret, and with ErrInvalidID
// for an id that is empty, contains '.' or contains a byte outside printable
// ASCII (the id goes in a header and in the signed content). Errors never
// hold a secret. Sign is safe for concurrent use.
func Sign(secrets []string, id string, ts time.Time, body []byte) (string, error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	if len(secrets) == 0 {
		return "", ErrNoSecret
	}
	// The signed prefix "id.ts." is built once for every secret.
	prefix := make([]byte, 0, len(id)+22)
	prefix = append(prefix, id...)
	prefix = append(prefix, '.')
	prefix = strconv.AppendInt(prefix, ts.Unix(), 10)
	prefix = append(prefix, '.')

	out := make([]byte, 0, len(secrets)*(len("v1,")+base64.StdEncoding.EncodedLen(sha256.Size)+1))
	for i, secret := range secrets {
		key, err := decodeSecret(secret)
		if err != nil {
			return "", fmt.Errorf("%w: secret %d %s", ErrInvalidSecret, i+1, err)
		}
		mac := hmac.New(sha256.New, key)
		mac.Write(prefix)
		mac.Write(body)
		if i > 0 {
			out = append(out, ' ')
		}
		out = append(out, "v1,"...)
		out = base64.StdEncoding.AppendEncode(out, mac.Sum(nil))
	}
	return string(out), nil
}

// checkID accepts an id usable as both a header value and the first field
// of the signed content.
func checkID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty", ErrInvalidID)
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c == '.':
			return fmt.Errorf("%w: contains '.'", ErrInvalidID)
		case c < 0x21 || c > 0x7e:
			return fmt.Errorf("%w: byte %d is not printable ascii", ErrInvalidID, i)
		}
	}
	return nil
}

// decodeSecret returns the key bytes of secret. Its errors describe the
// problem without quoting the secret.
func decodeSecret(secret string) ([]byte, error) {
	enc := strings.TrimPrefix(secret, SecretPrefix)
	if enc == "" {
		return nil, errors.New("is empty")
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, errors.New("is not base64")
	}
	if len(key) == 0 {
		return nil, errors.New("is empty")
	}
	return key, nil
}
