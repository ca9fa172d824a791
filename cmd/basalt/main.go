// Command basalt builds immutable edge-OS disk images and update bundles
// from one declarative YAML spec.
package main

import (
	"os"

	"github.com/basaltos/basalt/cmd/basalt/cli"
)

func main() { os.Exit(cli.Run(os.Args[1:])) }
