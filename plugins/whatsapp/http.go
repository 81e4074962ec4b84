package main

import (
	"context"

	"github.com/pipecore/pipecore/sdk/provider/httpapi"
)

// api sends both transports' calls: errors read "whatsapp: <op>: ...",
// and failures are logged as "whatsapp call failed".
var api = &httpapi.Client{Name: "whatsapp"}

// logAttrs are the failure log line's attributes for a transport's
// sending account.
func logAttrs(transport, account string) []any {
	return []any{"transport", transport, "account", account}
}

// logFailure logs a classified failure (never a secret) through the
// request's logger.
func logFailure(ctx context.Context, op, transport, account string, status int, err error) {
	api.Fail(ctx, op, status, err, logAttrs(transport, account)...)
}
