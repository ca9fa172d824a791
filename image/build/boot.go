package build

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/image/debian"
	"github.com/basaltos/basalt/image/initramfs"
	"github.com/basaltos/basalt/image/kmod"
	"github.com/basaltos/basalt/image/spec"
	"github.com/basaltos/basalt/image/tree"
	"github.com/basaltos/basalt/image/uboot"
)

// modulesLoadFile lists, in the initramfs, the modules stage 1 loads (one
// name a line, in order); initsys/modules reads it.
const modulesLoadFile = "modules.load"

// initramfsTree is stage 1's initramfs: /init (the device binary), the
// mount points it needs, /dev/console, and the board's boot modules closed
// over their dependencies (image/kmod) with a modules.dep and modules.alias
// of just those and modules.load.
func initramfsTree(b *boards.Board, k debian.Kernel, ix *kmod.Index, initBin []byte, epoch int64) (*tree.Tree, error) {
	t := tree.New(epoch)
	if err := t.AddBytes("init", 0o755, initBin); err != nil {
		return nil, err
	}
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp"} {
		if err := t.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := t.Add(tree.Entry{Path: "dev/console", Type: tree.CharDev, Mode: 0o600, Major: 5, Minor: 1, MTime: epoch}); err != nil {
		return nil, err
	}
	closure, load, err := bootModules(ix, b.Modules)
	if err != nil {
		return nil, err
	}
	dir := strings.TrimPrefix(contract.ModulesDir, "/") + "/" + k.Release
	if err := addModuleFiles(t, dir, k.Modules, closure); err != nil {
		return nil, err
	}
	if err := addModuleIndex(t, ix, dir, closure); err != nil {
		return nil, err
	}
	var ld string
	for _, n := range load {
		ld += n + "\n"
	}
	if err := t.AddBytes(dir+"/"+modulesLoadFile, 0o644, []byte(ld)); err != nil {
		return nil, err
	}
	return t, nil
}

// writeInitramfs writes t, zstd-compressed, to a file in dir.
func writeInitramfs(t *tree.Tree, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := initramfs.Write(f, t, initramfs.Zstd); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cmdline returns the kernel command line for slot.
func cmdline(b *boards.Board, slot string) string {
	args := append([]string{"console=" + b.Console, contract.CmdlineSlot + "=" + slot, "ro"}, b.Cmdline...)
	return strings.Join(args, " ")
}

// bootTree assembles the boot partition: the bootloader and its entry for
// slot A (systemd-boot) or boot.scr and the A/B state file (U-Boot), slot
// A's kernel, initrd, version and device trees, and the config drop-in dir.
func bootTree(s *spec.Spec, b *boards.Board, r *resolved, initrd string, epoch int64) (*tree.Tree, error) {
	t := tree.New(epoch)
	slot := string(contract.SlotA)
	sd := contract.SlotDir(contract.SlotA)
	if err := t.AddHostFile(sd+"/"+contract.KernelFile, r.kernel.Vmlinuz, 0o644); err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	if err := t.AddHostFile(sd+"/"+contract.InitrdFile, initrd, 0o644); err != nil {
		return nil, err
	}
	if err := t.AddBytes(sd+"/"+contract.BootVersionFile, 0o644, []byte(s.Version+"\n")); err != nil {
		return nil, err
	}
	for _, d := range b.DTBs {
		if r.kernel.DTBs == "" {
			return nil, fmt.Errorf("board wants device tree %s, but kernel %s ships none", d, r.kernel.Release)
		}
		if err := t.AddHostFile(sd+"/"+contract.DTBDir+"/"+d, filepath.Join(r.kernel.DTBs, filepath.FromSlash(d)), 0o644); err != nil {
			return nil, fmt.Errorf("device tree: %w", err)
		}
	}
	if err := t.Mkdir(contract.BootConfigDir, 0o755); err != nil {
		return nil, err
	}
	switch b.Bootloader {
	case boards.SystemdBoot:
		for _, f := range r.boot {
			if err := t.AddBytes(f.To, 0o644, f.Data); err != nil {
				return nil, err
			}
		}
		files := map[string]string{
			"loader/loader.conf": "timeout 0\ndefault basalt-*\neditor no\n",
			"loader/entries/basalt-" + slot + ".conf": fmt.Sprintf("title %s %s (slot %s)\nversion %s\nlinux /%s/%s\ninitrd /%s/%s\noptions %s\n",
				s.Name, s.Version, slot, s.Version, sd, contract.KernelFile, sd, contract.InitrdFile, cmdline(b, slot)),
		}
		for _, p := range slices.Sorted(maps.Keys(files)) {
			if err := t.AddBytes(p, 0o644, []byte(files[p])); err != nil {
				return nil, err
			}
		}
	case boards.UBootScript:
		scr := uboot.Script(s.Name+" "+s.Version, []byte(bootScript(b)), epoch)
		if err := t.AddBytes("boot.scr", 0o644, scr); err != nil {
			return nil, err
		}
		if err := t.AddBytes(contract.BootStateFile, 0o644, []byte(StateText(contract.SlotA, "", 0))); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("bootloader %s is not supported by the builder yet", b.Bootloader)
	}
	return t, nil
}

// StateText is the U-Boot A/B state file (contract.BootStateFile), in the
// "name=value" lines U-Boot's `env import -t` reads: the committed slot,
// the slot on trial ("" when none) and the trial boots left.
func StateText(slot contract.Slot, trial contract.Slot, tries int) string {
	return fmt.Sprintf("slot=%s\ntrial=%s\ntries=%d\n", slot, trial, tries)
}

// bootScript is boot.scr's source: read the state file; a slot on trial
// with tries left is booted (tries counted down and saved first); with none
// left the committed slot boots. Then load the slot's kernel and initrd and
// bootz with U-Boot's own device tree (QEMU virt passes one).
func bootScript(b *boards.Board) string {
	dev := "${devtype} ${devnum}:${distro_bootpart}"
	return strings.Join([]string{
		"# basalt A/B boot (" + b.Name + ")",
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
		"load " + dev + " ${kernel_addr_r} ${slot}/" + contract.KernelFile,
		"load " + dev + " ${ramdisk_addr_r} ${slot}/" + contract.InitrdFile,
		"setenv bootargs \"" + cmdline(b, "${slot}") + "\"",
		"bootz ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdtcontroladdr}",
		"",
	}, "\n")
}
