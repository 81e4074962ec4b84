// Package provider defines the vocabulary shared by every PipeCore provider
// plugin: what a plugin is ([Provider], [Info], [Field]), on whose behalf it
// is called ([Tenant], [Secret]), the values it exchanges ([Money], [Event])
// and how it reports failure ([Kind]).
//
// The package has no transport dependencies. A plugin author imports it
// together with one capability package (payments, delivery or messaging) and
// providerserver; the gateway core imports it together with pluginclient.
//
// # Errors
//
// Every error a provider returns is classified by a [Kind] so the gateway can
// decide whether to retry: wrap provider failures with [Retryable],
// [RateLimited], [Permanent], [Unauthorized] or [Invalid]. Kinds survive the
// gRPC boundary. An unclassified error is treated as [KindRetryable].
//
// # Secrets
//
// Credentials reach a plugin only inside [Tenant], as [Secret] values whose
// String, GoString, Format, MarshalJSON and LogValue all print "[redacted]".
// Call [Secret.Reveal] at the last moment, where the credential is handed to
// the provider's client.
package provider
