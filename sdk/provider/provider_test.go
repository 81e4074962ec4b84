package provider_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
)

func TestSecretNeverPrints(t *testing.T) {
	const sentinel = "SENTINEL-sk-live-123"
	s := provider.NewSecret(sentinel)
	tenant := provider.NewTenant("acme", map[string]string{"mode": "test"}, map[string]string{"key": sentinel})
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "secret", s, "tenant", tenant)
	j, _ := json.Marshal(map[string]any{"s": s})
	outputs := map[string]string{
		"%v": fmt.Sprintf("%v", s), "%s": fmt.Sprintf("%s", s), "%+v": fmt.Sprintf("%+v", s), "%#v": fmt.Sprintf("%#v", s),
		"%q": fmt.Sprintf("%q", s), "struct": fmt.Sprintf("%+v", struct{ S provider.Secret }{s}),
		"tenant %+v": fmt.Sprintf("%+v %#v", tenant, tenant), "json": string(j), "slog": logs.String(),
	}
	for name, out := range outputs {
		if strings.Contains(out, sentinel) {
			t.Errorf("%s leaks the secret: %s", name, out)
		}
	}
	if s.Reveal() != sentinel || tenant.Secret("key").Reveal() != sentinel {
		t.Fatal("Reveal lost the value")
	}
}

func TestInfoValidate(t *testing.T) {
	good := provider.Info{Name: "stripe", Version: "1.0.0", Fields: []provider.Field{{Name: "secret_key", Secret: true}},
		Webhook: &provider.WebhookSpec{Scheme: provider.SchemeStripe, SecretField: "secret_key"}}
	tests := map[string]struct {
		mut  func(*provider.Info)
		want string
	}{
		"valid":              {mut: func(*provider.Info) {}},
		"upper-case name":    {mut: func(i *provider.Info) { i.Name = "Stripe" }, want: "name"},
		"no version":         {mut: func(i *provider.Info) { i.Version = "" }, want: "version"},
		"duplicate field":    {mut: func(i *provider.Info) { i.Fields = append(i.Fields, i.Fields[0]) }, want: "twice"},
		"webhook not secret": {mut: func(i *provider.Info) { i.Fields = []provider.Field{{Name: "secret_key"}} }, want: "secret field"},
		"webhook no scheme":  {mut: func(i *provider.Info) { i.Webhook = &provider.WebhookSpec{SecretField: "secret_key"} }, want: "scheme"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			i := good
			i.Fields = append([]provider.Field(nil), good.Fields...)
			tc.mut(&i)
			err := i.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestMoneyValidate(t *testing.T) {
	tests := map[string]struct {
		m  provider.Money
		ok bool
	}{
		"clp":         {provider.Money{Amount: 12990, Currency: "CLP"}, true},
		"zero":        {provider.Money{Amount: 0, Currency: "USD"}, false},
		"negative":    {provider.Money{Amount: -1, Currency: "USD"}, false},
		"lower case":  {provider.Money{Amount: 1, Currency: "usd"}, false},
		"four letter": {provider.Money{Amount: 1, Currency: "USDT"}, false},
		"digits":      {provider.Money{Amount: 1, Currency: "U5D"}, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if err := tc.m.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate(%+v) = %v, want ok=%v", tc.m, err, tc.ok)
			}
		})
	}
}

func TestKindOf(t *testing.T) {
	wrapped := fmt.Errorf("create: %w", provider.RateLimited(errors.New("429"), time.Second))
	if provider.KindOf(wrapped) != provider.KindRateLimited || provider.RetryAfter(wrapped) != time.Second {
		t.Fatalf("wrapped rate limit lost: %v", wrapped)
	}
	if provider.KindOf(nil) != 0 || provider.KindOf(errors.New("x")) != provider.KindRetryable {
		t.Fatal("nil or unclassified kinds wrong")
	}
	if provider.KindOf(fmt.Errorf("x: %w", provider.ErrUnsupported)) != provider.KindUnsupported {
		t.Fatal("ErrUnsupported not recognised")
	}
	for k := provider.KindRetryable; k <= provider.KindUnsupported; k++ {
		if provider.ParseKind(k.String()) != k {
			t.Errorf("ParseKind(%q) != %v", k.String(), k)
		}
	}
}

func ExampleMoney() {
	fmt.Println(provider.Money{Amount: 12990, Currency: "CLP"})
	fmt.Println(provider.Money{Amount: 1999, Currency: "USD"})
	// Output:
	// 12990 CLP
	// 19.99 USD
}

func ExampleKindOf() {
	err := fmt.Errorf("charge: %w", provider.WithCode(provider.Permanent(errors.New("card declined")), "card_declined"))
	fmt.Println(provider.KindOf(err), provider.CodeOf(err))
	// Output: permanent card_declined
}

func ExampleSecret() {
	s := provider.NewSecret("sk_live_123")
	fmt.Println(s, fmt.Sprintf("%#v", s))
	// Output: [redacted] [redacted]
}

func TestWebhookVariants(t *testing.T) {
	meta := &provider.WebhookSpec{Scheme: provider.SchemeMetaSHA256, SecretField: "app_secret"}
	twilio := &provider.WebhookSpec{Scheme: provider.SchemeTwilio, SecretField: "auth_token"}
	meta.VariantSetting = "transport"
	meta.Variants = map[string]*provider.WebhookSpec{"twilio": twilio}
	info := provider.Info{Name: "whatsapp", Version: "1.0.0", Webhook: meta, Fields: []provider.Field{
		{Name: "transport"}, {Name: "app_secret", Secret: true}, {Name: "auth_token", Secret: true},
	}}
	if err := info.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if got := meta.For("twilio"); got != twilio {
		t.Errorf("For(twilio) = %+v, want the twilio variant", got)
	}
	for _, v := range []string{"", "cloud", "unknown"} {
		if got := meta.For(v); got != meta {
			t.Errorf("For(%q) = %+v, want the top-level spec", v, got)
		}
	}
	if got := meta.SecretFields(); !slices.Equal(got, []string{"app_secret", "auth_token"}) {
		t.Errorf("SecretFields = %v", got)
	}

	bad := info
	bad.Fields = []provider.Field{{Name: "transport", Secret: true}, {Name: "app_secret", Secret: true}, {Name: "auth_token", Secret: true}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "variant setting") {
		t.Errorf("secret variant setting: err = %v", err)
	}
	missing := info
	missing.Fields = []provider.Field{{Name: "transport"}, {Name: "app_secret", Secret: true}}
	if err := missing.Validate(); err == nil || !strings.Contains(err.Error(), `variant "twilio"`) {
		t.Errorf("variant with an undeclared secret: err = %v", err)
	}
}
