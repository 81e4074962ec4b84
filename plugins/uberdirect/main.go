// Command pipecore-plugin-uberdirect is PipeCore's Uber Direct delivery
// provider (Delivery-as-a-Service API, OAuth client credentials). The
// gateway launches it; it is not meant to be run by hand. See README.md.
package main

import "github.com/pipecore/pipecore/sdk/providerserver"

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() { providerserver.Serve(newProvider()) }
