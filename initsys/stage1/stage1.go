// Package stage1 is /init in the initramfs: it mounts /proc, /sys and /dev,
// puts the console on fds 0-2, loads the boot modules, finds the slot's root
// partition by PARTLABEL, opens it through dm-verity when the command line
// names a root hash (verity.go), mounts its squashfs read-only and hands over to
// stage 2 (/sbin/basalt-init in that root) with switch_root.
//
// Boot is the list of steps below, run top to bottom. A failed essential
// step prints "basalt: stage1: <step>: <error>" and reboots after a 5-second
// countdown, so that the bootloader can fall back to the other slot; with
// basalt.debug=1 on the kernel command line it halts instead.
package stage1

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/initsys/blockdev"
	"github.com/basaltos/basalt/initsys/modules"
)

const (
	newRoot = "/newroot"
	// partitionWait bounds the wait for the root partition: virtio and
	// USB disks are probed asynchronously after their driver loads.
	partitionWait = 30 * time.Second
	rebootDelay   = 5 * time.Second
)

// state is what the steps learn and pass on.
type state struct {
	cmdline Cmdline
	rootDev string
	// With verity, rootDev is the mapped device and rawDev the partition.
	rawDev string
	verity bool
}

type step struct {
	name      string
	essential bool // only an essential step's failure fails the boot
	run       func(*state) error
}

var steps = []step{
	{"mount /proc /sys /dev", true, mountKernelFS},
	{"console", false, openConsole},
	{"cmdline", true, readCmdline},
	{"modules", false, loadModules},
	{"find root", true, findRoot},
	{"verity", true, openVerity},
	{"mount root", true, mountRoot},
	{"switch_root", true, switchRoot},
}

// Main runs stage 1; it never returns.
func Main() {
	s := &state{cmdline: Cmdline{Slot: contract.SlotA}}
	defer func() {
		if r := recover(); r != nil {
			fail(s, "panic", fmt.Errorf("%v\n%s", r, debug.Stack()))
		}
	}()
	for _, st := range steps {
		err := st.run(s)
		switch {
		case err == nil:
		case st.essential:
			fail(s, st.name, err)
		default:
			logf("%s: warning: %v", st.name, err)
		}
	}
	// switchRoot execs stage 2 or stops when the root has none.
	halt()
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stdout, contract.MarkerPrefix+"stage1: "+format+"\n", args...)
}

// fail reports a failed step and reboots, or halts with basalt.debug=1.
func fail(s *state, step string, err error) {
	logf("%s: %v", step, err)
	if s.cmdline.Debug {
		logf("%s=1: halted for debugging (no shell yet); power off to leave", contract.CmdlineDebug)
		halt()
	}
	for left := rebootDelay; left > 0; left -= time.Second {
		logf("rebooting in %d s", left/time.Second)
		time.Sleep(time.Second)
	}
	unix.Sync()
	err = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	logf("reboot: %v", err)
	halt()
}

// halt stops forever without exiting: PID 1 exiting panics the kernel. A
// sleeping loop, not select{}: the Go runtime kills a process whose
// goroutines all block forever.
func halt() {
	for {
		time.Sleep(time.Hour)
	}
}

func mountKernelFS(*state) error {
	const secure = unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV
	for _, m := range []struct {
		dir, fstype string
		flags       uintptr
	}{
		{"/proc", "proc", secure}, {"/sys", "sysfs", secure}, {"/dev", "devtmpfs", unix.MS_NOSUID},
	} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return err
		}
		err := unix.Mount(m.fstype, m.dir, m.fstype, m.flags, "")
		if err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.dir, err)
		}
	}
	return nil
}

// openConsole makes /dev/console fds 0, 1 and 2 (the kernel does that only
// when the initramfs holds a /dev/console node).
func openConsole(*state) error {
	fd, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return fmt.Errorf("open /dev/console: %w", err)
	}
	for i := 0; i < 3; i++ {
		if fd == i {
			continue
		}
		if err := unix.Dup3(fd, i, 0); err != nil {
			return fmt.Errorf("dup /dev/console to fd %d: %w", i, err)
		}
	}
	if fd > 2 {
		unix.Close(fd)
	}
	return nil
}

func readCmdline(s *state) error {
	data, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	s.cmdline, err = ParseCmdline(string(data))
	return err
}

func loadModules(*state) error {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return fmt.Errorf("uname: %w", err)
	}
	dir := filepath.Join(contract.ModulesDir, unix.ByteSliceToString(u.Release[:]))
	start := time.Now()
	n, err := modules.Load(dir)
	logf("loaded %d modules from %s in %d ms", n, dir, time.Since(start).Milliseconds())
	return err
}

func findRoot(s *state) error {
	label := s.cmdline.Slot.PartLabel()
	ctx, cancel := context.WithTimeout(context.Background(), partitionWait)
	defer cancel()
	found, err := blockdev.Wait(ctx, "/sys", label)
	if err != nil {
		return err
	}
	s.rootDev = found[label].Path("/dev")
	return nil
}

func mountRoot(s *state) error {
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return err
	}
	label := s.cmdline.Slot.PartLabel()
	if err := unix.Mount(s.rootDev, newRoot, "squashfs", unix.MS_RDONLY|unix.MS_NODEV, ""); err != nil {
		hint := superblockHint(s.rootDev)
		if s.verity {
			hint = verityHint()
			label += " on " + s.rawDev
		}
		return fmt.Errorf("mount %s (%s) on %s as squashfs: %w%s", s.rootDev, label, newRoot, err, hint)
	}
	fmt.Printf("%s (%d ms since kernel start)\n", contract.RootMountedMarker(s.cmdline.Slot), sinceBoot().Milliseconds())
	return nil
}

// superblockHint says what is at the start of a device that did not mount.
func superblockHint(dev string) string {
	f, err := os.Open(dev)
	if err != nil {
		return ""
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := f.ReadAt(magic, 0); err != nil {
		return fmt.Sprintf(" (reading its superblock: %v)", err)
	}
	if bytes.Equal(magic, []byte("hsqs")) {
		return " (it has a squashfs magic: is the squashfs module loaded?)"
	}
	return fmt.Sprintf(" (no squashfs superblock: magic %x, want %x \"hsqs\")", magic, "hsqs")
}

func sinceBoot() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// switchRoot moves /proc /sys /dev into the new root, makes it /, deletes
// the initramfs contents and execs stage 2. A root without stage 2 stops
// here (the marker above is the end of this boot).
func switchRoot(s *state) error {
	if _, err := os.Lstat(newRoot + contract.InitPath); err != nil {
		logf("%s in root %s: %v; stopping here", contract.InitPath, s.cmdline.Slot, errors.Unwrap(err))
		halt()
	}
	logf("switch_root to %s, exec %s", newRoot, contract.InitPath)
	return mount.SwitchRoot(newRoot, contract.InitPath)
}
