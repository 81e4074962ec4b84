package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
)

// example is the operator-facing example configuration.
const example = `listen: 127.0.0.1:8080
public_url: http://127.0.0.1:8080
data_dir: ./data
plugins_dir: ./bin/plugins
log: { level: info, format: json }        # level debug|info|warn|error; format json|text
http: { read_timeout: 30s, write_timeout: 30s, idle_timeout: 120s, max_body_bytes: 1048576 }
plugins: { call_timeout: 30s, start_timeout: 10s }
tenants:
  tableflow:
    api_keys: ["${TABLEFLOW_API_KEY}"]      # or "sha256:<64 hex>" of the key
    defaults: { payments: stripe }
    providers:
      stripe:
        enabled: true
        settings: { base_url: "http://127.0.0.1:12111" }
        credentials: { secret_key: "${STRIPE_SECRET_KEY}", webhook_secret: "${STRIPE_WEBHOOK_SECRET}" }
`

const (
	testAPIKey        = "pc_live_0123456789abcdefghijklmnopqrstuvwxyzABCDE"
	testSecretKey     = "sk_test_51abcdefghijklmnop"
	testWebhookSecret = "whsec_abcdefghijklmnop"
)

// exampleEnv sets every variable the example references.
func exampleEnv() map[string]string {
	return map[string]string{
		"TABLEFLOW_API_KEY":     testAPIKey,
		"STRIPE_SECRET_KEY":     testSecretKey,
		"STRIPE_WEBHOOK_SECRET": testWebhookSecret,
	}
}

func lookup(env map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
}

func mustParse(tb testing.TB, src string, env map[string]string) *Config {
	tb.Helper()
	c, err := Parse([]byte(src), "pipecore.yaml", lookup(env))
	if err != nil {
		tb.Fatalf("Parse: unexpected error:\n%v", err)
	}
	return c
}

// problems returns the individual messages of a joined error.
func problems(err error) []string {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, e.Error())
		}
		return out
	}
	return []string{err.Error()}
}

func TestParseExample(t *testing.T) {
	c := mustParse(t, example, exampleEnv())
	if c.Listen != "127.0.0.1:8080" || c.PublicURL != "http://127.0.0.1:8080" {
		t.Errorf("listen/public_url = %q/%q", c.Listen, c.PublicURL)
	}
	if c.DataDir != "data" || c.PluginsDir != filepath.Join("bin", "plugins") {
		t.Errorf("dirs = %q, %q, want cleaned relative paths", c.DataDir, c.PluginsDir)
	}
	if c.HTTP.IdleTimeout.Duration() != 120*time.Second || c.HTTP.MaxBodyBytes != 1<<20 {
		t.Errorf("http = %+v", c.HTTP)
	}
	if c.Plugins.StartTimeout.Duration() != 10*time.Second {
		t.Errorf("plugins.start_timeout = %v", c.Plugins.StartTimeout)
	}
	tf, ok := c.Tenants["tableflow"]
	if !ok {
		t.Fatal("tenant tableflow missing")
	}
	if len(tf.APIKeys) != 1 || tf.APIKeys[0] != testAPIKey {
		t.Error("api key not expanded from the environment")
	}
	if tf.Defaults["payments"] != "stripe" {
		t.Errorf("defaults = %v", tf.Defaults)
	}
	s := tf.Providers["stripe"]
	if !s.IsEnabled() || s.Settings["base_url"] != "http://127.0.0.1:12111" {
		t.Errorf("stripe enabled=%v settings=%v", s.IsEnabled(), s.Settings)
	}
	if s.Credentials["secret_key"] != testSecretKey || s.Credentials["webhook_secret"] != testWebhookSecret {
		t.Error("credentials not expanded from the environment")
	}
}

func TestParseDefaults(t *testing.T) {
	c := mustParse(t, "# nothing but defaults\n", nil)
	want := Config{
		Listen:     "127.0.0.1:8080",
		PublicURL:  "http://127.0.0.1:8080",
		DataDir:    "data",
		PluginsDir: filepath.Join("bin", "plugins"),
		Log:        Log{Level: "info", Format: "json"},
		HTTP: HTTP{
			ReadTimeout:  Duration(30 * time.Second),
			WriteTimeout: Duration(30 * time.Second),
			IdleTimeout:  Duration(120 * time.Second),
			MaxBodyBytes: 1048576,
		},
		Plugins: Plugins{CallTimeout: Duration(30 * time.Second), StartTimeout: Duration(10 * time.Second)},
	}
	if c.Listen != want.Listen || c.PublicURL != want.PublicURL || c.DataDir != want.DataDir ||
		c.PluginsDir != want.PluginsDir || c.Log != want.Log || c.HTTP != want.HTTP || c.Plugins != want.Plugins {
		t.Errorf("defaults:\n got %s\nwant %s", c.String(), want.String())
	}

	// public_url follows listen; explicit nulls and empty sections mean defaults.
	c = mustParse(t, "listen: 0.0.0.0:9000\nlog:\nhttp: {}\nplugins: ~\n", nil)
	if c.PublicURL != "http://0.0.0.0:9000" || c.Log.Level != "info" || c.HTTP.ReadTimeout.Duration() != 30*time.Second {
		t.Errorf("got public_url %q, log %+v, http %+v", c.PublicURL, c.Log, c.HTTP)
	}
}

