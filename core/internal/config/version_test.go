package config

import (
	"strings"
	"testing"
)

func TestProviderVersion(t *testing.T) {
	src := tenantYAML(validTenant + "providers:\n  stripe:\n    version: \"~1.3\"\n    credentials: { secret_key: sk }\n  mercadopago:\n    credentials: { access_token: t }\n")
	cfg, err := Parse([]byte(src), "pipecore.yaml", lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Versions()
	if len(got) != 1 || len(got["tableflow"]) != 1 || got["tableflow"]["stripe"] != "~1.3" {
		t.Fatalf("Versions() = %v", got)
	}
	if !strings.Contains(cfg.String(), `version: ~1.3`) {
		t.Errorf("the redacted config lost the version:\n%s", cfg)
	}

	bad := tenantYAML(validTenant + "providers:\n  stripe:\n    version: \"~one.three\"\n    credentials: { secret_key: sk }\n")
	_, err = Parse([]byte(bad), "pipecore.yaml", lookup(nil))
	want := `pipecore.yaml: tenants.tableflow.providers.stripe.version: tenant "tableflow": provider "stripe": version constraint "~one.three" is invalid`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("bad constraint: %v\nwant it to contain %s", err, want)
	}
}
