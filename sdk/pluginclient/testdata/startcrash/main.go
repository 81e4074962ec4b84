// Command startcrash is a plugin binary that dies at start, after saying
// why on stderr.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "startcrash: cannot open its configuration")
	os.Exit(3)
}
