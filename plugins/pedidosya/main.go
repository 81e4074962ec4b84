// Command pipecore-plugin-pedidosya is PipeCore's PedidosYa Envíos
// (Courier API v3) delivery provider. The gateway launches it; it is not
// meant to be run by hand. See README.md.
package main

import "github.com/pipecore/pipecore/sdk/providerserver"

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() { providerserver.Serve(newProvider()) }
