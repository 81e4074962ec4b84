// Package wire carries the provider contract over go-plugin and gRPC: the
// handshake, the go-plugin Plugin implementation, the gRPC servers that wrap
// a plugin author's Go implementation, the clients that give the host the
// same Go interfaces back, the Go⇄proto conversions and the mapping of
// provider error kinds to gRPC statuses and back.
//
// Nothing here is part of the SDK's public API; providerserver,
// pluginclient and providertest expose what authors and the core need.
package wire
