package main

import (
	"reflect"
	"testing"
	"time"

	"github.com/pipecore/pipecore/sdk/provider"
)

func TestInfo(t *testing.T) {
	info := newProvider().Info()
	if err := info.Validate(); err != nil {
		t.Fatalf("Info().Validate() = %v", err)
	}
	if info.Name != "stripe" || info.Version != version {
		t.Errorf("Name, Version = %q, %q; want stripe, %q", info.Name, info.Version, version)
	}

	fields := map[string]struct{ secret, required bool }{
		fieldSecretKey:        {secret: true, required: true},
		fieldWebhookSecret:    {secret: true},
		provider.BaseURLField: {},
		fieldAccount:          {},
	}
	if len(info.Fields) != len(fields) {
		t.Errorf("Info declares %d fields, want %d", len(info.Fields), len(fields))
	}
	for name, want := range fields {
		t.Run(name, func(t *testing.T) {
			f, ok := info.Field(name)
			if !ok {
				t.Fatalf("field %q not declared", name)
			}
			if f.Secret != want.secret || f.Required != want.required {
				t.Errorf("field %q: Secret, Required = %v, %v; want %v, %v", name, f.Secret, f.Required, want.secret, want.required)
			}
			if f.Doc == "" {
				t.Errorf("field %q has no Doc", name)
			}
		})
	}

	want := provider.WebhookSpec{Scheme: provider.SchemeStripe, Header: "Stripe-Signature", SecretField: fieldWebhookSecret, Tolerance: 300 * time.Second, DedupKey: []string{"json:id"}}
	if info.Webhook == nil || !reflect.DeepEqual(*info.Webhook, want) {
		t.Errorf("Webhook = %+v, want %+v", info.Webhook, want)
	}
}
