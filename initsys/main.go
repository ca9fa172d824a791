// Package initsys is everything that runs on the device: stage 1 in the
// initramfs, PID 1 of the slot root, and the on-device commands.
package initsys

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/basaltos/basalt/initsys/stage1"
)

// Main runs the device binary with its command line and returns the exit code.
func Main(args []string) int {
	if os.Getpid() == 1 && filepath.Base(args[0]) == "init" {
		stage1.Main() // does not return
	}
	fmt.Fprintln(os.Stderr, "basalt-init: stage 2 is not built yet")
	return 1
}
