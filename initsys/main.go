// Package initsys is everything that runs on the device: stage 1 in the
// initramfs, PID 1 of the slot root, and the on-device commands. Invoked as
// modprobe (a /sbin/modprobe symlink) it loads kernel modules; as mount and
// umount (/bin/mount, /bin/umount) it mounts for kubelet.
package initsys

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/basaltos/basalt/initsys/ctl"
	"github.com/basaltos/basalt/initsys/modprobe"
	"github.com/basaltos/basalt/initsys/modules"
	"github.com/basaltos/basalt/initsys/mountcmd"
	"github.com/basaltos/basalt/initsys/readbench"
	"github.com/basaltos/basalt/initsys/stage1"
	"github.com/basaltos/basalt/initsys/stage2"
)

const usage = "usage: basalt-init status|config reload|update apply FILE|URL [--reboot]|reboot|poweroff|readbench"

// Main runs the device binary with its command line and returns the exit code.
func Main(args []string) int {
	switch filepath.Base(args[0]) { // personalities: links to basalt-init in the root
	case "modprobe":
		return modprobe.Run(args[1:], os.Stdout, os.Stderr, modules.LoadModule)
	case "mount":
		return mountcmd.Mount(args[1:], os.Stdout, os.Stderr, mountcmd.Linux)
	case "umount":
		return mountcmd.Umount(args[1:], os.Stderr, mountcmd.Linux)
	}
	if os.Getpid() == 1 {
		if filepath.Base(args[0]) == "init" {
			stage1.Main() // does not return
		}
		stage2.Main() // does not return
	}
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		return 2
	}
	var err error
	switch args[1] {
	case "status":
		err = ctl.Status(os.Stdout)
	case "config":
		if len(args) != 3 || args[2] != "reload" {
			fmt.Fprintln(os.Stderr, usage)
			return 2
		}
		err = ctl.ConfigReload(os.Stdout)
	case "update":
		if len(args) < 4 || args[2] != "apply" || len(args) > 5 || (len(args) == 5 && args[4] != "--reboot") {
			fmt.Fprintln(os.Stderr, usage)
			return 2
		}
		err = ctl.UpdateApply(os.Stdout, args[3], len(args) == 5)
	case "reboot":
		err = ctl.Reboot()
	case "poweroff":
		err = ctl.Poweroff()
	case "readbench": // diagnostic: root read throughput with and without dm-verity
		err = readbench.Run(os.Stdout)
	default:
		fmt.Fprintf(os.Stderr, "basalt-init: unknown command %q\n%s\n", args[1], usage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "basalt-init:", err)
		return 1
	}
	return 0
}
