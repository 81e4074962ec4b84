// Command crashplugin is a plugin build that dies at start: the lifecycle
// test swaps to it and expects the gateway to refuse it and keep traffic on
// the serving version.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "crashplugin: cannot load its certificate bundle; exiting")
	os.Exit(1)
}
