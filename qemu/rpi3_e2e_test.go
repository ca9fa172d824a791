//go:build e2e

package qemu_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/ab"
	"github.com/basaltos/basalt/image/build"
	"github.com/basaltos/basalt/image/fat"
	"github.com/basaltos/basalt/image/imgfile"
	"github.com/basaltos/basalt/image/spec"
	"github.com/basaltos/basalt/internal/testutil"
	"github.com/basaltos/basalt/qemu"
)

// rpi3Deadline bounds one raspi3b boot under TCG: U-Boot reads the 38 MiB
// kernel from the emulated SD card at about 1 MiB/s, stage 1 loads 36
// modules.
const rpi3Deadline = 12 * time.Minute

// rpi3Image builds the Raspberry Pi example's rpi3 image offline (the
// inputs `make pi-inputs` fetched) and sizes it to 1 GiB, a power of two
// as QEMU wants an SD card, so that the test boots the file itself and
// U-Boot's writes to the state file stay in it from one boot to the next.
func rpi3Image(t *testing.T) string {
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
	arts, err := build.Build(context.Background(), s, build.Options{OutDir: filepath.Join(dir, "out"), CacheDir: cacheDir, Offline: true, Boards: []string{"rpi3"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(arts[0].Image, 1<<30); err != nil {
		t.Fatal(err)
	}
	return arts[0].Image
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
	img := rpi3Image(t)
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
	img := rpi3Image(t)
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