func TestProviderIsEnabled(t *testing.T) {
	tests := map[string]struct {
		yaml string
		want bool
	}{
		"listed without enabled": {"{}", true},
		"enabled true":           {"{enabled: true}", true},
		"enabled false":          {"{enabled: false}", false},
		"enabled null":           {"{enabled: ~}", true},
		"enabled from env":       {"{enabled: \"${ON}\"}", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			src := "tenants:\n  t1:\n    api_keys: [" + testAPIKey + "]\n    providers:\n      stripe: " + tc.yaml + "\n"
			c := mustParse(t, src, map[string]string{"ON": "false"})
			if got := c.Tenants["t1"].Providers["stripe"].IsEnabled(); got != tc.want {
				t.Errorf("IsEnabled() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pipecore.yaml")
	if err := os.WriteFile(path, []byte(example), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, lookup(exampleEnv()))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Tenants["tableflow"].Providers["stripe"].Credentials["secret_key"] != testSecretKey {
		t.Error("Load did not expand credentials")
	}
	if c.DataDir != "data" {
		t.Errorf("data_dir = %q: relative paths must stay relative to the working directory, not %s", c.DataDir, dir)
	}

	_, err = Load(filepath.Join(dir, "missing.yaml"), nil)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("Load(missing) = %v, want a not-exist error naming the file", err)
	}

	// The file name, as given, prefixes every message.
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("listn: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad, nil)
	if want := bad + `: unknown key "listn" (line 1)`; err == nil || err.Error() != want {
		t.Errorf("Load(bad) = %v, want %s", err, want)
	}
}

// tenantYAML returns a one-tenant config whose tenant "tableflow" has the
// given body, indented under it.
func tenantYAML(body string) string {
	var b strings.Builder
	b.WriteString("tenants:\n  tableflow:\n")
	for line := range strings.SplitSeq(strings.TrimRight(body, "\n"), "\n") {
		b.WriteString("    " + line + "\n")
	}
	return b.String()
}

const validTenant = "api_keys: [" + testAPIKey + "]\n"

func TestParseErrors(t *testing.T) {
	hashed := "sha256:" + strings.Repeat("ab", 32)
	tests := map[string]struct {
		src   string
		env   map[string]string
		want  []string // substrings the error must contain
		count int      // number of problems; 0 means 1
	}{
		"unknown top-level key": {
			src:  "listen: 127.0.0.1:1\nlisten_addr: x\n",
			want: []string{`pipecore.yaml: unknown key "listen_addr" (line 2)`},
		},
		"unknown key in log": {
			src:  "log:\n  level: info\n  colour: true\n",
			want: []string{`pipecore.yaml: log: unknown key "colour" (line 3)`},
		},
		"unknown key in http": {
			src:  "http: { read_timeout: 1s, max_body: 10 }\n",
			want: []string{`pipecore.yaml: http: unknown key "max_body" (line 1)`},
		},
		"unknown key in plugins": {
			src:  "plugins:\n  timeout: 1s\n",
			want: []string{`pipecore.yaml: plugins: unknown key "timeout" (line 2)`},
		},
		"unknown key in tenant": {
			src:  tenantYAML(validTenant + "apikeys: [x]\n"),
			want: []string{`pipecore.yaml: tenants.tableflow: unknown key "apikeys" (line 4)`},
		},
		"unknown key in provider": {
			src: tenantYAML(validTenant + "providers:\n  stripe:\n    enabeld: true\n"),
			want: []string{
				`pipecore.yaml: tenants.tableflow.providers.stripe: unknown key "enabeld" (line 6)`,
			},
		},
		"unset environment variable": {
			src: tenantYAML(validTenant + "providers:\n  stripe:\n    credentials:\n      secret_key: ${STRIPE_SECRET_KEY}\n"),
			want: []string{
				`pipecore.yaml: tenants.tableflow.providers.stripe.credentials.secret_key: environment variable STRIPE_SECRET_KEY is not set (line 7)`,
			},
		},
		"two unset variables in one value": {
			src:   "public_url: http://${HOST}:${PORT}\n",
			want:  []string{"public_url: environment variable HOST is not set", "public_url: environment variable PORT is not set"},
			count: 2,
		},
		"unset variable in an api key is reported once": {
			src:  tenantYAML("api_keys: [\"${TABLEFLOW_API_KEY}\"]\n"),
			want: []string{`tenants.tableflow.api_keys[0]: environment variable TABLEFLOW_API_KEY is not set (line 3)`},
		},
		"unterminated reference": {
			src:  "listen: ${LISTEN\n",
			want: []string{"listen: unterminated ${", "(line 1)"},
		},
		"invalid variable name": {
			src:  "listen: ${1X}\n",
			want: []string{"listen: invalid environment variable reference"},
		},
		"duration without unit": {
			src:  "http:\n  read_timeout: 30\n",
			want: []string{`http.read_timeout: invalid duration "30"`, `"30s"`, "(line 2)"},
		},
		"duration garbage": {
			src:  "plugins: { call_timeout: soon }\n",
			want: []string{`plugins.call_timeout: invalid duration "soon"`},
		},
		"duration from env": {
			src:  "plugins: { start_timeout: \"${T}\" }\n",
			env:  map[string]string{"T": "10 s"},
			want: []string{`plugins.start_timeout: invalid duration "${T}"`},
		},
		"negative duration": {
			src:  "http: { idle_timeout: -5s }\n",
			want: []string{"pipecore.yaml: http.idle_timeout: must be a positive duration, got -5s (line 1)"},
		},
		"duration as a list": {
			src:  "http: { write_timeout: [1s] }\n",
			want: []string{"http.write_timeout: expected a duration", "got a list"},
		},
		"bad boolean": {
			src:  tenantYAML(validTenant + "providers:\n  stripe: { enabled: maybe }\n"),
			want: []string{`tenants.tableflow.providers.stripe.enabled: expected true or false, got "maybe" (line 5)`},
		},
		"bad number": {
			src:  "http: { max_body_bytes: 1MiB }\n",
			want: []string{`http.max_body_bytes: expected a whole number, got "1MiB"`},
		},
		"negative body size": {
			src:  "http: { max_body_bytes: -1 }\n",
			want: []string{"http.max_body_bytes: must be a positive number of bytes, got -1"},
		},
		"tenants as a list": {
			src:  "tenants: [tableflow]\n",
			want: []string{"tenants: expected a mapping of keys to values, got a list (line 1)"},
		},
		"api_keys as a string": {
			src:  tenantYAML("api_keys: " + testAPIKey + "\n"),
			want: []string{"tenants.tableflow.api_keys: expected a list, got a single value (line 3)"},
		},
		"credential as a mapping": {
			src:  tenantYAML(validTenant + "providers:\n  stripe:\n    credentials: { secret_key: { value: x } }\n"),
			want: []string{"tenants.tableflow.providers.stripe.credentials.secret_key: expected a string, got a mapping"},
		},
		"root is not a mapping": {
			src:  "- listen\n",
			want: []string{"pipecore.yaml: expected a mapping of keys to values, got a list (line 1)"},
		},
		"duplicate key": {
			src:  "listen: 127.0.0.1:1\nlog: {}\nlisten: 127.0.0.1:2\n",
			want: []string{`pipecore.yaml: duplicate key "listen" (first at line 1) (line 3)`},
		},
		"duplicate tenant": {
			src:  "tenants:\n  a:\n    api_keys: [" + testAPIKey + "]\n  a: {}\n",
			want: []string{`tenants: duplicate key "a" (first at line 2) (line 4)`},
		},
		"yaml syntax error": {
			src:  "listen: [\n",
			want: []string{"pipecore.yaml: line"},
		},
		"two documents": {
			src:  "listen: 127.0.0.1:1\n---\nlisten: 127.0.0.1:2\n",
			want: []string{"pipecore.yaml: line 2: a second YAML document starts here"},
		},
		"bad listen": {
			src:  "listen: localhost\n",
			want: []string{`listen: "localhost" is not a host:port address such as 127.0.0.1:8080 (line 1)`},
		},
		"bad port": {
			src:  "listen: 127.0.0.1:99999\n",
			want: []string{`listen: "127.0.0.1:99999" is not a host:port address`},
		},
		"public_url without scheme": {
			src:  "public_url: gateway.example.com\n",
			want: []string{`public_url: "gateway.example.com" is not an absolute http:// or https:// URL`},
		},
		"public_url ftp": {
			src:  "public_url: ftp://gateway.example.com\n",
			want: []string{`public_url: "ftp://gateway.example.com" is not an absolute`},
		},
		"public_url with password": {
			src:  "public_url: https://admin:hunter2@gateway.example.com\n",
			want: []string{`public_url: "https://admin:xxxxx@gateway.example.com" must not contain a user name or password`},
		},
		"bad log level": {
			src:  "log: { level: verbose }\n",
			want: []string{`log.level: unknown level "verbose" (use debug, info, warn or error) (line 1)`},
		},
		"bad log format": {
			src:  "log: { format: xml }\n",
			want: []string{`log.format: unknown format "xml" (use json or text)`},
		},
		"bad tenant id": {
			src:  "tenants:\n  Table Flow:\n    api_keys: [" + testAPIKey + "]\n",
			want: []string{`tenants."Table Flow": tenant id "Table Flow" must be 1 to 63 lowercase letters`, "(line 2)"},
		},
		"tenant id too long": {
			src:  "tenants:\n  " + strings.Repeat("a", 64) + ":\n    api_keys: [" + testAPIKey + "]\n",
			want: []string{"tenant id", "must be 1 to 63"},
		},
		"no api keys": {
			src:  tenantYAML("defaults: {}\n"),
			want: []string{"tenants.tableflow.api_keys: tenant \"tableflow\" has no api key", "pipecore keygen"},
		},
		"empty api key list": {
			src:  tenantYAML("api_keys: []\n"),
			want: []string{`tenants.tableflow.api_keys: tenant "tableflow" has no api key`, "(line 3)"},
		},
		"short api key": {
			src:  tenantYAML("api_keys: [short-key]\n"),
			want: []string{`tenants.tableflow.api_keys[0]: tenant "tableflow": api key is 9 characters long; a key must be at least 32 characters`, "32 random bytes", "pipecore keygen", "(line 3)"},
		},
		"empty api key": {
			src:  tenantYAML("api_keys: [\"${EMPTY}\"]\n"),
			env:  map[string]string{"EMPTY": ""},
			want: []string{`tenants.tableflow.api_keys[0]: tenant "tableflow": api key is empty`},
		},
		"hashed key with upper-case hex": {
			src:  tenantYAML("api_keys: [\"" + strings.ToUpper(hashed) + "\"]\n"),
			want: []string{`tenants.tableflow.api_keys[0]: tenant "tableflow": a hashed api key must be "sha256:" followed by exactly 64 lowercase hex digits`},
		},
		"hashed key upper-case digits": {
			src:  tenantYAML("api_keys: [\"sha256:" + strings.Repeat("AB", 32) + "\"]\n"),
			want: []string{`tenants.tableflow.api_keys[0]: tenant "tableflow": a hashed api key must be "sha256:" followed by exactly 64 lowercase hex digits`},
		},
		"hashed key too short": {
			src:  tenantYAML("api_keys: [\"sha256:abc\"]\n"),
			want: []string{`tenants.tableflow.api_keys[0]: tenant "tableflow": a hashed api key must be`},
		},
		"same key for two tenants": {
			src:  "tenants:\n  a:\n    api_keys: [" + testAPIKey + "]\n  b:\n    api_keys: [\"" + keyHash(testAPIKey) + "\"]\n",
			want: []string{`tenants.b.api_keys[0]: tenant "b": this api key is also configured for tenant "a"; a key must identify exactly one tenant (line 5)`},
		},
		"default names a disabled provider": {
			src:  tenantYAML(validTenant + "defaults: { payments: stripe }\nproviders:\n  stripe: { enabled: false }\n"),
			want: []string{`tenants.tableflow.defaults.payments: tenant "tableflow": default payments provider "stripe" is disabled (enabled: false)`, "(line 4)"},
		},
		"default names an unlisted provider": {
			src:  tenantYAML(validTenant + "defaults: { delivery: uber }\n"),
			want: []string{`tenants.tableflow.defaults.delivery: tenant "tableflow": default delivery provider "uber" is not configured; add it under tenants.tableflow.providers`},
		},
		"default for an unknown capability": {
			src:  tenantYAML(validTenant + "defaults: { payment: stripe }\nproviders: { stripe: {} }\n"),
			want: []string{`tenants.tableflow.defaults.payment: tenant "tableflow": unknown capability "payment" (use delivery, messaging, payments, or a messaging channel: whatsapp, sms, email)`},
		},
		"default is empty": {
			src:  tenantYAML(validTenant + "defaults: { messaging: \"\" }\n"),
			want: []string{`tenants.tableflow.defaults.messaging: tenant "tableflow": default messaging provider is empty`},
		},
		"merge key with a scalar": {
			src:  "log:\n  <<: info\n",
			want: []string{"log: a merge key (<<) takes a mapping or a list of mappings, got a single value"},
		},
		"non-string key": {
			src:  "log:\n  ? [level]\n  : info\n",
			want: []string{"log: a key must be a plain string, got a list"},
		},
		"alias bomb": {
			src:  aliasBomb(),
			want: []string{"pipecore.yaml: tenants.t", "the document is too large once its aliases are expanded"},
		},
		"merge bomb": {
			src:  mergeBomb(),
			want: []string{"pipecore.yaml: tenants.t.providers.p", "the document is too large once its aliases are expanded"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := Parse([]byte(tc.src), "pipecore.yaml", lookup(tc.env))
			if err == nil {
				t.Fatalf("Parse succeeded, want errors %q", tc.want)
			}
			if c != nil {
				t.Error("Parse returned a config along with an error")
			}
			if n := max(tc.count, 1); len(problems(err)) != n {
				t.Errorf("got %d problems, want %d:\n%s", len(problems(err)), n, err)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not contain %q:\n%s", want, err)
				}
			}
		})
	}
}

// aliasBomb returns a short file whose aliases expand to a million nodes:
// 100 tenants sharing 100 providers sharing 100 settings.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("tenants:\n  t0: &t\n    providers: &p\n      p0: &s\n        settings: {")
	for i := range 100 {
		fmt.Fprintf(&b, "k%d: v, ", i)
	}
	b.WriteString("}\n")
	for i := 1; i < 100; i++ {
		fmt.Fprintf(&b, "      p%d: *s\n", i)
	}
	for i := 1; i < 100; i++ {
		fmt.Fprintf(&b, "  t%d: *t\n", i)
	}
	return b.String()
}

// mergeBomb returns a short file whose nested merge keys expand
// exponentially.
func mergeBomb() string {
	var b strings.Builder
	b.WriteString("tenants:\n  t:\n    providers:\n      p0: { settings: &a0 { k: v } }\n")
	for i := 1; i < 8; i++ {
		fmt.Fprintf(&b, "      p%d: { settings: &a%d { <<: [", i, i)
		for range 10 {
			fmt.Fprintf(&b, "*a%d, ", i-1)
		}
		b.WriteString("] } }\n")
	}
	return b.String()
}

func TestParseReportsEveryProblem(t *testing.T) {
	src := `listen: localhost
log: { level: loud }
http: { read_timeout: 5 }
tenants:
  tableflow:
    api_keys: [short]
    defaults: { payments: stripe }
    providers:
      stripe:
        enabeld: false
        credentials: { secret_key: "${MISSING}" }
`
	_, err := Parse([]byte(src), "pipecore.yaml", lookup(nil))
	want := []string{
		`pipecore.yaml: http.read_timeout: invalid duration "5" (write a number with a unit, e.g. "30s" or "2m") (line 3)`,
		`pipecore.yaml: tenants.tableflow.providers.stripe: unknown key "enabeld" (line 10)`,
		`pipecore.yaml: tenants.tableflow.providers.stripe.credentials.secret_key: environment variable MISSING is not set (line 11)`,
		`pipecore.yaml: listen: "localhost" is not a host:port address such as 127.0.0.1:8080 (line 1)`,
		`pipecore.yaml: log.level: unknown level "loud" (use debug, info, warn or error) (line 2)`,
		`pipecore.yaml: tenants.tableflow.api_keys[0]: tenant "tableflow": api key is 5 characters long; a key must be at least 32 characters because it must carry at least 32 random bytes' worth of entropy; generate one with ` + "`pipecore keygen`" + ` (line 6)`,
	}
	got := problems(err)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestExpand(t *testing.T) {
	env := map[string]string{"A": "alpha", "B": "", "PASS": "p$${x}"}
	tests := map[string]struct {
		in, want string
	}{
		"no reference":              {"plain", "plain"},
		"whole value":               {"${A}", "alpha"},
		"embedded":                  {"x-${A}-y", "x-alpha-y"},
		"two references":            {"${A}${A}", "alphaalpha"},
		"set but empty":             {"[${B}]", "[]"},
		"escaped":                   {"$${A}", "${A}"},
		"escaped then reference":    {"$${A}${A}", "${A}alpha"},
		"lone dollar":               {"pa$$word$", "pa$$word$"},
		"dollar before reference":   {"$${A}$", "${A}$"},
		"expanded value not reread": {"${PASS}", "p$${x}"},
		"brace without dollar":      {"{A}", "{A}"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := mustParse(t, "data_dir: '"+tc.in+"'\n", env)
			if c.DataDir != tc.want {
				t.Errorf("expanded %q to %q, want %q", tc.in, c.DataDir, tc.want)
			}
		})
	}
}

func TestAnchorsAndMerge(t *testing.T) {
	src := `tenants:
  a:
    api_keys: ["${KEY_A}"]
    providers:
      stripe: &stripe
        settings: { base_url: "http://fake" }
        credentials: { secret_key: "${SK}" }
  b:
    api_keys: ["${KEY_B}"]
    providers:
      stripe:
        <<: *stripe
        credentials: { secret_key: other }
      uber:
        <<: [{ enabled: false }, *stripe]
`
	env := map[string]string{"KEY_A": testAPIKey, "KEY_B": testAPIKey + "b", "SK": "sk_a"}
	c := mustParse(t, src, env)
	b := c.Tenants["b"]
	if got := b.Providers["stripe"].Settings["base_url"]; got != "http://fake" {
		t.Errorf("merged setting = %q", got)
	}
	if got := b.Providers["stripe"].Credentials["secret_key"]; got != "other" {
		t.Errorf("explicit key must win over the merged one, got %q", got)
	}
	if u := b.Providers["uber"]; u.IsEnabled() || u.Credentials["secret_key"] != "sk_a" {
		t.Errorf("merge of a list: enabled=%v credentials=%v", u.IsEnabled(), u.Credentials)
	}
	if c.Tenants["a"].Providers["stripe"].Credentials["secret_key"] != "sk_a" {
		t.Error("anchored value not expanded")
	}
}

func TestDurationText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("1m30s")); err != nil || d.Duration() != 90*time.Second {
		t.Fatalf("UnmarshalText = %v, %v", d, err)
	}
	b, err := d.MarshalText()
	if err != nil || string(b) != "1m30s" {
		t.Errorf("MarshalText = %q, %v", b, err)
	}
	if err := d.UnmarshalText([]byte("90")); err == nil || !strings.Contains(err.Error(), `invalid duration "90"`) {
		t.Errorf("UnmarshalText(90) = %v, want an invalid-duration error", err)
	}
}

