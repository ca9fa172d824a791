//go:build e2e

package qemu_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/image/build"
	"github.com/basaltos/basalt/image/disk"
	"github.com/basaltos/basalt/image/spec"
	"github.com/basaltos/basalt/internal/testutil"
	"github.com/basaltos/basalt/qemu"
)

// firmwareDeadline bounds a boot through UEFI or U-Boot under TCG.
const firmwareDeadline = 10 * time.Minute

// The EFI binary of systemd-boot per board, from the host (amd64) or put
// next to the test kernel (arm64: dpkg-deb -x of systemd-boot-efi:arm64).
var sdBoot = map[string]string{
	"qemu-x86_64": "/usr/lib/systemd/boot/efi/systemd-bootx64.efi",
	"qemu-arm64":  "../.cache/testkernel/arm64/systemd-bootaa64.efi",
}

// TestE2EFirmwareBoot builds the default image (image/build, offline, with
// the test kernel) for each QEMU board and boots it through its firmware
// (OVMF or AAVMF + systemd-boot, U-Boot + boot.scr), through dm-verity
// (on by default) to the ready marker, on a 2 GiB virtual disk (a qcow2
// overlay of the raw image).
func TestE2EFirmwareBoot(t *testing.T) {
	for _, name := range directBoards {
		t.Run(name, func(t *testing.T) {
			img := buildImage(t, name, false)
			ctx, cancel := context.WithTimeout(context.Background(), firmwareDeadline)
			defer cancel()
			m := startImage(ctx, t, name, img, 2<<30) // a bigger virtual disk than the image
			expect(ctx, t, m, "[vda] 4194304 512-byte logical blocks")
			expect(ctx, t, m, "basalt: stage1: root a: dm-verity on /dev/vda2, root hash ")
			line := expect(ctx, t, m, contract.RootMountedMarker(contract.SlotA))
			t.Logf("%s", line)
			t.Logf("%s", expect(ctx, t, m, contract.MarkerReady))
		})
	}
}

func startImage(ctx context.Context, t testing.TB, name, img string, diskSize int64) *qemu.Machine {
	t.Helper()
	return startImageReboot(ctx, t, name, img, diskSize, false)
}

// startImageReboot is startImage; with reboot, a guest's reboot boots the
// machine again (same firmware variables and disk) instead of ending QEMU.
func startImageReboot(ctx context.Context, t testing.TB, name, img string, diskSize int64, reboot bool) *qemu.Machine {
	t.Helper()
	b, err := boards.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	testutil.NeedTool(t, b.QEMU.Binary)
	m, err := qemu.Start(ctx, qemu.Config{Board: b, Image: img, DiskSize: diskSize, NoReboot: !reboot})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Kill(); m.Wait() })
	return m
}

// buildImage builds the default spec for board offline from the test
// kernel (and systemd-boot for UEFI boards); corrupt flips one byte in
// root a's first block, past the squashfs superblock (compressed data or
// tables: squashfs alone might not even notice at mount).
func buildImage(t *testing.T, board string, corrupt bool) string {
	t.Helper()
	img := buildSpecImage(t, board, "")
	if corrupt {
		flipRootByte(t, img)
	}
	return img
}

// buildSpecImage builds the default OS-only spec plus extra YAML for board.
func buildSpecImage(t testing.TB, board, extra string) string {
	t.Helper()
	b, err := boards.Get(board)
	if err != nil {
		t.Fatal(err)
	}
	k := testKernel(t, b.Arch)
	dir := t.TempDir()
	y := strings.Replace(testutil.OSOnly(spec.DefaultYAML()), "boards: [qemu-x86_64]", "boards: ["+board+"]", 1)
	if !strings.Contains(y, board) {
		t.Fatalf("default spec changed: cannot set its board:\n%s", y)
	}
	y += extra + fmt.Sprintf("kernel:\n  %s: {vmlinuz: %s/vmlinuz, modules: %s/lib/modules}\n", board, k, k)
	if efi, ok := sdBoot[board]; ok {
		abs, _ := filepath.Abs(efi)
		testutil.NeedFile(t, abs, "make testdata (scripts/testkernel.sh unpacks systemd-boot-efi of the arch)")
		y += fmt.Sprintf("bootloader:\n  %s: {file: %s}\n", board, abs)
	}
	p := filepath.Join(dir, "basalt.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	s, _, err := spec.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	arts, err := build.Build(context.Background(), s, build.Options{OutDir: filepath.Join(dir, "out"), Offline: true, CacheDir: filepath.Join(dir, "cache")})
	if err != nil {
		t.Fatal(err)
	}
	return arts[0].Image
}

// flipRootByte flips one byte of root a's first block, past the squashfs
// superblock.
func flipRootByte(t testing.TB, img string) { flipByte(t, img, 2048) }

// flipByte flips one bit of the byte at off in root a.
func flipByte(t testing.TB, img string, off int64) {
	t.Helper()
	flipPartByte(t, img, contract.PartRootA, off)
}

// flipPartByte flips one bit of the byte at off in partition part.
func flipPartByte(t testing.TB, img, part string, off int64) {
	t.Helper()
	l, err := disk.Read(img)
	if err != nil {
		t.Fatal(err)
	}
	var p *disk.Partition
	for i := range l.Partitions {
		if l.Partitions[i].Name == part {
			p = &l.Partitions[i]
		}
	}
	if p == nil {
		t.Fatalf("%s has no %s partition", img, part)
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, p.Start+off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, p.Start+off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
