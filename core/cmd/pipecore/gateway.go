package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pipecore/pipecore/core/internal/admin"
	"github.com/pipecore/pipecore/core/internal/api"
	"github.com/pipecore/pipecore/core/internal/config"
	"github.com/pipecore/pipecore/core/internal/dispatch"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/core/internal/vault"
	"github.com/pipecore/pipecore/sdk/provider"
)

// openVault opens the master key holder and derives the keys of API key
// hashes and credential fingerprints from the HMAC key file.
func openVault(cfg *config.Config) (v *vault.Vault, pepper []byte, err error) {
	var holder vault.KeyHolder
	if t := cfg.Secrets.Transit; t.Address != "" {
		holder, err = vault.NewTransit(vault.TransitConfig{Address: t.Address, Token: provider.NewSecret(t.Token), Mount: t.Mount, Key: t.Key})
	} else {
		holder, err = loadOrCreateKeyFile(cfg.Secrets.KeyFile)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("master key: %w", err)
	}
	hk, err := loadOrCreateHMACKey(cfg.Secrets.HMACKeyFile)
	if err != nil {
		return nil, nil, err
	}
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, hk)
		m.Write([]byte("pipecore/" + label))
		return m.Sum(nil)
	}
	v, err = vault.New(holder, derive("fingerprints"))
	if err != nil {
		return nil, nil, err
	}
	return v, derive("api-keys"), nil
}

func loadOrCreateKeyFile(path string) (*vault.Local, error) {
	l, err := vault.LoadLocal(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		return vault.NewKeyFile(path)
	}
	return l, err
}

func loadOrCreateHMACKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) < 32 {
			return nil, fmt.Errorf("%s holds fewer than 32 bytes", path)
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, err
	}
	return b, nil
}

// sources reads the operator-managed tenants, keys and credentials and
// decrypts the credentials. A credential that does not decrypt (moved
// from another tenant, tampered, key retired) is left out and logged: its
// provider then fails closed for that tenant.
func (g *gateway) sources(ctx context.Context) (tenant.Sources, error) {
	src := tenant.Sources{Config: g.cfg.Tenants, Pepper: g.pepper,
		Credentials: map[tenant.CredentialKey]string{}, TokenSecrets: map[string]map[string]string{}}
	var err error
	if src.Records, err = g.store.ListTenants(ctx); err != nil {
		return src, err
	}
	if src.Keys, err = g.store.AllAPIKeys(ctx); err != nil {
		return src, err
	}
	creds, err := g.store.AllCredentials(ctx)
	if err != nil {
		return src, err
	}
	for _, c := range creds {
		var s vault.Sealed
		if err := json.Unmarshal(c.Sealed, &s); err != nil {
			g.log.Error("credential unreadable; left out", "tenant", c.TenantID, "provider", c.Provider, "field", c.Field)
			continue
		}
		v, err := g.vault.Open(ctx, vault.Binding{Tenant: c.TenantID, Provider: c.Provider, Field: c.Field}, s)
		if err != nil {
			g.log.Error("security: credential does not decrypt for its tenant; left out", "tenant", c.TenantID, "provider", c.Provider, "field", c.Field, "error", err)
			continue
		}
		if c.Provider == admin.TokenProvider {
			if src.TokenSecrets[c.TenantID] == nil {
				src.TokenSecrets[c.TenantID] = map[string]string{}
			}
			src.TokenSecrets[c.TenantID][c.Field] = v
			continue
		}
		src.Credentials[tenant.CredentialKey{Tenant: c.TenantID, Provider: c.Provider, Field: c.Field}] = v
	}
	return src, nil
}

// Registry implements admin.Gateway.
func (g *gateway) Registry() *tenant.Registry { return g.tenants }

// Reload implements admin.Gateway: it rebuilds the registry and swaps it in.
func (g *gateway) Reload(ctx context.Context) error {
	src, err := g.sources(ctx)
	if err != nil {
		return err
	}
	r, err := tenant.Build(src)
	if err != nil {
		return err
	}
	if g.tenants == nil {
		g.tenants = r
	} else {
		g.tenants.Swap(r)
	}
	return nil
}

// Check implements admin.Gateway: the merged tenants, with change applied
// to one operator record, must satisfy every running plugin's fields.
func (g *gateway) Check(ctx context.Context, id string, change func(*store.TenantRecord)) error {
	src, err := g.sources(ctx)
	if err != nil {
		return err
	}
	found := false
	for i := range src.Records {
		if src.Records[i].ID == id {
			rec := src.Records[i]
			rec.Providers = maps.Clone(rec.Providers)
			rec.Defaults = maps.Clone(rec.Defaults)
			change(&rec)
			src.Records[i] = rec
			found = true
		}
	}
	if !found {
		rec := store.TenantRecord{ID: id}
		change(&rec)
		src.Records = append(src.Records, rec)
	}
	merged, _ := tenant.Merge(src)
	check := *g.cfg
	check.Tenants = merged
	return validateProviders(&check, g.plugins.Catalog(), g.plugins.Available(), g.log)
}

// EnsurePlugin implements admin.Gateway: it launches the named plugin if
// no tenant used it so far.
func (g *gateway) EnsurePlugin(ctx context.Context, name string) error {
	_, err := g.plugins.Start(ctx, []string{name})
	return err
}

// ConfigTenant implements admin.Gateway.
func (g *gateway) ConfigTenant(id string) bool { _, ok := g.cfg.Tenants[id]; return ok }

// Replay implements admin.Gateway.
func (g *gateway) Replay(ctx context.Context, tenantID, typ, status string, since, until time.Time) (int, error) {
	n, _, err := api.ReplayEvents(ctx, g.store, tenantID, typ, status, since, until, time.Now())
	if g.disp != nil {
		g.disp.Wake()
	}
	return n, err
}

// keyToucher batches the last-used times of operator keys.
type keyToucher struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (k *keyToucher) used(id string) {
	k.mu.Lock()
	if k.seen == nil {
		k.seen = map[string]time.Time{}
	}
	k.seen[id] = time.Now().UTC()
	k.mu.Unlock()
}

func (k *keyToucher) run(ctx context.Context, st store.Store) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		k.mu.Lock()
		batch := k.seen
		k.seen = nil
		k.mu.Unlock()
		if len(batch) > 0 {
			_ = st.TouchAPIKeys(ctx, batch)
		}
	}
}

var _ admin.Gateway = (*gateway)(nil)
var _ = dispatch.ErrBlockedAddress
