package config

import (
	"strings"
	"testing"
	"time"
)

const endpointBase = `
tenants:
  acme:
    api_keys: ["pc_live_acme_0123456789abcdefghijklmnopqrstuvwxyz"]
    endpoints:
%s
`

const goodSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func TestEndpoints(t *testing.T) {
	tests := map[string]struct {
		yaml string
		want string // "" means valid
	}{
		"valid": {yaml: `      - { id: backend, url: "https://api.acme.example/hooks", secret: "` + goodSecret + `", types: ["payment.*", "delivery.completed"], ordered: true }`},
		"bad url": {yaml: `      - { id: backend, url: "ftp://x", secret: "` + goodSecret + `" }`,
			want: `tenants.acme.endpoints[0].url: tenant "acme": endpoint "backend": url must be an absolute http(s) URL`},
		"bad secret": {yaml: `      - { id: backend, url: "https://x.example", secret: "hunter2" }`,
			want: `endpoints[0].secret: tenant "acme": endpoint "backend": secret must start with "whsec_"`},
		"short secret": {yaml: `      - { id: backend, url: "https://x.example", secret: "whsec_c2hvcnQ=" }`,
			want: "24 to 64 random bytes"},
		"duplicate id": {yaml: "      - { id: a, url: \"https://x.example\", secret: \"" + goodSecret + "\" }\n      - { id: a, url: \"https://y.example\", secret: \"" + goodSecret + "\" }",
			want: `endpoint id "a" is used twice`},
		"bad type": {yaml: `      - { id: a, url: "https://x.example", secret: "` + goodSecret + `", types: ["Payment Confirmed"] }`,
			want: `type filter "Payment Confirmed"`},
		"unknown key": {yaml: `      - { id: a, url: "https://x.example", secret: "` + goodSecret + `", colour: red }`,
			want: `tenants.acme.endpoints[0]: unknown key "colour"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := Parse([]byte(strings.Replace(endpointBase, "%s", tc.yaml, 1)), "pipecore.yaml", func(string) (string, bool) { return "", false })
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				e := c.Tenants["acme"].Endpoints[0]
				if !e.IsEnabled() || !e.Ordered || len(e.Types) != 2 {
					t.Fatalf("endpoint = %+v", e)
				}
				if out := c.String(); strings.Contains(out, goodSecret) || !strings.Contains(out, "[redacted]") {
					t.Fatalf("String() does not redact the endpoint secret:\n%s", out)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse error = %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), goodSecret) {
				t.Fatalf("error leaks the secret: %v", err)
			}
		})
	}
}

func TestDeliveryDefaults(t *testing.T) {
	c, err := Parse([]byte("tenants: {}\n"), "x.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Delivery.Schedule) != 9 || c.Delivery.Timeout.Duration().Seconds() != 15 || c.Webhooks.MaxBodyBytes != 5<<20 || c.Webhooks.DedupRetention.Duration().Hours() != 192 ||
		c.Delivery.DisableAfter.Duration().Hours() != 120 {
		t.Fatalf("defaults: %+v %+v", c.Delivery, c.Webhooks)
	}
	// A negative disable_after (never disable) is kept as written.
	c, err = Parse([]byte("tenants: {}\ndelivery: { disable_after: -1s }\n"), "x.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Delivery.DisableAfter.Duration() != -time.Second {
		t.Fatalf("disable_after: %s", c.Delivery.DisableAfter)
	}
}
