//go:build e2e

package qemu_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/basaltos/basalt/contract"
)

// TestE2EFirmwareBootCorruptRoot is TestE2EFirmwareBoot's negative twin:
// one byte of root a's data area is flipped (a fresh image holds the same
// root in both slots, b intact). dm-verity refuses a, stage 1 records why
// on the boot FAT and tells the board's A/B mechanism (BLS entries,
// U-Boot state file) to boot b, and reboots; the firmware boots b to
// ready, and b's updater reports a's failure and why. Each marker within
// stepDeadline.
func TestE2EFirmwareBootCorruptRoot(t *testing.T) {
	for _, name := range directBoards {
		t.Run(name, func(t *testing.T) {
			img := buildImage(t, name, true)
			ctx, cancel := context.WithTimeout(context.Background(), firmwareDeadline)
			defer cancel()
			m := startImageReboot(ctx, t, name, img, 0, true)
			step(ctx, t, m, "basalt: stage1: root a: dm-verity on /dev/vda2")
			step(ctx, t, m, "dm-verity found corruption: the slot's data does not match its root hash")
			t.Logf("%s", step(ctx, t, m, "basalt: stage1: slot a refused: the next boot boots slot b"))
			step(ctx, t, m, "basalt: stage1: root b: dm-verity on /dev/vda3")
			t.Logf("%s", step(ctx, t, m, contract.RootMountedMarker(contract.SlotB)))
			step(ctx, t, m, contract.MarkerReady)
			t.Logf("%s", step(ctx, t, m, "basalt: update: slot a failed at boot: stage 1 refused its root: "))
			t.Logf("%s", step(ctx, t, m, "basalt: update: rolled back from 0.1.0 (slot a): stage 1 refused its root: "))
			if strings.Contains(m.Log(), contract.RootMountedMarker(contract.SlotA)) {
				t.Errorf("corrupt root a was mounted:\n%s", m.Log())
			}
		})
	}
}

// TestE2EVerityBothSlotsCorrupt is the fallback's negative twin: both
// slots have a flipped byte. a is refused and falls back to b, b is refused
// and has no good slot left (a failed): stage 1 says so with both reasons
// and stops, without rebooting again.
func TestE2EVerityBothSlotsCorrupt(t *testing.T) {
	const name = "qemu-x86_64"
	img := buildImage(t, name, true)
	flipPartByte(t, img, contract.PartRootB, 2048)
	ctx, cancel := context.WithTimeout(context.Background(), firmwareDeadline)
	defer cancel()
	m := startImageReboot(ctx, t, name, img, 0, true)
	step(ctx, t, m, "basalt: stage1: slot a refused: the next boot boots slot b")
	step(ctx, t, m, "basalt: stage1: root b: dm-verity on /dev/vda3")
	t.Logf("%s", step(ctx, t, m, "basalt: stage1: NO GOOD SLOT: slot b refused"))
	t.Logf("%s", step(ctx, t, m, "basalt: stage1: slot a failed: stage 1 refused its root: "))
	t.Logf("%s", step(ctx, t, m, "basalt: stage1: slot b failed: stage 1 refused its root: "))
	step(ctx, t, m, "basalt: stage1: stopped here")
	// Stopped: no third boot, no reboot countdown.
	time.Sleep(10 * time.Second)
	log := m.Log()
	if n := strings.Count(log, ": dm-verity on /dev/vda"); n != 2 {
		t.Errorf("%d boots, want 2 (a, then b, then stop):\n%s", n, log)
	}
	if strings.Contains(log[strings.LastIndex(log, "NO GOOD SLOT"):], "rebooting") {
		t.Errorf("rebooted after NO GOOD SLOT:\n%s", log)
	}
}
