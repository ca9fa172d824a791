// Command basalt-init is basalt's device binary: stage 1 (/init in the
// initramfs), PID 1 of the running system, and the on-device commands.
package main

import (
	"os"

	"github.com/basaltos/basalt/initsys"
)

func main() { os.Exit(initsys.Main(os.Args)) }
