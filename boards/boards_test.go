package boards

import (
	"testing"

	"github.com/basaltos/basalt/contract/ab"
)

func TestBoardsAreComplete(t *testing.T) {
	if len(All()) == 0 {
		t.Fatal("no boards")
	}
	for _, b := range All() {
		if b.Arch != AMD64 && b.Arch != ARM64 && b.Arch != ARMHF {
			t.Errorf("%s: arch %q", b.Name, b.Arch)
		}
		if b.Kernel.Package == "" || b.Console == "" || len(b.Modules) == 0 {
			t.Errorf("%s: kernel package, console and modules are required", b.Name)
		}
		if b.Kernel.Suite != "" && b.Kernel.Suite != KernelBackports {
			t.Errorf("%s: kernel suite %q (want \"\" or %s)", b.Name, b.Kernel.Suite, KernelBackports)
		}
		if b.Table != "gpt" && b.Table != "mbr" {
			t.Errorf("%s: table %q", b.Name, b.Table)
		}
		if _, err := ab.For(string(b.AB)); err != nil {
			t.Errorf("%s: %v", b.Name, err)
		}
		switch b.Bootloader {
		case SystemdBoot:
			if b.AB != BLSBootCounting || len(b.BootFiles) == 0 {
				t.Errorf("%s: systemd-boot needs bls-boot-counting and its EFI binary", b.Name)
			}
		case UBootScript:
			if b.AB != UBootState {
				t.Errorf("%s: uboot-script needs uboot-state", b.Name)
			}
		case RPiFirmware:
			if b.AB != RPiTryboot || b.Table != "mbr" || len(b.DTBs) == 0 {
				t.Errorf("%s: the Pi firmware needs rpi-tryboot, an MBR and device trees", b.Name)
			}
		default:
			t.Errorf("%s: bootloader %q", b.Name, b.Bootloader)
		}
	}
	for _, n := range []string{"qemu-x86_64", "qemu-arm64", "qemu-armv7"} {
		b, err := Get(n)
		if err != nil {
			t.Fatal(err)
		}
		if b.QEMU == nil || b.QEMU.Binary == "" || (b.QEMU.Code == "" && b.QEMU.BIOS == "") {
			t.Errorf("%s: needs a qemu section with binary and firmware", n)
		}
	}
}

func TestUnknownBoardListsKnown(t *testing.T) {
	_, err := Get("nope")
	if err == nil {
		t.Fatal("want error")
	}
	if got := err.Error(); got != `unknown board "nope" (known: pc-x86_64, qemu-arm64, qemu-armv7, qemu-x86_64, rpi3, rpi4, rpi4-tryboot, rpi5, uefi-arm64)` {
		t.Errorf("error: %s", got)
	}
}
