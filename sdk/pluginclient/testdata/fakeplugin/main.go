// Command fakeplugin is a payments plugin for pluginclient's tests. The
// tenant setting "behavior" makes CreatePayment misbehave on purpose:
// "crash" exits the process, "panic" panics in the handler, "env:NAME"
// reports whether NAME is set in the plugin's environment, "log" logs a
// line through provider.Log.
package main

import (
	"context"
	"errors"
	"os"
	"strings"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/providerserver"
	"github.com/pipecore/pipecore/sdk/providertest"
)

type plugin struct{ *providertest.FakePayments }

func (p plugin) CreatePayment(ctx context.Context, r payments.CreateRequest) (payments.Payment, error) {
	switch b := r.Tenant.Setting("behavior"); {
	case b == "crash":
		os.Exit(3)
	case b == "panic":
		panic("fakeplugin: asked to panic")
	case strings.HasPrefix(b, "env:"):
		name := strings.TrimPrefix(b, "env:")
		if _, ok := os.LookupEnv(name); ok {
			return payments.Payment{}, provider.Permanent(errors.New("env " + name + " is set"))
		}
		return payments.Payment{}, provider.Permanent(errors.New("env " + name + " is unset"))
	case b == "log":
		provider.Log(ctx).Info("fake create", "reference", r.Reference)
	}
	return p.FakePayments.CreatePayment(ctx, r)
}

func main() {
	providerserver.Serve(plugin{&providertest.FakePayments{Name: "fakeplugin"}})
}
