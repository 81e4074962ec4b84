package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
)

const (
	// defaultTokenTTL is assumed when the token answer has no expires_in.
	defaultTokenTTL = 5 * time.Minute
	// maxRefreshMargin is how long before expiry a token is replaced; a
	// short-lived token is replaced after 90% of its life instead.
	maxRefreshMargin = 5 * time.Minute
	// tokenCacheMax bounds the cache; beyond it, expired entries go.
	tokenCacheMax = 1024
)

// tokenKey identifies one credential of one tenant. secretHash is a
// truncated SHA-256 of the client secret, so a changed (or wrong) secret
// never reuses a token minted with another one.
type tokenKey struct {
	tenant, clientID, authURL, secretHash string
}

// tokenCache holds OAuth access tokens per tenant and credential until
// shortly before they expire. Concurrent callers that need a new token for
// the same key share one token request. It is safe for concurrent use.
type tokenCache struct {
	mu      sync.Mutex
	entries map[tokenKey]*tokenEntry
	now     func() time.Time
}

type tokenEntry struct {
	token     string
	refreshAt time.Time
	flight    *tokenFlight // non-nil while a token request runs
}

// tokenFlight is one token request; done closes when token or err is set.
type tokenFlight struct {
	done  chan struct{}
	token string
	err   error
}

// tokenFetcher mints a token and returns its lifetime.
type tokenFetcher func(ctx context.Context) (string, time.Duration, error)

func newTokenCache() *tokenCache {
	return &tokenCache{entries: make(map[tokenKey]*tokenEntry), now: time.Now}
}

// get returns a usable token for k, fetching one when none is cached or
// the cached one is due for refresh. stale, when non-empty, is a token the
// API has just rejected: if it is still the cached token a new one is
// fetched, and if another caller already replaced it the replacement is
// returned, so one expiry costs exactly one token request.
//
// The token request runs detached from ctx (bounded by httpTimeout) so a
// caller giving up does not fail the others waiting for it; get itself
// returns as soon as ctx ends.
func (c *tokenCache) get(ctx context.Context, k tokenKey, fetch tokenFetcher, stale string) (string, error) {
	c.mu.Lock()
	e := c.entries[k]
	if e == nil {
		c.prune()
		e = &tokenEntry{}
		c.entries[k] = e
	}
	if e.token != "" && e.token != stale && c.now().Before(e.refreshAt) {
		tok := e.token
		c.mu.Unlock()
		return tok, nil
	}
	f := e.flight
	if f == nil {
		f = &tokenFlight{done: make(chan struct{})}
		e.flight = f
		if e.token == stale {
			e.token = ""
		}
		go c.run(context.WithoutCancel(ctx), e, f, fetch)
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.token, f.err
	case <-ctx.Done():
		return "", provider.Retryable(fmt.Errorf("uberdirect: waiting for a token: %w", ctx.Err()))
	}
}

func (c *tokenCache) run(ctx context.Context, e *tokenEntry, f *tokenFlight, fetch tokenFetcher) {
	ctx, cancel := context.WithTimeout(ctx, httpTimeout)
	defer cancel()
	tok, ttl, err := fetch(ctx)
	c.mu.Lock()
	if err == nil {
		e.token = tok
		e.refreshAt = c.now().Add(ttl - refreshMargin(ttl))
	}
	e.flight = nil
	f.token, f.err = tok, err
	c.mu.Unlock()
	close(f.done)
}

// refreshMargin is how long before expiry a token of lifetime ttl is
// replaced: a tenth of it, at most maxRefreshMargin.
func refreshMargin(ttl time.Duration) time.Duration {
	return min(ttl/10, maxRefreshMargin)
}

// prune drops entries whose token is due and that have no request in
// flight, once the cache holds tokenCacheMax keys. The caller holds c.mu.
func (c *tokenCache) prune() {
	if len(c.entries) < tokenCacheMax {
		return
	}
	now := c.now()
	for k, e := range c.entries {
		if e.flight == nil && !now.Before(e.refreshAt) {
			delete(c.entries, k)
		}
	}
}
