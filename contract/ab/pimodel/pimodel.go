// Package pimodel is a MODEL of the Raspberry Pi firmware's slot choice,
// for tests: QEMU cannot run the Pi 4/5 firmware, so the A/B tests of the
// tryboot mechanism (contract/ab Tryboot, board rpi4-tryboot) run against
// this model. It is what the Raspberry Pi documentation says the firmware
// does, not the firmware:
//
//   - a reboot with the argument "0 tryboot" sets a one-shot flag (kept in
//     the PM registers across the reboot, not on the card); the next boot
//     reads tryboot.txt instead of config.txt and clears the flag, so the
//     boot after that reads config.txt again whatever happened;
//   - a missing tryboot.txt means config.txt;
//   - os_prefix is put in front of the kernel, the initramfs, cmdline.txt
//     and the device tree; a prefix whose kernel or device tree is missing
//     is ignored (the firmware then looks at the FAT's root, where basalt
//     puts no kernel: the boot fails);
//   - the firmware never writes the card.
//
// Tests only: nothing in basalt's binaries imports it.
package pimodel

import (
	"fmt"
	"strings"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/ab"
)

// Firmware models one Pi's firmware reading the boot FAT r. DTB is the
// board's device tree name (bcm2711-rpi-4-b.dtb).
type Firmware struct {
	FAT ab.Reader
	DTB string
	// tryboot is the one-shot flag set by Reboot(ab.TrybootRebootArg).
	tryboot bool
}

// Boot is what the firmware hands to the kernel.
type Boot struct {
	Slot contract.Slot
	// Tryboot is the flag the firmware puts in the device tree
	// (ab.TrybootFlagPath): this boot read tryboot.txt.
	Tryboot bool
	// Kernel, Initrd and DTB are paths on the FAT; Cmdline is cmdline.txt.
	Kernel, Initrd, DTB string
	Cmdline             string
}

// Env is the ab.Env the device sees in this boot.
func (b Boot) Env() ab.Env { return ab.Env{Booted: b.Slot, Tryboot: b.Tryboot} }

// Reboot models reboot(2) with RESTART2 arg ("" for a plain reboot, a
// watchdog reset or a power cycle).
func (f *Firmware) Reboot(arg string) { f.tryboot = arg == ab.TrybootRebootArg }

// Boot picks the config file, the slot its os_prefix names and the slot's
// files, as the firmware would, and clears the one-shot flag.
func (f *Firmware) Boot() (Boot, error) {
	b := Boot{Tryboot: f.tryboot}
	f.tryboot = false
	name := ab.PiConfigFile
	data, err := f.FAT.ReadFile(ab.PiTrybootFile)
	if b.Tryboot && err == nil {
		name = ab.PiTrybootFile
	} else {
		b.Tryboot = false // no tryboot.txt: config.txt, and no flag for the OS
		if data, err = f.FAT.ReadFile(ab.PiConfigFile); err != nil {
			return b, fmt.Errorf("firmware model: %w", err)
		}
	}
	var prefix, kernel, initrd string
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "os_prefix="):
			prefix = strings.TrimPrefix(l, "os_prefix=")
		case strings.HasPrefix(l, "kernel="):
			kernel = strings.TrimPrefix(l, "kernel=")
		case strings.HasPrefix(l, "initramfs "):
			initrd = strings.Fields(l)[1]
		}
	}
	if kernel == "" {
		return b, fmt.Errorf("firmware model: %s sets no kernel=", name)
	}
	b.Kernel, b.DTB = prefix+kernel, prefix+f.DTB
	if !f.exists(b.Kernel) || !f.exists(b.DTB) {
		return b, fmt.Errorf("firmware model: %s: os_prefix %q: no %s or %s: the prefix is ignored and the FAT's root has no kernel: boot fails", name, prefix, b.Kernel, b.DTB)
	}
	b.Slot = contract.Slot(strings.TrimSuffix(prefix, "/"))
	if initrd != "" {
		b.Initrd = prefix + initrd
	}
	cmd, err := f.FAT.ReadFile(prefix + ab.PiCmdlineFile)
	if err != nil {
		return b, fmt.Errorf("firmware model: %w", err)
	}
	b.Cmdline = strings.TrimSpace(string(cmd))
	return b, nil
}

func (f *Firmware) exists(name string) bool {
	_, err := f.FAT.ReadFile(name)
	return err == nil
}
