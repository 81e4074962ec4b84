package tenant

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Short-lived tenant tokens let a backend that prefers not to hold the API
// key everywhere (a Supabase Edge Function, say) authenticate with a token
// it mints itself from a per-tenant signing secret:
//
//	pct.<base64url(payload)>.<base64url(HMAC-SHA256(secret, "pct." + base64url(payload)))>
//
// where payload is the JSON object {"kid","tid","iat","exp"}: the secret's
// key id, the tenant id, and the issue and expiry times in unix seconds.
// The algorithm is fixed (there is no "alg" to confuse) and a token lives at
// most MaxTokenTTL.
const (
	// TokenPrefix starts every token.
	TokenPrefix = "pct."
	// MaxTokenTTL is the longest exp-iat a token may have.
	MaxTokenTTL = 5 * time.Minute
	// TokenSkew is how far in the future iat may be (clock skew).
	TokenSkew = 30 * time.Second
	// TokenSecretPrefix starts every token signing secret.
	TokenSecretPrefix = "pcts_"
)

// ErrToken is returned (wrapped) for every refused token; the wrapped
// message says why without echoing the token.
var ErrToken = errors.New("tenant: invalid token")

// TokenClaims is a token's payload.
type TokenClaims struct {
	KeyID    string `json:"kid"`
	TenantID string `json:"tid"`
	IssuedAt int64  `json:"iat"`
	Expires  int64  `json:"exp"`
}

// GenerateTokenSecret returns a new token signing secret: TokenSecretPrefix
// and 32 random bytes, base64url.
func GenerateTokenSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("tenant: generate token secret: %w", err)
	}
	return TokenSecretPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// MintToken returns a token for c signed with secret. Backends usually mint
// their own (see the README); the gateway uses this in tests and the CLI.
func MintToken(secret string, c TokenClaims) (string, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	signed := TokenPrefix + base64.RawURLEncoding.EncodeToString(payload)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)), nil
}

// parseToken splits and decodes a token without verifying it.
func parseToken(tok string) (TokenClaims, string, []byte, error) {
	var c TokenClaims
	rest, ok := strings.CutPrefix(tok, TokenPrefix)
	if !ok {
		return c, "", nil, fmt.Errorf("%w: not a token", ErrToken)
	}
	payloadB64, sigB64, ok := strings.Cut(rest, ".")
	if !ok || len(payloadB64) > 1024 {
		return c, "", nil, fmt.Errorf("%w: malformed", ErrToken)
	}
	payload, err := base64.RawURLEncoding.DecodeString(payloadB64)
	if err != nil {
		return c, "", nil, fmt.Errorf("%w: malformed payload", ErrToken)
	}
	sig, err := base64.RawURLEncoding.DecodeString(sigB64)
	if err != nil || len(sig) != sha256.Size {
		return c, "", nil, fmt.Errorf("%w: malformed signature", ErrToken)
	}
	if err := json.Unmarshal(payload, &c); err != nil || c.KeyID == "" || c.TenantID == "" {
		return c, "", nil, fmt.Errorf("%w: malformed payload", ErrToken)
	}
	return c, TokenPrefix + payloadB64, sig, nil
}

// verifyToken checks tok against the tenant's token secrets (by key id) at
// now: signature, then times.
func verifyToken(tok string, secrets func(tenantID, kid string) (string, bool), now time.Time) (TokenClaims, error) {
	c, signed, sig, err := parseToken(tok)
	if err != nil {
		return c, err
	}
	secret, ok := secrets(c.TenantID, c.KeyID)
	if !ok {
		return c, fmt.Errorf("%w: unknown key id for that tenant", ErrToken)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(signed))
	if !hmac.Equal(mac.Sum(nil), sig) {
		return c, fmt.Errorf("%w: bad signature", ErrToken)
	}
	iat, exp := time.Unix(c.IssuedAt, 0), time.Unix(c.Expires, 0)
	switch {
	case iat.After(now.Add(TokenSkew)):
		return c, fmt.Errorf("%w: issued in the future", ErrToken)
	case !exp.After(now):
		return c, fmt.Errorf("%w: expired", ErrToken)
	case exp.Sub(iat) > MaxTokenTTL:
		return c, fmt.Errorf("%w: lifetime longer than %s", ErrToken, MaxTokenTTL)
	}
	return c, nil
}
