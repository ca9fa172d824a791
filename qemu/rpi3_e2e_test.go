//go:build e2e

package qemu_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/ab"
	"github.com/basaltos/basalt/contract/ab/pimodel"
	"github.com/basaltos/basalt/image/build"
	"github.com/basaltos/basalt/image/fat"
	"github.com/basaltos/basalt/image/imgfile"
	"github.com/basaltos/basalt/image/spec"
	"github.com/basaltos/basalt/initsys/stage1"
	"github.com/basaltos/basalt/internal/testutil"
	"github.com/basaltos/basalt/qemu"
)

// rpi3Deadline bounds one raspi3b boot under TCG: U-Boot reads the 38 MiB
// kernel from the emulated SD card at about 1 MiB/s, stage 1 loads 36
// modules.
const rpi3Deadline = 12 * time.Minute

// piImage builds the Raspberry Pi example's image for board offline (the
// inputs `make pi-inputs` fetched) and sizes it to 1 GiB, a power of two
// as QEMU wants an SD card, so that the test boots the file itself and
// U-Boot's writes to the state file stay in it from one boot to the next.
func piImage(t *testing.T, board string) string {
	t.Helper()
	prepared, _ := filepath.Abs("../.cache/pi")
	cacheDir, _ := filepath.Abs("../.cache/basalt")
	testutil.NeedFile(t, filepath.Join(prepared, "basalt.lock"), "make pi-inputs (the Pi boards' Debian inputs)")
	testutil.NeedTool(t, "qemu-system-aarch64")
	dir := t.TempDir()
	for _, f := range []string{"basalt.yaml", "basalt.lock"} {
		b, err := os.ReadFile(filepath.Join(prepared, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	s, _, err := spec.Load(filepath.Join(dir, "basalt.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	arts, err := build.Build(context.Background(), s, build.Options{OutDir: filepath.Join(dir, "out"), CacheDir: cacheDir, Offline: true, Boards: []string{board}})
	if err != nil {
		t.Fatal(err)
	}
	img := arts[0].Image
	if err := os.Truncate(img, 1<<30); err != nil {
		t.Fatal(err)
	}
	// QEMU's raspi3b resets the moment its emulated watchdog is started:
	// slot a's kernel arguments (boot.scr and cmdline.txt read them) tell
	// the init to leave it alone.
	im, err := imgfile.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	boot, err := im.BootFS()
	if err != nil {
		t.Fatal(err)
	}
	p, _ := im.Part(contract.PartBoot)
	name, data := "a/"+contract.SlotArgsFile, []byte(nil)
	if old, err := boot.ReadFile(name); err == nil {
		data = append([]byte(strings.TrimRight(string(old), "\n")), " "+stage1.CmdlineNoWatchdog+"\n"...)
	} else if old, err := boot.ReadFile("a/" + ab.PiCmdlineFile); err == nil {
		name = "a/" + ab.PiCmdlineFile
		data = append([]byte(strings.TrimRight(string(old), "\n")), " "+stage1.CmdlineNoWatchdog+"\n"...)
	} else {
		t.Fatalf("slot a has neither %s nor %s: %v", contract.SlotArgsFile, ab.PiCmdlineFile, err)
	}
	im.Close()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = fat.AddFile(f, p.Start, p.Size, name, data, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func startRPi3(ctx context.Context, t *testing.T, img string) *qemu.Machine {
	t.Helper()
	b, err := boards.Get("rpi3")
	if err != nil {
		t.Fatal(err)
	}
	m, err := qemu.Start(ctx, qemu.Config{Board: b, Image: img, Accel: qemu.TCG, NoReboot: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Kill() })
	return m
}

// TestE2ERPi3 boots the rpi3 image on QEMU's raspi3b: Debian's U-Boot (from
// the image) runs the image's boot.scr, which boots slot a's kernel with
// the device tree U-Boot names (${fdtfile}) and its initrd; stage 1 finds
// the MBR partitions by position, mounts root a through dm-verity, and the
// device gets ready.
func TestE2ERPi3(t *testing.T) {
	img := piImage(t, "rpi3")
	ctx, cancel := context.WithTimeout(context.Background(), rpi3Deadline)
	defer cancel()
	m := startRPi3(ctx, t, img)
	expect(ctx, t, m, "basalt: booting slot a")
	expect(ctx, t, m, "Machine model: Raspberry Pi 3 Model B")
	expect(ctx, t, m, "mmcblk0: p1 p2 p3 p4")
	t.Logf("%s", expect(ctx, t, m, contract.RootMountedMarker(contract.SlotA)))
	t.Logf("%s", expect(ctx, t, m, contract.MarkerReady))
}

// TestE2ERPi3Rollback is the negative twin: slot b is armed for one trial
// but holds no kernel. The first boot counts the trial down (U-Boot's
// fatwrite of the state file on the SD card) and fails to load slot b; the
// next boot has no tries left, says so, and boots slot a. Both boots stop
// once U-Boot has chosen (the kernel is not waited for).
func TestE2ERPi3Rollback(t *testing.T) {
	img := piImage(t, "rpi3")
	p, err := imgfile.BootPartition(img)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = fat.AddFile(f, p.Start, p.Size, contract.BootStateFile, ab.StateText(contract.SlotA, contract.SlotB, 1), 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), rpi3Deadline)
	defer cancel()
	m := startRPi3(ctx, t, img)
	expect(ctx, t, m, "basalt: booting slot b")
	expect(ctx, t, m, "Failed to load 'b/vmlinuz'")
	m.Kill()
	<-m.Exited()

	m = startRPi3(ctx, t, img)
	expect(ctx, t, m, "basalt: slot b failed its trial, booting slot a")
	expect(ctx, t, m, "basalt: booting slot a")
	expect(ctx, t, m, "Starting kernel")
	m.Kill()
}

// TestE2ERPi4ChainOnRaspi3b boots what the Pi 4's firmware would boot from
// the rpi4 image, as far as QEMU can: the firmware MODEL
// (contract/ab/pimodel) reads the image's config.txt and picks slot a's
// kernel, initrd and cmdline.txt; QEMU's raspi3b (the only Pi it emulates)
// boots them with the same arm64 kernel on the Pi 3's device tree, the rpi4
// image as the SD card, to the ready marker. The Pi 4's own SoC, its
// firmware and its device tree are not exercised (docs/boards.md).
func TestE2ERPi4ChainOnRaspi3b(t *testing.T) {
	img := piImage(t, "rpi4")
	im, err := imgfile.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	boot, err := im.BootFS()
	if err != nil {
		t.Fatal(err)
	}
	fw := &pimodel.Firmware{FAT: boot, DTB: "bcm2711-rpi-4-b.dtb"}
	chosen, err := fw.Boot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var files []string
	for _, name := range []string{chosen.Kernel, chosen.Initrd} {
		b, err := boot.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Base(name))
		os.WriteFile(p, b, 0o644)
		files = append(files, p)
	}
	im.Close()
	k, _ := filepath.Abs("../.cache/basalt")
	dtbs, _ := filepath.Glob(filepath.Join(k, "tree", "kernel-v2-*", "root", "usr", "lib", "linux-image-*", "broadcom", "bcm2837-rpi-3-b.dtb"))
	if len(dtbs) == 0 {
		t.Fatal("no bcm2837-rpi-3-b.dtb in the cached arm64 kernel")
	}
	b, err := boards.Get("rpi3") // raspi3b's QEMU section
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), rpi3Deadline)
	defer cancel()
	m, err := qemu.Start(ctx, qemu.Config{Board: b, Image: img, Accel: qemu.TCG, NoReboot: true,
		Kernel: files[0], Initrd: files[1], Append: chosen.Cmdline, DTB: dtbs[0]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Kill() })
	expect(ctx, t, m, "Kernel command line: "+chosen.Cmdline)
	t.Logf("%s", expect(ctx, t, m, contract.RootMountedMarker(contract.SlotA)))
	t.Logf("%s", expect(ctx, t, m, contract.MarkerReady))
}
