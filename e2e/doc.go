// Package e2e drives the real PipeCore binaries (bin/pipecore and
// bin/plugins/*) over HTTP, against stripe-mock, as a tenant backend and an
// operator would. It imports nothing from the gateway: only what a user
// sees counts.
package e2e
