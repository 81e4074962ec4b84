// Command pipecore-plugin-rappi is PipeCore's Rappi delivery provider: it
// quotes, books, tracks and cancels Rappi courier deliveries and turns
// Rappi's signed status webhooks into delivery.* events. The gateway
// launches it; it is not meant to be run by hand. See README.md.
package main

import "github.com/pipecore/pipecore/sdk/providerserver"

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() { providerserver.Serve(newProvider()) }
