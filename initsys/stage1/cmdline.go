package stage1

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/verity"
)

// CmdlineGrowSteps (debug, for power-cut tests) makes stage 2 grow the
// data filesystem in that many EXT4_IOC_RESIZE_FS calls, printing a marker
// after each, so that a test can cut the power half way through growth.
const CmdlineGrowSteps = "basalt.debug.grow_steps"

// CmdlineNoWatchdog (debug) leaves the hardware watchdog alone: QEMU's
// raspi3b resets the machine the moment its emulated BCM2835 watchdog is
// started, so the Pi boot tests set it.
const CmdlineNoWatchdog = "basalt.debug.no_watchdog"

// Cmdline holds the kernel command-line keys the init reads.
type Cmdline struct {
	Slot  contract.Slot
	Debug bool
	// GrowSteps is CmdlineGrowSteps (0 when unset or invalid).
	GrowSteps int
	// NoWatchdog is CmdlineNoWatchdog.
	NoWatchdog bool
	// VerityRoot is the slot's dm-verity root hash (verity.CmdlineRootHash);
	// nil when the image has verity off. VerityBlocks is the size of the
	// data area the tree covers (verity.CmdlineBlocks).
	VerityRoot   []byte
	VerityBlocks uint64
}

// ParseCmdline parses /proc/cmdline. basalt.slot defaults to a; basalt.debug
// is on for 1, true, yes or a bare key. The last occurrence of a key wins, as
// with the kernel's own parameters. An invalid slot is an error; Debug is
// still set so that the failure can be debugged.
func ParseCmdline(s string) (Cmdline, error) {
	c := Cmdline{Slot: contract.SlotA}
	var slot, root, blocks string
	for _, f := range contract.CmdlineFields(s) {
		k, v, hasValue := strings.Cut(f, "=")
		switch k {
		case contract.CmdlineSlot:
			slot = v
		case verity.CmdlineRootHash:
			root = v
		case verity.CmdlineBlocks:
			blocks = v
		case CmdlineGrowSteps:
			c.GrowSteps, _ = strconv.Atoi(v)
		case CmdlineNoWatchdog:
			c.NoWatchdog = true
		case contract.CmdlineDebug:
			switch strings.ToLower(v) {
			case "1", "true", "yes", "on":
				c.Debug = true
			case "":
				c.Debug = !hasValue
			default:
				c.Debug = false
			}
		}
	}
	if slot != "" {
		c.Slot = contract.Slot(slot)
		if !c.Slot.Valid() {
			return Cmdline{Slot: contract.SlotA, Debug: c.Debug, GrowSteps: c.GrowSteps},
				fmt.Errorf("%s=%q: want %s or %s", contract.CmdlineSlot, slot, contract.SlotA, contract.SlotB)
		}
	}
	// A verity root that does not parse fails the boot: mounting the slot
	// unverified instead would defeat the point.
	if root != "" || blocks != "" {
		h, n, err := verity.ParseArgs(root, blocks)
		if err != nil {
			return Cmdline{Slot: c.Slot, Debug: c.Debug, GrowSteps: c.GrowSteps}, err
		}
		c.VerityRoot, c.VerityBlocks = h, n
	}
	return c, nil
}
