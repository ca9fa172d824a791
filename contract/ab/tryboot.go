package ab

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/basaltos/basalt/contract"
)

// TrybootName is the Raspberry Pi firmware's tryboot mechanism (rpi4-tryboot).
const TrybootName = "rpi-tryboot"

// Tryboot is the Raspberry Pi firmware's one-shot trial boot. The boot FAT
// holds
//
//	config.txt     the firmware settings; os_prefix=a/ names the committed slot
//	tryboot.txt    the same settings with os_prefix naming the slot to try
//	a/cmdline.txt  each slot's kernel command line, beside its vmlinuz,
//	               initrd and device trees (os_prefix is put in front of all
//	               of them, overlays included)
//
// The firmware reads tryboot.txt instead of config.txt only when the
// previous reboot asked for it (reboot(2) RESTART2 with "0 tryboot"; the
// flag lives in the PM registers and is cleared by that boot), and it never
// writes the card: there is no counter. A trial is one boot, and it must end
// by itself: the hardware watchdog is on (dtparam=watchdog=on; the init
// feeds it), panic= reboots, and a trial that does not pass the health gate
// reboots, always into config.txt's slot. The device knows a boot is a
// trial from the device tree (TrybootFlagPath, Env.Tryboot) and commits by
// rewriting config.txt's os_prefix (temp + fsync + rename on the FAT).
//
// With no trial armed tryboot.txt names the committed slot, so a stray
// tryboot reboot boots the good slot. Firmware needed: Pi 4 bootloader
// EEPROM 2021-03-18 or later, start4.elf from 2021 or later
// (docs/boards.md); the Pi 5's EEPROM always has it.
type Tryboot struct{}

// Files of the tryboot mechanism on the boot partition.
const (
	PiConfigFile  = "config.txt"
	PiTrybootFile = "tryboot.txt"
	// PiCmdlineFile is in each slot's directory (the firmware's cmdline=
	// default, with os_prefix in front).
	PiCmdlineFile = "cmdline.txt"
	// TrybootFlagPath is where the firmware tells the kernel that this
	// boot is a tryboot (a 32-bit big-endian cell, 1 on a trial).
	TrybootFlagPath = "/proc/device-tree/chosen/bootloader/tryboot"
	// TrybootRebootArg is the reboot(2) RESTART2 argument that makes the
	// next boot read tryboot.txt ("0": the default boot partition).
	TrybootRebootArg = "0 tryboot"
)

// piPrefixKey is the one line of config.txt the mechanism owns.
const piPrefixKey = "os_prefix="

// piSettings are config.txt's settings besides os_prefix, the same on every
// Pi board basalt builds: 64-bit Debian kernels are upstream kernels
// (upstream_kernel=1: upstream device-tree names such as
// bcm2711-rpi-4-b.dtb), the serial console on the GPIO header, the
// watchdog a trial relies on, and the slot's kernel and initramfs names.
var piSettings = []string{
	"arm_64bit=1",
	"enable_uart=1",
	"upstream_kernel=1",
	"dtparam=watchdog=on",
	"kernel=" + contract.KernelFile,
	"initramfs " + contract.InitrdFile + " followkernel",
}

// PiConfig is config.txt (or tryboot.txt) booting slot.
func PiConfig(slot contract.Slot) []byte {
	var b bytes.Buffer
	b.WriteString("# basalt A/B (Raspberry Pi firmware): os_prefix names the slot this file boots.\n")
	b.WriteString("# config.txt boots the committed slot; tryboot.txt, read once after a tryboot\n")
	b.WriteString("# reboot, the slot on trial. The device rewrites os_prefix on commit.\n[all]\n")
	for _, s := range piSettings {
		b.WriteString(s + "\n")
	}
	b.WriteString(piPrefixKey + contract.SlotDir(slot) + "/\n")
	return b.Bytes()
}

// piPrefix returns the slot named by the one os_prefix line of a config.
func piPrefix(name string, data []byte) (contract.Slot, error) {
	var slot contract.Slot
	n := 0
	for _, l := range strings.Split(string(data), "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(l), piPrefixKey)
		if !ok {
			continue
		}
		n++
		slot = contract.Slot(strings.TrimSuffix(v, "/"))
	}
	if n != 1 {
		return "", fmt.Errorf("%s: want exactly one %s line, found %d", name, piPrefixKey, n)
	}
	if !slot.Valid() {
		return "", fmt.Errorf("%s: os_prefix %q names no slot (want a/ or b/)", name, slot+"/")
	}
	return slot, nil
}

// withPrefix returns data with its os_prefix line naming slot; the other
// lines (settings a user added) are kept as they are.
func withPrefix(data []byte, slot contract.Slot) []byte {
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), piPrefixKey) {
			lines[i] = piPrefixKey + contract.SlotDir(slot) + "/"
		}
	}
	return []byte(strings.Join(lines, "\n"))
}

// Name implements Mechanism.
func (Tryboot) Name() string { return TrybootName }

// Initial implements Mechanism: config.txt and tryboot.txt both boot
// e.Slot (no trial), and each slot's cmdline.txt.
func (Tryboot) Initial(e Entry, spare ...Entry) []File {
	out := []File{
		{Path: PiConfigFile, Data: PiConfig(e.Slot)},
		{Path: PiTrybootFile, Data: PiConfig(e.Slot)},
	}
	for _, s := range append([]Entry{e}, spare...) {
		out = append(out, File{Path: contract.SlotDir(s.Slot) + "/" + PiCmdlineFile, Data: []byte(s.CommandLine() + "\n")})
	}
	return out
}

