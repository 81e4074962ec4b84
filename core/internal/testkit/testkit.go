// Package testkit builds what the gateway's package tests share: a bbolt
// store in the test's temporary directory, closed when the test ends, and
// a tenant registry from config literals.
package testkit

import (
	"path/filepath"
	"testing"

	"github.com/pipecore/pipecore/core/internal/config"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
)

// Store opens a fresh bbolt store for t.
func Store(t testing.TB) *store.Bolt {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "pipecore.db"), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// Tenants builds a registry of the given tenants.
func Tenants(t testing.TB, tenants map[string]config.Tenant) *tenant.Registry {
	t.Helper()
	reg, err := tenant.New(tenants)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// APIKey is a well-formed tenant API key for tests.
const APIKey = "pc_live_acme_0123456789abcdefghijklmnopqrstuv"
