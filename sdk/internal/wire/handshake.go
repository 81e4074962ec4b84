package wire

import (
	"context"
	"errors"
	"log/slog"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/pipecore/pipecore/sdk/provider"
)

// ProtocolVersion is the go-plugin protocol version of the v1 contract
// (package pipecore.provider.v1). It changes only with a breaking change of
// the wire contract.
//
// The version is negotiated in go-plugin's handshake: the host lists the
// versions it speaks (ProtocolVersions, sent to the plugin in
// PLUGIN_PROTOCOL_VERSIONS), the plugin answers with the newest one it
// serves too, and a plugin that serves none of them is refused by the host
// with both versions named. A future v2 contract adds its version here and
// its plugin set to HostPluginSet, so that the host keeps running v1
// plugins while v2 plugins appear.
const ProtocolVersion = 1

// ProtocolVersions returns the wire protocol versions the host speaks,
// oldest first.
func ProtocolVersions() []int { return []int{ProtocolVersion} }

// PluginName is the single go-plugin plugin every provider binary serves.
const PluginName = "provider"

// MaxMessageBytes bounds every gRPC message in both directions, so a
// misbehaving plugin cannot make the gateway allocate without limit.
const MaxMessageBytes = 16 << 20

// Handshake is shared by host and plugin. The cookie only stops a plugin
// binary from being run by hand by mistake; security comes from checksums
// and AutoMTLS.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "PIPECORE_PLUGIN_COOKIE",
	MagicCookieValue: "4c0f7d1e0b5e4f9a8d0a3c7b2e6f1a95",
}

// EnvGatewayPID names the environment variable carrying the gateway's PID;
// the plugin exits when its parent is no longer that process.
const EnvGatewayPID = "PIPECORE_GATEWAY_PID"

// Plugin is the go-plugin GRPCPlugin of the provider contract. On the plugin
// side Impl is the author's provider; on the host side Impl is nil.
type Plugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl provider.Provider
	// Log is the base logger of the plugin's calls; nil means slog.Default().
	Log *slog.Logger
}

var _ plugin.GRPCPlugin = (*Plugin)(nil)

// GRPCServer registers the services Impl implements.
func (p *Plugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errors.New("wire: no provider to serve")
	}
	RegisterWithLogger(s, p.Impl, p.Log)
	return nil
}

// GRPCClient returns a *Client over conn.
func (p *Plugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return NewClient(conn), nil
}

// HostPluginSet returns the host's versioned plugin set: one entry per
// version in ProtocolVersions.
func HostPluginSet() map[int]plugin.PluginSet { return PluginSet(nil, nil) }

// PluginSet returns the versioned plugin set: impl and log are nil on the
// host side.
func PluginSet(impl provider.Provider, log *slog.Logger) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolVersion: {PluginName: &Plugin{Impl: impl, Log: log}},
	}
}
