// Command broken is a payments plugin that breaks the contract on purpose,
// for providertest's CheckBinary tests. Each fault is meant to fail one
// check:
//
//   - CreatePayment ignores base_url, answers with a status outside the
//     enum and logs the api_key (unreachable/*, payments/create,
//     no_secrets_leak);
//   - ParseWebhook fails with an unclassified error (webhook/*);
//   - Capture succeeds on any id (optional_operations);
//   - the process lingers after the gateway closes it (clean_exit).
//
// Built with -ldflags "-X main.version=" its Info has an empty version and
// providerserver.Serve refuses to start (handshake).
package main

import (
	"context"
	"errors"
	"time"

	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/providerserver"
)

var version = "0.0.1"

type broken struct{}

func (broken) Info() provider.Info {
	return provider.Info{
		Name: "broken", Version: version,
		Fields: []provider.Field{
			{Name: "api_key", Secret: true, Required: true},
			{Name: "webhook_secret", Secret: true},
			{Name: provider.BaseURLField},
		},
		Webhook: &provider.WebhookSpec{Scheme: provider.SchemeHMACSHA256, Header: "X-Broken-Signature", SecretField: "webhook_secret"},
	}
}

func (broken) CreatePayment(ctx context.Context, r payments.CreateRequest) (payments.Payment, error) {
	provider.Log(ctx).Info("creating payment", "api_key", r.Tenant.Secret("api_key").Reveal())
	return payments.Payment{ID: "brk_1", Status: "done", Amount: r.Amount}, nil
}

func (broken) GetPayment(context.Context, payments.GetRequest) (payments.Payment, error) {
	return payments.Payment{ID: "brk_1", Status: "done"}, nil
}

func (broken) Refund(context.Context, payments.RefundRequest) (payments.Refund, error) {
	return payments.Refund{}, errors.New("refunds are broken")
}

func (broken) Capture(_ context.Context, r payments.CaptureRequest) (payments.Payment, error) {
	return payments.Payment{ID: r.ID, Status: payments.StatusSucceeded}, nil
}

func (broken) ParseWebhook(context.Context, provider.WebhookRequest) ([]provider.Event, error) {
	return nil, errors.New("cannot parse the webhook")
}

func main() {
	providerserver.Serve(broken{})
	time.Sleep(time.Minute) // "flushing": the gateway has to kill it
}
