// Command protoplugin is a plugin built for a wire protocol version the
// host does not speak (2): pluginclient's tests check that it is refused
// with both versions named.
package main

import (
	"github.com/hashicorp/go-plugin"

	"github.com/pipecore/pipecore/sdk/internal/wire"
	"github.com/pipecore/pipecore/sdk/providertest"
)

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: plugin.HandshakeConfig{
			ProtocolVersion:  wire.ProtocolVersion + 1,
			MagicCookieKey:   wire.Handshake.MagicCookieKey,
			MagicCookieValue: wire.Handshake.MagicCookieValue,
		},
		VersionedPlugins: map[int]plugin.PluginSet{
			wire.ProtocolVersion + 1: {wire.PluginName: &wire.Plugin{Impl: &providertest.FakePayments{Name: "protoplugin"}}},
		},
		GRPCServer: plugin.DefaultGRPCServer,
	})
}
