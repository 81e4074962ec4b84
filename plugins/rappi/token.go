package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/pipecore/pipecore/plugins/rappi/internal/wire"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/provider/httpapi"
)

const (
	// maxTokens bounds the token cache; past it, expired entries and then
	// arbitrary ones are dropped (a dropped token is simply minted again).
	maxTokens = 10_000
	// refreshMargin is how long before its expiry a token is replaced,
	// capped at a fifth of its lifetime for short-lived tokens.
	refreshMargin = 5 * time.Minute
)

// tokenCache holds Rappi access tokens per tenant, host and credentials,
// so that one token serves every call until shortly before it expires.
// Minting is single-flight per key, and a caller waiting for another's
// mint still honours its own context. Safe for concurrent use.
type tokenCache struct {
	max int
	now func() time.Time

	mu      sync.Mutex
	entries map[string]*tokenEntry
}

type tokenEntry struct {
	sem chan struct{} // holds one value while a token is being minted
	// Guarded by tokenCache.mu.
	tok       provider.Secret
	refreshAt time.Time
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, now: time.Now, entries: make(map[string]*tokenEntry)}
}

// get returns the cached token for key, or mints one with mint (which
// returns the token and its lifetime) when there is none or it is due for
// refresh. A failed mint is not cached.
func (tc *tokenCache) get(ctx context.Context, key string, mint func(context.Context) (provider.Secret, time.Duration, error)) (provider.Secret, error) {
	e := tc.entry(key)
	if tok, ok := tc.fresh(e); ok {
		return tok, nil
	}
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return provider.Secret{}, provider.Retryable(fmt.Errorf("rappi: waiting for an access token: %w", ctx.Err()))
	}
	defer func() { <-e.sem }()
	if tok, ok := tc.fresh(e); ok { // minted while we waited
		return tok, nil
	}
	tok, life, err := mint(ctx)
	if err != nil {
		return provider.Secret{}, err
	}
	margin := min(refreshMargin, life/5)
	tc.mu.Lock()
	e.tok, e.refreshAt = tok, tc.now().Add(life-margin)
	tc.mu.Unlock()
	return tok, nil
}

// drop forgets key's token if it is still tok, so the next get mints a
// new one.
func (tc *tokenCache) drop(key string, tok provider.Secret) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if e, ok := tc.entries[key]; ok && e.tok.Reveal() == tok.Reveal() {
		e.tok, e.refreshAt = provider.Secret{}, time.Time{}
	}
}

func (tc *tokenCache) entry(key string) *tokenEntry {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if e, ok := tc.entries[key]; ok {
		return e
	}
	if len(tc.entries) >= tc.max {
		now := tc.now()
		for k, e := range tc.entries {
			if e.tok.IsZero() || !now.Before(e.refreshAt) {
				delete(tc.entries, k)
			}
		}
		for k := range tc.entries {
			if len(tc.entries) < tc.max {
				break
			}
			delete(tc.entries, k)
		}
	}
	e := &tokenEntry{sem: make(chan struct{}, 1)}
	tc.entries[key] = e
	return e
}

func (tc *tokenCache) fresh(e *tokenEntry) (provider.Secret, bool) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if e.tok.IsZero() || !tc.now().Before(e.refreshAt) {
		return provider.Secret{}, false
	}
	return e.tok, true
}

// cacheKey identifies the client's token: tenant, host and a digest of
// the credentials, so a tenant whose credentials change, or a second
// tenant with the same client_id but another secret, never reuses a token
// minted for other credentials. The digest stays in memory only.
func (c *client) cacheKey() string {
	h := sha256.New()
	h.Write([]byte(c.id.Reveal()))
	h.Write([]byte{0})
	h.Write([]byte(c.secret.Reveal()))
	return c.tenantID + "\x00" + c.base + "\x00" + hex.EncodeToString(h.Sum(nil))
}

// token returns an access token for the client's credentials, minting
// one at wire.TokenPath when the cache has none.
func (c *client) token(ctx context.Context) (provider.Secret, error) {
	return c.tokens.get(ctx, c.cacheKey(), c.mint)
}

// mint logs in at wire.TokenPath. Rejected credentials are
// KindUnauthorized; the answer's expires_in (seconds) sets the lifetime,
// wire.TokenLifetime when absent.
func (c *client) mint(ctx context.Context) (provider.Secret, time.Duration, error) {
	const op = "token login"
	var tr wire.TokenResponse
	resp, err := api.Do(ctx, httpapi.Request{
		Op: op, Method: http.MethodPost, URL: c.base + wire.TokenPath,
		JSON:     wire.TokenRequest{ClientID: c.id.Reveal(), ClientSecret: c.secret.Reveal()},
		Secrets:  []string{c.id.Reveal(), c.secret.Reveal()},
		LogAttrs: c.logAttrs(),
	}, &tr, func(resp *httpapi.Response) error {
		err := refuse(resp)
		if provider.KindOf(err) == provider.KindUnauthorized {
			err = provider.Unauthorized(fmt.Errorf("rappi: %s: client credentials rejected (HTTP %d)", op, resp.Status))
		}
		return err
	})
	if err != nil {
		return provider.Secret{}, 0, err
	}
	if tr.AccessToken == "" {
		return provider.Secret{}, 0, c.fail(ctx, op, resp.Status, provider.Retryable(fmt.Errorf("rappi: %s: malformed response: no access_token", op)))
	}
	life := wire.TokenLifetime
	if tr.ExpiresIn > 0 {
		life = time.Duration(tr.ExpiresIn) * time.Second
	}
	return provider.NewSecret(tr.AccessToken), life, nil
}
