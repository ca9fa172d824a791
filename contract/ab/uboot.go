package ab

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/basaltos/basalt/contract"
)

// UBoot is the boot.scr state file (contract.BootStateFile) on the boot
// FAT, for boards booted by U-Boot (qemu-armv7, rpi3): "name=value" lines
// that U-Boot's `env import -t` reads,
//
//	slot=a     the committed slot
//	trial=b    the slot on trial ("" when none)
//	tries=3    trial boots left
//
// boot.scr (BootScript) boots the trial slot while tries > 0, counting
// down and saving the file with fatwrite before it boots; with none left
// it boots the committed slot. The device commits by writing slot=b,
// trial= (temp + fsync + rename).
type UBoot struct{}

// Name implements Mechanism.
func (UBoot) Name() string { return UBootName }

// StateText is the state file's bytes.
func StateText(committed, trial contract.Slot, tries int) []byte {
	return fmt.Appendf(nil, "slot=%s\ntrial=%s\ntries=%d\n", committed, trial, tries)
}

// ParseState parses the state file; unknown names are errors, as are a
// missing or invalid committed slot.
func ParseState(b []byte) (committed, trial contract.Slot, tries int, err error) {
	seen := map[string]bool{}
	// U-Boot's env export -t ends the text with a NUL.
	for i, l := range strings.Split(strings.TrimRight(string(b), "\x00"), "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok || seen[k] {
			return "", "", 0, fmt.Errorf("%s line %d: want name=value once per name (slot, trial, tries): %q", contract.BootStateFile, i+1, l)
		}
		seen[k] = true
		switch k {
		case "slot":
			committed = contract.Slot(v)
		case "trial":
			trial = contract.Slot(v)
		case "tries":
			if tries, err = strconv.Atoi(v); err != nil || tries < 0 {
				return "", "", 0, fmt.Errorf("%s line %d: tries %q is not a count", contract.BootStateFile, i+1, v)
			}
		default:
			return "", "", 0, fmt.Errorf("%s line %d: unknown name %q (known: slot, trial, tries)", contract.BootStateFile, i+1, k)
		}
	}
	if !committed.Valid() {
		return "", "", 0, fmt.Errorf("%s: slot %q is not a or b", contract.BootStateFile, committed)
	}
	if trial != "" && !trial.Valid() {
		return "", "", 0, fmt.Errorf("%s: trial %q is not a, b or empty", contract.BootStateFile, trial)
	}
	return committed, trial, tries, nil
}

// Initial implements Mechanism: the state file naming e.Slot committed,
// and each slot's args file.
func (UBoot) Initial(e Entry, spare ...Entry) []File {
	out := []File{{Path: contract.BootStateFile, Data: StateText(e.Slot, "", 0)}, argsFile(e)}
	for _, s := range spare {
		out = append(out, argsFile(s))
	}
	return out
}

// uBootArgsVar is the U-Boot variable boot.scr imports a slot's Args into.
const uBootArgsVar = "basalt_args"

// argsFile is e's contract.SlotArgsFile: "basalt_args=ARGS", the env text
// boot.scr imports.
func argsFile(e Entry) File {
	return File{Path: contract.SlotDir(e.Slot) + "/" + contract.SlotArgsFile, Data: []byte(uBootArgsVar + "=" + e.Args + "\n")}
}

// State implements Mechanism.
func (UBoot) State(r Reader, env Env) (State, error) {
	b, err := r.ReadFile(contract.BootStateFile)
	if err != nil {
		return State{}, fmt.Errorf("A/B state: %w", err)
	}
	c, t, n, err := ParseState(b)
	if err != nil {
		return State{}, err
	}
	st := State{Committed: c}
	switch {
	case t == "" || t == c:
	case env.Booted == t:
		// boot.scr counted this boot down before booting it.
		st.Trial, st.TriesLeft, st.OnTrial = t, n, true
	case n > 0:
		st.Trial, st.TriesLeft = t, n
	default:
		st.Failed = t
	}
	return st, nil
}

func (m UBoot) write(d Dir, c, t contract.Slot, n int) error {
	if err := d.WriteFile(contract.BootStateFile, StateText(c, t, n)); err != nil {
		return fmt.Errorf("write %s: %w", contract.BootStateFile, err)
	}
	return nil
}

// Disarm implements Mechanism: a trial of slot is cancelled.
func (m UBoot) Disarm(d Dir, slot contract.Slot) error {
	b, err := d.ReadFile(contract.BootStateFile)
	if err != nil {
		return fmt.Errorf("A/B state: %w", err)
	}
	c, t, _, err := ParseState(b)
	if err != nil {
		return err
	}
	if c == slot {
		return fmt.Errorf("slot %s is the committed slot: not disarming it", slot)
	}
	if t == "" {
		return nil
	}
	return m.write(d, c, "", 0)
}

// Arm implements Mechanism.
func (m UBoot) Arm(d Dir, e Entry, tries int) error {
	b, err := d.ReadFile(contract.BootStateFile)
	if err != nil {
		return fmt.Errorf("A/B state: %w", err)
	}
	c, _, _, err := ParseState(b)
	if err != nil {
		return err
	}
	if c == e.Slot {
		return fmt.Errorf("slot %s is the committed slot: it cannot go on trial", e.Slot)
	}
	a := argsFile(e)
	if err := d.WriteFile(a.Path, a.Data); err != nil {
		return fmt.Errorf("write %s: %w", a.Path, err)
	}
	return m.write(d, c, e.Slot, tries)
}

