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
// args are added to slot a's kernel arguments.
func piImage(t *testing.T, board string, args ...string) string {
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
	im, boot := openBoot(t, img)
	p, _ := im.Part(contract.PartBoot)
	extra := " " + strings.Join(append([]string{stage1.CmdlineNoWatchdog}, args...), " ") + "\n"
	name, data := "a/"+contract.SlotArgsFile, []byte(nil)
	if old, err := boot.ReadFile(name); err == nil {
		data = append([]byte(strings.TrimRight(string(old), "\n")), extra...)
	} else if old, err := boot.ReadFile("a/" + ab.PiCmdlineFile); err == nil {
		name = "a/" + ab.PiCmdlineFile
		data = append([]byte(strings.TrimRight(string(old), "\n")), extra...)
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

// openBoot opens img and its boot FAT; the caller closes im.
func openBoot(t *testing.T, img string) (*imgfile.Image, *fat.FS) {
	t.Helper()
	im, err := imgfile.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	boot, err := im.BootFS()
	if err != nil {
		im.Close()
		t.Fatal(err)
	}
	return im, boot
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

// TestE2ERPi3Rollback is the negative twin (rollsBack).
func TestE2ERPi3Rollback(t *testing.T) {
	rollsBack(t, piImage(t, "rpi3"), startRPi3)
}

// rollsBack arms slot b of img for one trial, but b's kernel is 4 KiB of
// zeros (a broken update). The first boot counts the trial down (U-Boot's
// fatwrite of the state file on the SD card) and fails to boot slot b; the
// next boot has no tries left, says so, and boots slot a; the state file
// then says b failed. Both boots stop once U-Boot has chosen (the kernel is
// not waited for).
func rollsBack(t *testing.T, img string, start func(context.Context, *testing.T, string) *qemu.Machine) {
	t.Helper()
	p, err := imgfile.BootPartition(img)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = fat.AddFile(f, p.Start, p.Size, "b/"+contract.KernelFile, make([]byte, 4096), 0)
	if err == nil {
		err = fat.AddFile(f, p.Start, p.Size, contract.BootStateFile, ab.StateText(contract.SlotA, contract.SlotB, 1), 0)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), rpi3Deadline)
	defer cancel()
	m := start(ctx, t, img)
	expect(ctx, t, m, "basalt: booting slot b")
	expect(ctx, t, m, "Bad Linux ARM64 Image magic!")
	m.Kill()
	<-m.Exited()

	m = start(ctx, t, img)
	expect(ctx, t, m, "basalt: slot b failed its trial, booting slot a")
	expect(ctx, t, m, "basalt: booting slot a")
	m.Kill()
	<-m.Exited()
	im, boot := openBoot(t, img)
	defer im.Close()
	if st, err := (ab.UBoot{}).State(boot, ab.Env{}); err != nil || st.Committed != contract.SlotA || st.Failed != contract.SlotB {
		t.Errorf("state after the rollback: %+v %v, want committed a, slot b failed", st, err)
	}
}

// startOnRaspi3b returns a start function for rollsBack that boots a
// 64-bit Pi image's own U-Boot (rpi_arm64, the binary rpi4 and rpi5 carry)
// on QEMU's raspi3b, the image as the SD card. QEMU stands in for the
// firmware: it loads u-boot.bin from the image with the Pi 3's device tree
// from the slot kernel's own packages (release: its kernel release prefix;
// the rpi4 and rpi5 images have only their own trees at the root, for the
// real firmware). U-Boot then runs the image's boot.scr; its ${fdtfile}
// (the Pi 3's) is not in slot a, so the kernel gets the tree U-Boot was
// given.
func startOnRaspi3b(release string) func(context.Context, *testing.T, string) *qemu.Machine {
	return func(ctx context.Context, t *testing.T, img string) *qemu.Machine {
		t.Helper()
		im, boot := openBoot(t, img)
		ub, err := boot.ReadFile("u-boot.bin")
		im.Close()
		if err != nil {
			t.Fatal(err)
		}
		uboot := filepath.Join(t.TempDir(), "u-boot.bin")
		if err := os.WriteFile(uboot, ub, 0o644); err != nil {
			t.Fatal(err)
		}
		k, _ := filepath.Abs("../.cache/basalt")
		dtbs, _ := filepath.Glob(filepath.Join(k, "tree", "kernel-v2-*", "root", "usr", "lib", "linux-image-"+release+"*", "broadcom", "bcm2837-rpi-3-b.dtb"))
		if len(dtbs) == 0 {
			t.Fatalf("no bcm2837-rpi-3-b.dtb of a %s kernel in the cache (make pi-inputs)", release)
		}
		b, err := boards.Get("rpi3") // raspi3b's QEMU section
		if err != nil {
			t.Fatal(err)
		}
		m, err := qemu.Start(ctx, qemu.Config{Board: b, Image: img, Accel: qemu.TCG, NoReboot: true, Kernel: uboot, DTB: dtbs[0]})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Kill() })
		return m
	}
}

// uBootOnRaspi3b boots board's image through the U-Boot and boot.scr it
// carries, on raspi3b (QEMU emulates no Pi 4 or Pi 5), with one build:
//   - ready: slot a's kernel (release) and initrd from boot.scr, stage 1
//     finds the MBR partitions by position, mounts root a through
//     dm-verity, ready;
//   - failed-trial-rolls-back, the negative twin: slot b armed for one
//     trial with a broken kernel; U-Boot counts the trial down on the SD
//     card (fatwrite), fails to boot b, and the next boot falls back to a.
//
// A board whose console is not the Pi 3's gets the Pi 3's (the mini UART
// QEMU's serial shows) added to slot a's arguments: the last console= is
// /dev/console. The board's SoC, its firmware loading U-Boot and its
// device tree are not exercised (docs/boards.md).
func uBootOnRaspi3b(t *testing.T, board, release string) {
	b, err := boards.Get(board)
	if err != nil {
		t.Fatal(err)
	}
	pi3, err := boards.Get("rpi3")
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	if b.Console != pi3.Console {
		args = append(args, "console="+pi3.Console)
	}
	img := piImage(t, board, args...)
	start := startOnRaspi3b(release)
	t.Run("ready", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), rpi3Deadline)
		defer cancel()
		m := start(ctx, t, img)
		expect(ctx, t, m, "basalt: booting slot a")
		t.Logf("%s", expect(ctx, t, m, "Linux version "+release))
		expect(ctx, t, m, "Machine model: Raspberry Pi 3 Model B")
		t.Logf("%s", expect(ctx, t, m, contract.RootMountedMarker(contract.SlotA)))
		t.Logf("%s", expect(ctx, t, m, contract.MarkerReady))
		m.Kill()
		<-m.Exited()
	})
	t.Run("failed-trial-rolls-back", func(t *testing.T) {
		rollsBack(t, img, start)
	})
}

// TestE2ERPi4UBoot boots the rpi4 image (trixie's 6.12 kernel) on raspi3b
// (uBootOnRaspi3b).
func TestE2ERPi4UBoot(t *testing.T) {
	uBootOnRaspi3b(t, "rpi4", "6.12.")
}

// TestE2ERPi5UBoot boots the rpi5 image (trixie-backports' 7.3 kernel, its
// initramfs with the Pi 5's SD and RP1 modules and the Pi 3's SD host) on
// raspi3b (uBootOnRaspi3b): the rpi5 slot chain, not the BCM2712.
func TestE2ERPi5UBoot(t *testing.T) {
	uBootOnRaspi3b(t, "rpi5", "7.3.")
}
