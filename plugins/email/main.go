// Command pipecore-plugin-email is PipeCore's email messaging provider. It
// sends email through Twilio SendGrid (v3 Mail Send) or Resend, chosen per
// tenant by the "transport" setting, and turns their event webhooks into
// the gateway's email.* events. The gateway launches it; it is not meant to
// be run by hand. See README.md.
package main

import "github.com/pipecore/pipecore/sdk/providerserver"

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() { providerserver.Serve(newProvider()) }