// Commit implements Mechanism.
func (m UBoot) Commit(d Dir, env Env) error {
	st, err := m.State(d, env)
	if err != nil {
		return err
	}
	if !st.OnTrial {
		return fmt.Errorf("slot %s was not booted on trial (%s)", env.Booted, st)
	}
	return m.write(d, env.Booted, "", 0)
}

// BootScript is boot.scr's source for a board whose kernel command line is
// cmdline (with SlotPlaceholder where the slot goes): read the state file;
// a slot on trial with tries left is booted (tries counted down and saved
// first); with none left the committed slot boots. Then load the slot's
// kernel and initrd and boot them (bootSlot).
//
// Without booti, a zImage boots with bootz on U-Boot's own device tree
// (QEMU virt passes one). With booti (arm64: rpi3), vmlinuz is Debian's
// gzip'd Image, unpacked and booted by booti on the slot's device tree
// named by ${fdtfile} (U-Boot's name for the board it runs on, e.g.
// broadcom/bcm2837-rpi-3-b.dtb), or on U-Boot's own tree when the slot
// has none of that name.
func BootScript(board, cmdline string, booti bool) string {
	dev := "${devtype} ${devnum}:${distro_bootpart}"
	return strings.Join([]string{
		"# basalt A/B boot (" + board + ")",
		"setenv slot a; setenv trial; setenv tries 0",
		"if load " + dev + " ${scriptaddr} " + contract.BootStateFile + "; then env import -t ${scriptaddr} ${filesize} slot trial tries; fi",
		"if test -n \"${trial}\"; then",
		"  if test ${tries} -gt 0; then",
		"    setexpr tries ${tries} - 1",
		"    env export -t ${scriptaddr} slot trial tries",
		"    fatwrite " + dev + " ${scriptaddr} " + contract.BootStateFile + " ${filesize}",
		"    setenv slot ${trial}",
		"  else",
		"    echo \"basalt: slot ${trial} failed its trial, booting slot ${slot}\"",
		"  fi",
		"fi",
		"echo \"basalt: booting slot ${slot}\"",
		"setenv " + uBootArgsVar,
		"if load " + dev + " ${scriptaddr} ${slot}/" + contract.SlotArgsFile + "; then env import -t ${scriptaddr} ${filesize} " + uBootArgsVar + "; fi",
		bootSlot(dev, cmdline+" ${"+uBootArgsVar+"}", booti),
		"",
	}, "\n")
}

// bootSlot loads and boots ${slot}'s kernel and initrd (see BootScript).
func bootSlot(dev, cmdline string, booti bool) string {
	if !booti {
		return strings.Join([]string{
			"load " + dev + " ${kernel_addr_r} ${slot}/" + contract.KernelFile,
			"load " + dev + " ${ramdisk_addr_r} ${slot}/" + contract.InitrdFile,
			"setenv bootargs \"" + cmdline + "\"",
			"bootz ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdtcontroladdr}",
		}, "\n")
	}
	// The Pi's default addresses leave 37 MiB for the kernel below
	// scriptaddr; trixie's arm64 Image is 38 MiB (bookworm's is gzip'd). Kernel at
	// 2 MiB, device tree and initrd at 128 MiB, the gzip'd kernel copied
	// to 192 MiB for booti to unpack (all within the Pi 3's 948 MiB).
	return strings.Join([]string{
		"setenv kernel_addr_r 0x00200000; setenv fdt_addr_r 0x08000000; setenv ramdisk_addr_r 0x08100000",
		"setenv kernel_comp_addr_r 0x0c000000; setenv kernel_comp_size 0x04000000",
		"load " + dev + " ${kernel_addr_r} ${slot}/" + contract.KernelFile,
		"if load " + dev + " ${fdt_addr_r} ${slot}/" + contract.DTBDir + "/${fdtfile}; then setenv basalt_fdt ${fdt_addr_r}; else setenv basalt_fdt ${fdtcontroladdr}; fi",
		"load " + dev + " ${ramdisk_addr_r} ${slot}/" + contract.InitrdFile,
		"setenv bootargs \"" + cmdline + "\"",
		"booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${basalt_fdt}",
	}, "\n")
}

// Fallback implements Mechanism. On trial (boot.scr counted this boot
// down): tries=0, boot.scr boots the committed slot next. The committed
// slot: slot=OTHER trial=BOOTED tries=0, when the other slot has boot files
// and is not itself a spent trial.
func (m UBoot) Fallback(d Dir, env Env) (contract.Slot, error) {
	b, err := d.ReadFile(contract.BootStateFile)
	if err != nil {
		return "", fmt.Errorf("A/B state: %w", err)
	}
	c, t, n, err := ParseState(b)
	if err != nil {
		return "", err
	}
	if env.Booted == t && t != c {
		return c, m.write(d, c, t, 0)
	}
	other := env.Booted.Other()
	if !hasBootFiles(d, other) {
		return "", fmt.Errorf("slot %s: %w (no %s/%s)", other, ErrNoGoodSlot, contract.SlotDir(other), contract.KernelFile)
	}
	if t == other && n == 0 {
		return "", fmt.Errorf("slot %s: %w (it failed before)", other, ErrNoGoodSlot)
	}
	return other, m.write(d, other, env.Booted, 0)
}