// catalog describes two plugins the way their Info methods would.
func catalog() map[string]provider.Info {
	return map[string]provider.Info{
		"stripe": {
			Name:         "stripe",
			Version:      "1.0.0",
			Capabilities: []provider.Capability{provider.CapabilityPayments},
			Fields: []provider.Field{
				{Name: "secret_key", Secret: true, Required: true, Doc: "Stripe secret API key"},
				{Name: "webhook_secret", Secret: true, Required: true},
				{Name: "statement_descriptor"},
			},
		},
		"uber": {
			Name:         "uber",
			Version:      "1.0.0",
			Capabilities: []provider.Capability{provider.CapabilityDelivery},
			Fields: []provider.Field{
				{Name: "customer_id", Required: true, Doc: "Uber Direct customer id"},
				{Name: "client_secret", Secret: true, Required: true},
			},
		},
	}
}

func TestValidateProviders(t *testing.T) {
	const stripeOK = "stripe:\n  settings: { base_url: \"http://127.0.0.1:12111\", statement_descriptor: TABLEFLOW }\n  credentials: { secret_key: sk_1, webhook_secret: wh_1 }\n"
	tests := map[string]struct {
		providers string // YAML under tenants.tableflow.providers
		defaults  string // YAML flow mapping under tenants.tableflow.defaults
		want      []string
	}{
		"valid": {
			providers: stripeOK,
			defaults:  "{ payments: stripe }",
		},
		"disabled provider may lack required fields": {
			providers: stripeOK + "uber: { enabled: false }\n",
		},
		"unknown provider": {
			providers: stripeOK + "strpe: {}\n",
			want:      []string{`tenant "tableflow": provider "strpe": no plugin provides it (available: stripe, uber)`},
		},
		"unknown provider even when disabled": {
			providers: stripeOK + "strpe: { enabled: false }\n",
			want:      []string{`tenant "tableflow": provider "strpe": no plugin provides it (available: stripe, uber)`},
		},
		"missing required credential": {
			providers: "stripe:\n  credentials: { webhook_secret: wh_1 }\n",
			want:      []string{`tenant "tableflow": provider "stripe": credentials.secret_key: required credential "secret_key" is not set; add it under tenants.tableflow.providers.stripe.credentials (Stripe secret API key)`},
		},
		"required credential empty": {
			providers: "stripe:\n  credentials: { secret_key: \"\", webhook_secret: wh_1 }\n",
			want:      []string{`tenant "tableflow": provider "stripe": credentials.secret_key: required credential "secret_key" is not set`},
		},
		"missing required setting": {
			providers: "uber:\n  credentials: { client_secret: cs_1 }\n",
			want:      []string{`tenant "tableflow": provider "uber": settings.customer_id: required setting "customer_id" is not set; add it under tenants.tableflow.providers.uber.settings (Uber Direct customer id)`},
		},
		"secret in settings": {
			providers: "stripe:\n  settings: { secret_key: sk_1 }\n  credentials: { webhook_secret: wh_1 }\n",
			want: []string{
				`tenant "tableflow": provider "stripe": settings.secret_key: "secret_key" is a credential: move it from tenants.tableflow.providers.stripe.settings to tenants.tableflow.providers.stripe.credentials`,
				`tenant "tableflow": provider "stripe": credentials.secret_key: required credential "secret_key" is not set`,
			},
		},
		"setting in credentials": {
			providers: stripeOK + "uber:\n  credentials: { client_secret: cs_1, customer_id: c_1 }\n",
			want: []string{
				`tenant "tableflow": provider "uber": credentials.customer_id: "customer_id" is a setting, not a credential: move it from tenants.tableflow.providers.uber.credentials to tenants.tableflow.providers.uber.settings`,
				`tenant "tableflow": provider "uber": settings.customer_id: required setting "customer_id" is not set`,
			},
		},
		"base_url in credentials": {
			providers: "stripe:\n  credentials: { secret_key: sk_1, webhook_secret: wh_1, base_url: http://x }\n",
			want:      []string{`tenant "tableflow": provider "stripe": credentials.base_url: "base_url" is a setting, not a credential`},
		},
		"unknown setting": {
			providers: "stripe:\n  settings: { descriptor: X }\n  credentials: { secret_key: sk_1, webhook_secret: wh_1 }\n",
			want:      []string{`tenant "tableflow": provider "stripe": settings.descriptor: unknown setting "descriptor" (settings of this plugin: base_url, statement_descriptor)`},
		},
		"unknown credential": {
			providers: "stripe:\n  credentials: { secret_key: sk_1, webhook_secret: wh_1, api_key: k }\n",
			want:      []string{`tenant "tableflow": provider "stripe": credentials.api_key: unknown credential "api_key" (credentials of this plugin: secret_key, webhook_secret)`},
		},
		"unknown fields checked on a disabled provider": {
			providers: stripeOK + "uber: { enabled: false, settings: { customer: c } }\n",
			want:      []string{`tenant "tableflow": provider "uber": settings.customer: unknown setting "customer" (settings of this plugin: base_url, customer_id)`},
		},
		"default capability not offered": {
			providers: stripeOK,
			defaults:  "{ delivery: stripe }",
			want:      []string{`tenant "tableflow": provider "stripe": defaults.delivery: the plugin does not offer delivery (it offers: payments)`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			body := validTenant + "providers:\n"
			for line := range strings.SplitSeq(strings.TrimRight(tc.providers, "\n"), "\n") {
				body += "  " + line + "\n"
			}
			if tc.defaults != "" {
				body += "defaults: " + tc.defaults + "\n"
			}
			c := mustParse(t, tenantYAML(body), nil)
			err := c.ValidateProviders(catalog())
			got := problems(err)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(got), len(tc.want), err)
			}
			for i, want := range tc.want {
				if !strings.HasPrefix(got[i], want) {
					t.Errorf("problem %d = %q\nwant prefix   %q", i, got[i], want)
				}
			}
		})
	}
}

