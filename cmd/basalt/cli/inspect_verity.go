package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/ab"
	cv "github.com/basaltos/basalt/contract/verity"
	"github.com/basaltos/basalt/image/fat"
	"github.com/basaltos/basalt/image/imgfile"
	"github.com/basaltos/basalt/image/secureboot"
	"github.com/basaltos/basalt/image/verity"
)

// slotVerity says, for people, whether slot's root verifies against the
// root hash its boot files give the kernel: the hash tree after the
// squashfs is recomputed from the data and compared, as the device would.
func slotVerity(im *imgfile.Image, boot *fat.FS, slot contract.Slot) string {
	args := slotKernelArgs(boot, slot)
	var root, blocks string
	for _, f := range strings.Fields(args) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case cv.CmdlineRootHash:
			root = v
		case cv.CmdlineBlocks:
			blocks = v
		}
	}
	if root == "" && blocks == "" {
		return "off (no root hash in its boot files)"
	}
	hash, n, err := cv.ParseArgs(root, blocks)
	if err != nil {
		return "FAILS: " + err.Error()
	}
	p, err := im.Part(slot.PartLabel())
	if err != nil {
		return "FAILS: " + err.Error()
	}
	r := io.NewSectionReader(im.File, p.Start, p.Size)
	if _, _, err := verity.Verify(r, int64(n)*cv.BlockSize, hash); err != nil {
		return fmt.Sprintf("root hash %s: FAILS: %v", root, err)
	}
	return fmt.Sprintf("root hash %s: verifies (%d data blocks)", root, n)
}

// slotKernelArgs returns the kernel arguments the boot partition gives
// slot: its UKI's signed command line, its systemd-boot entry's options, or its contract.SlotArgsFile
// (boot.scr), or its cmdline.txt (Pi tryboot). "" when it has none.
func slotKernelArgs(boot *fat.FS, slot contract.Slot) string {
	// Secure Boot: the command line signed into the slot's UKI.
	if uki, ok := slotUKI(boot, slot); ok {
		cl, _ := secureboot.SectionData(uki, ".cmdline")
		return strings.TrimSpace(string(cl))
	}
	if b, err := boot.ReadFile(contract.SlotDir(slot) + "/" + contract.SlotArgsFile); err == nil {
		_, v, _ := strings.Cut(strings.TrimSpace(string(b)), "=")
		return v
	}
	// The Pi firmware's tryboot: the slot's whole command line.
	if b, err := boot.ReadFile(contract.SlotDir(slot) + "/" + ab.PiCmdlineFile); err == nil {
		return strings.TrimSpace(string(b))
	}
	ents, err := boot.ReadDir("loader/entries")
	if err != nil {
		return ""
	}
	for _, e := range ents {
		b, err := boot.ReadFile("loader/entries/" + e.Name)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if o, ok := strings.CutPrefix(l, "options "); ok && strings.Contains(" "+o+" ", " "+contract.CmdlineSlot+"="+string(slot)+" ") {
				return o
			}
		}
	}
	return ""
}
