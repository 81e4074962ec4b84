package tenant_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pipecore/pipecore/core/internal/config"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
)

const cfgKey = "pc_live_config_key_0123456789abcdefghijklmnop"

func sources(now time.Time) tenant.Sources {
	off := false
	return tenant.Sources{
		Config: map[string]config.Tenant{
			"acme": {APIKeys: []string{cfgKey}, Defaults: map[string]string{"payments": "stripe"},
				Providers: map[string]config.Provider{
					"stripe": {Settings: map[string]string{"base_url": "http://cfg"}, Credentials: map[string]string{"secret_key": "cfg-secret", "webhook_secret": "cfg-whsec"}},
					"mp":     {Enabled: &off, Credentials: map[string]string{"access_token": "cfg-mp"}},
				}},
		},
		Records: []store.TenantRecord{
			{ID: "acme", Providers: map[string]store.TenantProvider{"mp": {Enabled: true}, "stripe": {Enabled: true, Settings: map[string]string{"base_url": "http://store"}}}},
			{ID: "newco", Defaults: map[string]string{"payments": "stripe"}, Providers: map[string]store.TenantProvider{"stripe": {Enabled: true}}},
			{ID: "gone", Disabled: true},
		},
		Keys: []store.APIKeyRecord{
			{ID: "key_1", TenantID: "newco", Hash: tenant.KeyedHash([]byte("pepper"), "pc_live_newco_key")},
			{ID: "key_2", TenantID: "newco", Hash: tenant.KeyedHash([]byte("pepper"), "pc_live_revoked"), RevokedAt: now},
			{ID: "key_3", TenantID: "gone", Hash: tenant.KeyedHash([]byte("pepper"), "pc_live_gone_key")},
		},
		Pepper: []byte("pepper"),
		Credentials: map[tenant.CredentialKey]string{
			{Tenant: "acme", Provider: "stripe", Field: "secret_key"}:  "store-secret",
			{Tenant: "newco", Provider: "stripe", Field: "secret_key"}: "newco-secret",
		},
		TokenSecrets: map[string]map[string]string{"newco": {"k1": "pcts_newco"}, "acme": {"k1": "pcts_acme"}},
		Now:          func() time.Time { return now },
	}
}

func TestBuildPrecedence(t *testing.T) {
	now := time.Unix(1700000000, 0)
	r, err := tenant.Build(sources(now))
	if err != nil {
		t.Fatal(err)
	}
	acme, _ := r.Get("acme")
	pt, ok := acme.ProviderTenant("stripe")
	if !ok || pt.Secret("secret_key").Reveal() != "store-secret" || pt.Secret("webhook_secret").Reveal() != "cfg-whsec" || pt.Setting("base_url") != "http://store" {
		t.Fatalf("stripe for acme: settings %v", pt.Settings())
	}
	if !acme.Enabled("mp") {
		t.Fatal("the store's enabled flag did not override the config's")
	}
	if got, _ := r.Authenticate(cfgKey); got == nil || got.ID != "acme" {
		t.Fatal("config key lost")
	}
	newco, keyID, ok := r.Identify("pc_live_newco_key")
	if !ok || newco.ID != "newco" || keyID != "key_1" {
		t.Fatalf("operator key: %v %q %v", newco, keyID, ok)
	}
	for name, key := range map[string]string{"revoked key": "pc_live_revoked", "disabled tenant's key": "pc_live_gone_key", "unknown": "pc_live_nobody_0123456789abcdefghijklmn"} {
		if _, ok := r.Authenticate(key); ok {
			t.Errorf("%s authenticated", name)
		}
	}
	if g, ok := r.Get("gone"); !ok || !g.Disabled {
		t.Errorf("disabled tenant: %v %v", g, ok)
	}
}

func TestTokens(t *testing.T) {
	now := time.Unix(1700000000, 0)
	r, err := tenant.Build(sources(now))
	if err != nil {
		t.Fatal(err)
	}
	mint := func(secret string, c tenant.TokenClaims) string {
		tok, err := tenant.MintToken(secret, c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	iat := now.Unix()
	tests := map[string]struct {
		tok  string
		want string // tenant id, "" = refused
	}{
		"valid":            {tok: mint("pcts_newco", tenant.TokenClaims{KeyID: "k1", TenantID: "newco", IssuedAt: iat, Expires: iat + 300}), want: "newco"},
		"expired":          {tok: mint("pcts_newco", tenant.TokenClaims{KeyID: "k1", TenantID: "newco", IssuedAt: iat - 400, Expires: iat - 100})},
		"future-dated":     {tok: mint("pcts_newco", tenant.TokenClaims{KeyID: "k1", TenantID: "newco", IssuedAt: iat + 120, Expires: iat + 300})},
		"too long-lived":   {tok: mint("pcts_newco", tenant.TokenClaims{KeyID: "k1", TenantID: "newco", IssuedAt: iat, Expires: iat + 3600})},
		"wrong tenant":     {tok: mint("pcts_acme", tenant.TokenClaims{KeyID: "k1", TenantID: "newco", IssuedAt: iat, Expires: iat + 300})},
		"unknown key id":   {tok: mint("pcts_newco", tenant.TokenClaims{KeyID: "k9", TenantID: "newco", IssuedAt: iat, Expires: iat + 300})},
		"tampered payload": {tok: strings.Replace(mint("pcts_newco", tenant.TokenClaims{KeyID: "k1", TenantID: "newco", IssuedAt: iat, Expires: iat + 300}), "pct.e", "pct.f", 1)},
		"garbage":          {tok: "pct.not.a.token"},
		"disabled tenant":  {tok: mint("x", tenant.TokenClaims{KeyID: "k1", TenantID: "gone", IssuedAt: iat, Expires: iat + 300})},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := r.Authenticate(tc.tok)
			switch {
			case tc.want == "" && ok:
				t.Fatalf("accepted for %s", got.ID)
			case tc.want != "" && (!ok || got.ID != tc.want):
				t.Fatalf("refused or wrong tenant: %v %v", got, ok)
			}
		})
	}
}

func TestSwap(t *testing.T) {
	r, _ := tenant.New(map[string]config.Tenant{"a": {APIKeys: []string{cfgKey}}})
	if _, ok := r.Authenticate(cfgKey); !ok {
		t.Fatal("before swap")
	}
	n, _ := tenant.New(map[string]config.Tenant{"b": {}})
	r.Swap(n)
	if _, ok := r.Authenticate(cfgKey); ok {
		t.Fatal("old key still accepted after swap")
	}
	if _, ok := r.Get("b"); !ok {
		t.Fatal("new tenant missing after swap")
	}
}
