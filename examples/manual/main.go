// Command pipecore-plugin-manual is PipeCore's "manual" payments provider:
// cash on delivery and bank transfer, where no payment API takes the money
// and an operator confirms it by hand. It is also the smallest complete
// example of a plugin. The gateway launches it; it is not meant to be run
// by hand. See README.md.
package main

import "github.com/pipecore/pipecore/sdk/providerserver"

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() { providerserver.Serve(newProvider()) }
