package stage1

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/ab"
	"github.com/basaltos/basalt/initsys/blockdev"
	"github.com/basaltos/basalt/initsys/boot"
	"github.com/basaltos/basalt/initsys/say"
)

// bootMount is where stage 1 mounts the boot FAT to fall back.
const bootMount = "/boot-fallback"

// slotError is a failure of the slot's root itself: its hash tree is not
// valid, its data does not match the root hash, its squashfs does not
// mount. Stage 1 then falls back to the other slot (fallback).
type slotError struct{ error }

func (e slotError) Unwrap() error { return e.error }

// fallback handles a slotError: it records why on the boot FAT
// (ab.RecordFailure, which the slot that boots reports and clears) and makes
// the next boot boot the other slot through the board's A/B mechanism
// (ab.Mechanism.Fallback), then returns so that the failure policy
// reboots. When the other slot cannot boot either (ab.ErrNoGoodSlot) it
// says so with every recorded reason and stops: rebooting would only
// repeat the failure. It also returns, to reboot as before, when the
// initramfs names no mechanism or the boot FAT cannot be written.
func (s *state) fallback(cause error) {
	slot := s.cmdline.Slot
	name, err := os.ReadFile(ab.InitramfsFile)
	if err != nil {
		say.Printf("stage1: slot %s refused, and the initramfs names no A/B mechanism (%v): cannot fall back", slot, err)
		return
	}
	m, err := ab.For(strings.TrimSpace(string(name)))
	if err != nil {
		say.Printf("stage1: slot %s refused, cannot fall back: %v", slot, err)
		return
	}
	var to contract.Slot
	var fails []ab.Failure
	err = withBootFAT(func(d ab.Dir) error {
		env := ab.Env{Booted: slot}
		env.Tryboot, _ = ab.ReadTrybootFlag(ab.TrybootFlagPath)
		if err := ab.RecordFailure(d, slot, "stage 1 refused its root: "+cause.Error()); err != nil {
			return err
		}
		var ferr error
		to, ferr = m.Fallback(d, env)
		fails, _ = ab.ReadFailures(d)
		return ferr
	})
	if errors.Is(err, ab.ErrNoGoodSlot) {
		say.Printf("stage1: NO GOOD SLOT: slot %s refused, and the other cannot boot either: %v", slot, err)
		for _, f := range fails {
			say.Printf("stage1: slot %s failed: %s", f.Slot, f.Reason)
		}
		say.Printf("stage1: stopped here (a reboot would fail the same way): reflash the device")
		boot.Hang()
	}
	if err != nil {
		say.Printf("stage1: slot %s refused, cannot fall back (%s): %v", slot, m.Name(), err)
		return
	}
	say.Printf("stage1: slot %s refused: the next boot boots slot %s (%s)", slot, to, m.Name())
}

// withBootFAT mounts the boot partition read-write, runs f on it and
// unmounts it (synced) whatever f returned.
func withBootFAT(f func(ab.Dir) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	found, err := blockdev.Wait(ctx, "/sys", contract.PartBoot)
	if err != nil {
		return err
	}
	dev := found[contract.PartBoot].Path("/dev")
	if err := os.MkdirAll(bootMount, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(dev, bootMount, "vfat", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "flush"); err != nil {
		return fmt.Errorf("mount %s on %s: %w", dev, bootMount, err)
	}
	ferr := f(ab.Dir(bootMount))
	unix.Sync()
	if err := unix.Unmount(bootMount, 0); err != nil && ferr == nil {
		ferr = fmt.Errorf("unmount %s: %w", bootMount, err)
	}
	return ferr
}