func TestValidateProvidersEmptyCatalog(t *testing.T) {
	c := mustParse(t, example, exampleEnv())
	err := c.ValidateProviders(nil)
	want := `tenant "tableflow": provider "stripe": no plugin provides it (available: none)`
	if err == nil || err.Error() != want {
		t.Errorf("ValidateProviders(nil) = %v, want %s", err, want)
	}
}

// sentinel stands for a secret; it must never appear in an error or in
// printed configuration.
const sentinel = "SENTINEL-7f3a9c-do-not-print-0123456789"

func TestSecretsNeverPrinted(t *testing.T) {
	env := map[string]string{"SECRET": sentinel, "KEY": sentinel + "-key"}
	parseErrors := map[string]string{
		"secret api key in an invalid hashed form": tenantYAML("api_keys: [\"sha256:" + sentinel + "\"]\n"),
		"short-looking secret api key":             tenantYAML("api_keys: [\"" + sentinel[:20] + "\"]\n"),
		"secret api key shared by tenants":         "tenants:\n  a: { api_keys: [\"${KEY}\"] }\n  b: { api_keys: [\"${KEY}\"] }\n",
		"credential with unknown sibling key":      tenantYAML(validTenant + "providers:\n  stripe:\n    credentials: { secret_key: " + sentinel + " }\n    enabeld: true\n"),
		"credential with bad reference":            tenantYAML(validTenant + "providers:\n  stripe:\n    credentials: { secret_key: \"" + sentinel + "${\" }\n"),
		"credential with bad variable name":        tenantYAML(validTenant + "providers:\n  stripe:\n    credentials: { secret_key: \"${" + sentinel + "}\" }\n"),
		"credential as a list":                     tenantYAML(validTenant + "providers:\n  stripe:\n    credentials: { secret_key: [" + sentinel + "] }\n"),
		"secret in a bool field":                   tenantYAML(validTenant + "providers:\n  stripe: { enabled: \"${SECRET}\" }\n"),
		"secret in a duration field":               "http: { read_timeout: \"${SECRET}\" }\n",
		"secret in an int field":                   "http: { max_body_bytes: \"${SECRET}\" }\n",
	}
	for name, src := range parseErrors {
		t.Run("parse/"+name, func(t *testing.T) {
			_, err := Parse([]byte(src), "pipecore.yaml", lookup(env))
			if err == nil {
				t.Fatal("Parse succeeded; the case must produce an error")
			}
			if strings.Contains(err.Error(), sentinel) || strings.Contains(err.Error(), sentinel[:20]) {
				t.Errorf("error leaks the secret:\n%s", err)
			}
		})
	}

	providerErrors := map[string]string{
		"secret in settings":     "stripe:\n  settings: { secret_key: \"${SECRET}\" }\n",
		"unknown credential":     "stripe:\n  credentials: { secret_key: \"${SECRET}\", webhook_secret: x, token: \"${SECRET}\" }\n",
		"setting in credentials": "uber:\n  credentials: { customer_id: \"${SECRET}\", client_secret: \"${SECRET}\" }\n",
		"unknown plugin":         "strpe:\n  credentials: { secret_key: \"${SECRET}\" }\n",
	}
	for name, providers := range providerErrors {
		t.Run("providers/"+name, func(t *testing.T) {
			body := "api_keys: [\"${KEY}\"]\nproviders:\n"
			for line := range strings.SplitSeq(strings.TrimRight(providers, "\n"), "\n") {
				body += "  " + line + "\n"
			}
			c := mustParse(t, tenantYAML(body), env)
			err := c.ValidateProviders(catalog())
			if err == nil {
				t.Fatal("ValidateProviders succeeded; the case must produce an error")
			}
			if strings.Contains(err.Error(), sentinel) {
				t.Errorf("error leaks the secret:\n%s", err)
			}
		})
	}

	c := mustParse(t, tenantYAML("api_keys: [\"${KEY}\"]\nproviders:\n  stripe:\n    credentials: { secret_key: \"${SECRET}\" }\n"), env)
	tf := c.Tenants["tableflow"]
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	logger.Info("config", "config", *c, "ptr", c, "tenant", tf, "provider", tf.Providers["stripe"])
	slog.New(slog.NewTextHandler(&logs, nil)).Info("config", "config", *c, "tenant", tf)
	printed := map[string]string{
		"Redacted":        toYAML(c.Redacted()),
		"String":          c.String(),
		"%v":              fmt.Sprintf("%v", c),
		"%+v":             fmt.Sprintf("%+v", *c),
		"%#v":             fmt.Sprintf("%#v", c),
		"%d":              fmt.Sprintf("%d", *c),
		"%x tenant":       fmt.Sprintf("%x", tf),
		"%+v tenant":      fmt.Sprintf("%+v", tf),
		"%#v provider":    fmt.Sprintf("%#v", tf.Providers["stripe"]),
		"%s provider map": fmt.Sprintf("%s", tf.Providers),
		"%v tenant map":   fmt.Sprintf("%v", c.Tenants),
		"slog":            logs.String(),
	}
	for name, s := range printed {
		if strings.Contains(s, sentinel) || strings.Contains(strings.ToLower(s), strings.ToLower(sentinel)) {
			t.Errorf("%s leaks the secret:\n%s", name, s)
		}
		if !strings.Contains(s, "[redacted]") {
			t.Errorf("%s does not show the redaction marker:\n%s", name, s)
		}
	}
}

