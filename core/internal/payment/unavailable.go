package payment

import "github.com/pipecore/pipecore/core/internal/pluginhost"

// errUnavailable is the plugin host's "plugin not running" error.
var errUnavailable = pluginhost.ErrUnavailable
