// Package stage1 is /init in the initramfs: it mounts /proc, /sys and /dev,
// puts the console on fds 0-2, loads the boot modules, finds the slot's root
// partition by PARTLABEL, opens it through dm-verity when the command line
// names a root hash (verity.go), mounts its squashfs read-only and hands over to
// stage 2 (/sbin/basalt-init in that root) with switch_root.
//
// Boot is the sequence of steps below, run by initsys/boot like stage 2's.
// A failed essential step is handed to boot.Policy: "basalt: stage1: boot
// failed: ..." and a reboot after a 5-second countdown, so that the
// bootloader can fall back to the other slot; with basalt.debug=1 on the
// kernel command line an emergency shell when the initramfs has one, or a
// halt. When the slot's root itself is refused (verity, squashfs) stage 1
// first tells the A/B mechanism to boot the other slot (fallback.go), or
// stops when there is none.
package stage1

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/initsys/blockdev"
	"github.com/basaltos/basalt/initsys/boot"
	"github.com/basaltos/basalt/initsys/modules"
	"github.com/basaltos/basalt/initsys/say"
)

const (
	newRoot = "/newroot"
	// partitionWait bounds the wait for the root partition: virtio and
	// USB disks are probed asynchronously after their driver loads.
	partitionWait = 30 * time.Second
	// rebootCountdown lets a reader see why before the reboot.
	rebootCountdown = 5 * time.Second
)

// state is what the steps learn and pass on.
type state struct {
	cmdline Cmdline
	rootDev string
	// With verity, rootDev is the mapped device and rawDev the partition.
	rawDev string
	verity bool
}

func (s *state) steps() []boot.Step {
	return []boot.Step{
		{Name: "kernel-filesystems", Essential: true, Run: mountKernelFS},
		{Name: "console", Essential: false, Run: openConsole},
		{Name: "cmdline", Essential: true, Run: s.readCmdline},
		{Name: "modules", Essential: false, Run: loadModules},
		{Name: "find-root", Essential: true, Run: s.findRoot},
		{Name: "verity", Essential: true, Run: s.openVerity},
		{Name: "mount-root", Essential: true, Run: s.mountRoot},
		{Name: "switch-root", Essential: true, Run: s.switchRoot},
	}
}

// Main runs stage 1; it never returns.
func Main() {
	s := &state{cmdline: Cmdline{Slot: contract.SlotA}}
	_, err := boot.Sequence{Name: "stage1", Steps: s.steps()}.Run()
	if err == nil { // switchRoot execs stage 2 or stops when the root has none
		boot.Hang()
	}
	// A root refused is not retried: the next boot is the other slot's.
	var se slotError
	if errors.As(err, &se) && !s.cmdline.Debug {
		s.fallback(err)
	}
	p := boot.Policy{Name: "stage1", Debug: s.cmdline.Debug, Countdown: rebootCountdown, Sleep: time.Sleep,
		Reboot: func() error { unix.Sync(); return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART) },
		Shell:  func() error { return boot.ConsoleShell((*exec.Cmd).Run) },
		Hang:   boot.Hang}
	if err := p.Fail(err); err != nil {
		say.Printf("stage1: reboot: %v", err)
	}
	boot.Hang()
}

func mountKernelFS() error {
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
func openConsole() error {
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

func (s *state) readCmdline() error {
	data, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return fmt.Errorf("read kernel command line: %w", err)
	}
	s.cmdline, err = ParseCmdline(string(data))
	return err
}

func loadModules() error {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return fmt.Errorf("uname: %w", err)
	}
	dir := filepath.Join(contract.ModulesDir, unix.ByteSliceToString(u.Release[:]))
	start := time.Now()
	n, err := modules.Load(dir)
	say.Printf("stage1: loaded %d modules from %s in %d ms", n, dir, time.Since(start).Milliseconds())
	return err
}

func (s *state) findRoot() error {
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

func (s *state) mountRoot() error {
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
		return slotError{fmt.Errorf("mount %s (%s) on %s as squashfs: %w%s", s.rootDev, label, newRoot, err, hint)}
	}
	say.Mark(contract.RootMountedMarker(s.cmdline.Slot), " (%d ms since kernel start)", sinceBoot().Milliseconds())
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
func (s *state) switchRoot() error {
	if _, err := os.Lstat(newRoot + contract.InitPath); err != nil {
		say.Printf("stage1: %s in root %s: %v; stopping here", contract.InitPath, s.cmdline.Slot, errors.Unwrap(err))
		boot.Hang()
	}
	say.Printf("stage1: switch_root to %s, exec %s", newRoot, contract.InitPath)
	if err := say.HandOff(); err != nil { // stage 2 keeps stage 1's lines in its log
		say.Printf("stage1: %v", err)
	}
	return mount.SwitchRoot(newRoot, contract.InitPath)
}