func TestRedacted(t *testing.T) {
	hashed := "sha256:" + strings.Repeat("0f", 32)
	src := tenantYAML("api_keys: [" + testAPIKey + ", \"" + hashed + "\"]\nproviders:\n  stripe:\n    settings: { base_url: http://fake }\n    credentials: { secret_key: sk_1, webhook_secret: \"\" }\n")
	c := mustParse(t, src, nil)
	r := c.Redacted()
	sum := sha256.Sum256([]byte(testAPIKey))
	tf := r.Tenants["tableflow"]
	if want := "sha256:" + hex.EncodeToString(sum[:]); tf.APIKeys[0] != want {
		t.Errorf("plain key printed as %q, want %q", tf.APIKeys[0], want)
	}
	if tf.APIKeys[1] != hashed {
		t.Errorf("hashed key printed as %q, want it unchanged", tf.APIKeys[1])
	}
	s := tf.Providers["stripe"]
	if s.Credentials["secret_key"] != "[redacted]" || s.Credentials["webhook_secret"] != "" {
		t.Errorf("credentials = %v, want secret_key redacted and the empty one left empty", s.Credentials)
	}
	if s.Settings["base_url"] != "http://fake" || s.Enabled == nil || !*s.Enabled {
		t.Errorf("settings = %v, enabled = %v", s.Settings, s.Enabled)
	}
	if c.Tenants["tableflow"].APIKeys[0] != testAPIKey || c.Tenants["tableflow"].Providers["stripe"].Credentials["secret_key"] != "sk_1" {
		t.Error("Redacted modified the original")
	}
	out := c.String()
	for _, want := range []string{"listen: 127.0.0.1:8080", "read_timeout: 30s", "secret_key: '[redacted]'", "enabled: true"} {
		if !strings.Contains(out, want) {
			t.Errorf("String() lacks %q:\n%s", want, out)
		}
	}
	if r2 := (&Config{}).Redacted(); r2.Tenants != nil {
		t.Error("Redacted of an empty config invented tenants")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte("tenants:\n  a: &a { api_keys: [x] }\n  b: { <<: *a }\n"))
	f.Add([]byte("log: ${A}$${B}${\n"))
	f.Add([]byte("- [a, {b: c}]\n---\nx: y\n"))
	env := lookup(exampleEnv())
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml", func(name string) (string, bool) {
			if v, ok := env(name); ok {
				return v, true
			}
			return "v", name != "UNSET"
		})
		if err != nil {
			if c != nil {
				t.Error("config returned with an error")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Errorf("Parse accepted a config that Validate rejects: %v", err)
		}
		_ = c.String()
		_ = c.ValidateProviders(catalog())
	})
}