// configs reads and checks config.txt and tryboot.txt (a missing
// tryboot.txt is no trial).
func (Tryboot) configs(r Reader) (cfg []byte, committed, trial contract.Slot, err error) {
	if cfg, err = r.ReadFile(PiConfigFile); err != nil {
		return nil, "", "", fmt.Errorf("A/B state: %w", err)
	}
	if committed, err = piPrefix(PiConfigFile, cfg); err != nil {
		return nil, "", "", err
	}
	tb, err := r.ReadFile(PiTrybootFile)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, committed, committed, nil
	}
	if err != nil {
		return nil, "", "", fmt.Errorf("A/B state: %w", err)
	}
	if trial, err = piPrefix(PiTrybootFile, tb); err != nil {
		return nil, "", "", err
	}
	return cfg, committed, trial, nil
}

// State implements Mechanism. On the host (zero env) an armed trial has
// its one boot left. On the device, a tryboot of the armed slot is the
// trial; a normal boot of the committed slot while a trial is armed means
// the one-shot flag was spent (the device reboots right after arming): the
// trial slot failed.
func (m Tryboot) State(r Reader, env Env) (State, error) {
	_, c, t, err := m.configs(r)
	if err != nil {
		return State{}, err
	}
	st := State{Committed: c}
	switch {
	case t == c:
	case env.Booted == t && env.Tryboot:
		st.Trial, st.TriesLeft, st.OnTrial = t, 0, true
	case env.Booted == c && !env.Tryboot:
		st.Failed = t
	default:
		st.Trial, st.TriesLeft = t, 1
	}
	return st, nil
}

// Disarm implements Mechanism: tryboot.txt boots the committed slot again.
func (m Tryboot) Disarm(d Dir, slot contract.Slot) error {
	cfg, c, t, err := m.configs(d)
	if err != nil {
		return err
	}
	if c == slot {
		return fmt.Errorf("slot %s is the committed slot: not disarming it", slot)
	}
	if t == c {
		return nil
	}
	return writeFile(d, PiTrybootFile, withPrefix(cfg, c))
}

// Arm implements Mechanism: e.Slot's cmdline.txt, then tryboot.txt naming
// it. tries is ignored: the firmware tries a slot once (no counter). The
// device then reboots with RebootArg.
func (m Tryboot) Arm(d Dir, e Entry, tries int) error {
	cfg, c, _, err := m.configs(d)
	if err != nil {
		return err
	}
	if c == e.Slot {
		return fmt.Errorf("slot %s is the committed slot: it cannot go on trial", e.Slot)
	}
	if err := writeFile(d, contract.SlotDir(e.Slot)+"/"+PiCmdlineFile, []byte(e.CommandLine()+"\n")); err != nil {
		return err
	}
	return writeFile(d, PiTrybootFile, withPrefix(cfg, e.Slot))
}

// Commit implements Mechanism: config.txt names the slot booted on trial.
// tryboot.txt already names it, so the card is consistent after the one
// rename whatever happens next (no trial armed).
func (m Tryboot) Commit(d Dir, env Env) error {
	st, err := m.State(d, env)
	if err != nil {
		return err
	}
	if !st.OnTrial {
		return fmt.Errorf("slot %s was not booted on trial (%s; tryboot flag %v)", env.Booted, st, env.Tryboot)
	}
	cfg, _, _, err := m.configs(d)
	if err != nil {
		return err
	}
	return writeFile(d, PiConfigFile, withPrefix(cfg, env.Booted))
}

// Fallback implements Mechanism. A trial (a tryboot): nothing to write, the
// next plain reboot boots config.txt's slot, and tryboot.txt still names
// the trial (State: Failed). The committed slot: config.txt names the
// other slot when it has boot files and is not a spent trial; tryboot.txt
// then names the booted one (State on the other slot: Failed).
func (m Tryboot) Fallback(d Dir, env Env) (contract.Slot, error) {
	cfg, c, t, err := m.configs(d)
	if err != nil {
		return "", err
	}
	if env.Booted == t && t != c && env.Tryboot {
		return c, nil
	}
	other := env.Booted.Other()
	if _, err := d.ReadFile(contract.SlotDir(other) + "/" + PiCmdlineFile); err != nil {
		return "", fmt.Errorf("slot %s: %w (no %s/%s)", other, ErrNoGoodSlot, contract.SlotDir(other), PiCmdlineFile)
	}
	if t == other {
		return "", fmt.Errorf("slot %s: %w (it failed before)", other, ErrNoGoodSlot)
	}
	if err := writeFile(d, PiTrybootFile, withPrefix(cfg, env.Booted)); err != nil {
		return "", err
	}
	return other, writeFile(d, PiConfigFile, withPrefix(cfg, other))
}

// RebootArg implements Rebooter: the next boot reads tryboot.txt.
func (Tryboot) RebootArg() string { return TrybootRebootArg }

// Rebooter is implemented by mechanisms whose trial starts with a special
// reboot: after Arm the device reboots with reboot(2) RESTART2 and
// RebootArg (the syscall is the device's, the argument the mechanism's).
// Other mechanisms need a plain reboot.
type Rebooter interface {
	RebootArg() string
}

// ReadTrybootFlag reads the firmware's tryboot flag from path (normally
// TrybootFlagPath). A missing file is false: not a Pi, or firmware without
// tryboot.
func ReadTrybootFlag(path string) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if len(b) != 4 {
		return false, fmt.Errorf("%s: %d bytes, want a 4-byte cell", path, len(b))
	}
	return binary.BigEndian.Uint32(b) != 0, nil
}

func writeFile(d Dir, name string, data []byte) error {
	if err := d.WriteFile(name, data); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}
