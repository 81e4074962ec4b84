package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/pipecore/pipecore/core/internal/config"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/core/internal/vault"
)

// TestMovedCiphertextFailsClosed copies tenant a's sealed credential into
// tenant b's record: it does not decrypt for b, so b has no credential
// (its provider calls fail closed) while a keeps its own.
func TestMovedCiphertextFailsClosed(t *testing.T) {
	dir := t.TempDir()
	cfg := &config.Config{DataDir: dir, Secrets: config.Secrets{KeyFile: filepath.Join(dir, "master.key"), HMACKeyFile: filepath.Join(dir, "hmac.key")}}
	v, pepper, err := openVault(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenBolt(filepath.Join(dir, "pipecore.db"), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	sealed, err := v.Seal(ctx, vault.Binding{Tenant: "a", Provider: "stripe", Field: "secret_key"}, "sk_test_of_a")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(sealed)
	for _, id := range []string{"a", "b"} {
		if err := st.PutTenant(ctx, store.TenantRecord{ID: id}); err != nil {
			t.Fatal(err)
		}
		if err := st.PutCredential(ctx, store.CredentialRecord{TenantID: id, Provider: "stripe", Field: "secret_key", Sealed: raw}); err != nil {
			t.Fatal(err)
		}
	}
	g := &gateway{cfg: cfg, log: slog.New(slog.DiscardHandler), store: st, vault: v, pepper: pepper}
	src, err := g.sources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := src.Credentials[tenant.CredentialKey{Tenant: "a", Provider: "stripe", Field: "secret_key"}]; got != "sk_test_of_a" {
		t.Fatalf("a's own credential: %q", got)
	}
	if got, ok := src.Credentials[tenant.CredentialKey{Tenant: "b", Provider: "stripe", Field: "secret_key"}]; ok {
		t.Fatalf("a's ciphertext decrypted for b: %q", got)
	}
}
