// Command pipecore-plugin-whatsapp is PipeCore's WhatsApp messaging
// provider, over Meta's WhatsApp Cloud API or over Twilio's Messages API
// (which also carries SMS). The gateway launches it; it is not meant to be
// run by hand. See README.md.
package main

import "github.com/pipecore/pipecore/sdk/providerserver"

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() { providerserver.Serve(newProvider()) }
