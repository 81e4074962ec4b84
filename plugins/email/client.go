package main

import (
	"context"
	"net/http"

	"github.com/pipecore/pipecore/sdk/provider/httpapi"
)

// The transports' API clients: errors read "email: sendgrid: <op>: ..." or
// "email: resend: <op>: ...", and failures are logged as "email: sendgrid
// call failed" or "email: resend call failed".
var (
	sendGridAPI = &httpapi.Client{Name: "email: " + transportSendGrid}
	resendAPI   = &httpapi.Client{Name: "email: " + transportResend}
)

// api returns the client of the account's transport.
func (a account) api() *httpapi.Client {
	if a.transport == transportResend {
		return resendAPI
	}
	return sendGridAPI
}

// request is a POST of body (JSON) to a.base+path with the tenant's key as
// a Bearer token plus the extra headers.
func (a account) request(op, path string, extra http.Header, body []byte) httpapi.Request {
	h := http.Header{}
	for k, vs := range extra {
		h[k] = vs
	}
	h.Set("Authorization", "Bearer "+a.apiKey.Reveal())
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "pipecore-plugin-email/"+version)
	return httpapi.Request{
		Op: op, Method: http.MethodPost, URL: a.base + path, Header: h, Body: body,
		Secrets:  []string{a.apiKey.Reveal()},
		LogAttrs: []any{"transport", a.transport},
	}
}

// fail logs a classified failure of op (never a secret or an address) and
// returns it.
func (a account) fail(ctx context.Context, op string, status int, err error) error {
	return a.api().Fail(ctx, op, status, err, "transport", a.transport)
}
