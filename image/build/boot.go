package build

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/ab"
	cv "github.com/basaltos/basalt/contract/verity"
	"github.com/basaltos/basalt/image/compress"
	"github.com/basaltos/basalt/image/debian"
	"github.com/basaltos/basalt/image/initramfs"
	"github.com/basaltos/basalt/image/kmod"
	"github.com/basaltos/basalt/image/spec"
	"github.com/basaltos/basalt/image/tree"
	"github.com/basaltos/basalt/image/uboot"
)

// initramfsTree is stage 1's initramfs: /init (the device binary), the
// mount points it needs, the A/B mechanism's name (ab.InitramfsFile, for
// stage 1's fallback), /dev/console, and the board's boot modules closed
// over their dependencies (image/kmod) with a modules.dep and
// modules.alias of just those and modules.load.
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
	// Stage 1 falls back through the board's A/B mechanism.
	if err := t.AddBytes(strings.TrimPrefix(ab.InitramfsFile, "/"), 0o644, []byte(string(b.AB)+"\n")); err != nil {
		return nil, err
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
	if err := t.AddBytes(dir+"/"+contract.ModulesLoadFile, 0o644, []byte(ld)); err != nil {
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
	if err := initramfs.Write(f, t, compress.Zstd); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cmdline returns the kernel command line for slot. panic=10: a kernel
// that panics (a broken update's kernel or initrd) reboots by itself after
// 10 s, so that the bootloader counts the try and falls back.
func cmdline(b *boards.Board, slot string) string {
	args := append([]string{"console=" + b.Console, contract.CmdlineSlot + "=" + slot, "ro", "panic=10"}, b.Cmdline...)
	return strings.Join(args, " ")
}

// slotArgs are the kernel arguments that belong to the slot's content:
// its verity root ("" with verity off).
func slotArgs(vp *cv.Params) string {
	if vp == nil {
		return ""
	}
	return vp.CmdlineArgs()
}

// addSlotBootFiles adds slot's kernel and initrd (with Secure Boot one
// signed UKI instead), version and device trees.
func addSlotBootFiles(t *tree.Tree, s *spec.Spec, b *boards.Board, r *resolved, slot contract.Slot, initrd string, vp *cv.Params) error {
	sd := contract.SlotDir(slot)
	if r.sb != nil {
		uki, err := slotUKI(s, b, r, initrd, vp, slot)
		if err != nil {
			return fmt.Errorf("unified kernel image: %w", err)
		}
		if err := t.AddBytes(sd+"/"+contract.UKIFile, 0o644, uki); err != nil {
			return err
		}
	} else {
		if err := t.AddHostFile(sd+"/"+contract.KernelFile, r.kernel.Vmlinuz, 0o644); err != nil {
			return fmt.Errorf("kernel: %w", err)
		}
		if err := t.AddHostFile(sd+"/"+contract.InitrdFile, initrd, 0o644); err != nil {
			return err
		}
	}
	if err := t.AddBytes(sd+"/"+contract.BootVersionFile, 0o644, []byte(s.Version+"\n")); err != nil {
		return err
	}
	for _, d := range b.DTBs {
		if r.kernel.DTBs == "" {
			return fmt.Errorf("board wants device tree %s, but kernel %s ships none", d, r.kernel.Release)
		}
		src := filepath.Join(r.kernel.DTBs, filepath.FromSlash(d))
		// The Pi firmware looks for the tree by its name after os_prefix.
		dst := sd + "/" + contract.DTBDir + "/" + d
		if b.Bootloader == boards.RPiFirmware {
			dst = sd + "/" + path.Base(d)
		}
		if err := t.AddHostFile(dst, src, 0o644); err != nil {
			return fmt.Errorf("device tree: %w", err)
		}
	}
	return nil
}

// bootTree assembles the boot partition: the bootloader (systemd-boot, or
// U-Boot's boot.scr), the A/B mechanism's initial state naming slot A
// committed and slot B its spare (contract/ab: stage 1 falls back to B when
// it refuses A's root), both slots' kernel, initrd, version and device
// trees (the same: both slots hold this version), and the config drop-in dir.
func bootTree(s *spec.Spec, b *boards.Board, r *resolved, initrd string, vp *cv.Params, epoch int64) (*tree.Tree, error) {
	t := tree.New(epoch)
	for _, sl := range []contract.Slot{contract.SlotA, contract.SlotB} {
		if err := addSlotBootFiles(t, s, b, r, sl, initrd, vp); err != nil {
			return nil, err
		}
	}
	bootFiles := r.boot
	if r.sb != nil {
		// Secure Boot: each slot boots one signed UKI; systemd-boot is
		// signed, and the keys to enroll go along.
		var err error
		if bootFiles, err = r.sb.bootFiles(r.boot); err != nil {
			return nil, err
		}
	}
	// Chained to U-Boot (rpi3), the firmware hands U-Boot the tree it
	// finds at the FAT's root.
	if len(b.FirmwareConfig) > 0 {
		for _, d := range b.DTBs {
			if err := t.AddHostFile(path.Base(d), filepath.Join(r.kernel.DTBs, filepath.FromSlash(d)), 0o644); err != nil {
				return nil, fmt.Errorf("device tree: %w", err)
			}
		}
	}
	if err := t.Mkdir(contract.BootConfigDir, 0o755); err != nil {
		return nil, err
	}
	m, err := ab.For(string(b.AB))
	if err != nil {
		return nil, fmt.Errorf("board %s: %w", b.Name, err)
	}
	entry := func(sl contract.Slot) ab.Entry {
		return ab.Entry{Slot: sl, Title: s.Name + " " + s.Version, Version: s.Version, Cmdline: cmdline(b, ab.SlotPlaceholder), Args: slotArgs(vp), UKI: r.sb != nil}
	}
	for _, f := range m.Initial(entry(contract.SlotA), entry(contract.SlotB)) {
		if f.Path == ab.BLSLoaderConf && r.sb != nil && len(r.sb.enroll) > 0 {
			f.Data = append(f.Data, ab.BLSEnrollForce...)
		}
		if err := t.AddBytes(f.Path, 0o644, f.Data); err != nil {
			return nil, err
		}
	}
	// systemd-boot, or the Pi firmware (and U-Boot on rpi3).
	for _, f := range bootFiles {
		if err := t.AddBytes(f.To, 0o644, f.Data); err != nil {
			return nil, err
		}
	}
	if len(b.FirmwareConfig) > 0 {
		cfg := "# Raspberry Pi firmware settings of board " + b.Name + " (basalt)\n" + strings.Join(b.FirmwareConfig, "\n") + "\n"
		if err := t.AddBytes(ab.PiConfigFile, 0o644, []byte(cfg)); err != nil {
			return nil, err
		}
	}
	switch b.Bootloader {
	case boards.SystemdBoot, boards.RPiFirmware:
	case boards.UBootScript:
		scr := uboot.Script(s.Name+" "+s.Version, []byte(ab.BootScript(b.Name, cmdline(b, ab.SlotPlaceholder), b.Arch == boards.ARM64)), epoch)
		if err := t.AddBytes("boot.scr", 0o644, scr); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("bootloader %s is not supported by the builder yet", b.Bootloader)
	}
	return t, nil
}
