//go:build e2e

package qemu_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/ab"
	"github.com/basaltos/basalt/image/disk"
	"github.com/basaltos/basalt/image/secureboot"
	"github.com/basaltos/basalt/internal/testutil"
	"github.com/basaltos/basalt/qemu"
)

// secureBootPhase bounds each phase of the Secure Boot test (firmware with
// SMM under TCG is slow, but a phase that hears nothing must fail and free
// the QEMU lock within minutes).
const secureBootPhase = 4 * time.Minute

// secureBootBoards are the boards booted with Secure Boot: OVMF's SMM
// build on x86, AAVMF on arm64.
var secureBootBoards = []string{"qemu-x86_64", "qemu-arm64"}

// TestE2ESecureBoot builds an image signed with keys from
// secureboot.KeySet (what basalt keygen --secure-boot writes) per board and
// boots it on the board's Secure Boot firmware with a vars file in setup
// mode:
//  1. systemd-boot enrolls the image's db, KEK and PK and resets;
//  2. with the same vars (Secure Boot now on) the signed UKI boots to the
//     ready marker, and the kernel (x86) or its EFI stub (arm64) says
//     Secure Boot is enabled;
//  3. negative twin: slot a's UKI re-signed with another key is refused
//     (systemd-boot: "Error loading \a\uki.efi: Access Denied", the
//     firmware's verdict), and nothing of Linux starts.
//
// Measured here (TCG, loaded host): 113 s for both boards; qemu-x86_64
// 44-58 s (boots of 6-17, 15-23 and 16-19 s), qemu-arm64 63 s (23, 21 and
// 16 s: likely systemd-boot's 15 s countdown before enrolling, skipped
// only where it detects a hypervisor).
func TestE2ESecureBoot(t *testing.T) {
	for _, board := range secureBootBoards {
		t.Run(board, func(t *testing.T) { secureBootTest(t, board) })
	}
}

func secureBootTest(t *testing.T, board string) {
	b, err := boards.Get(board)
	if err != nil {
		t.Fatal(err)
	}
	testutil.NeedTool(t, b.QEMU.Binary)
	testutil.NeedTool(t, "mcopy")
	testutil.NeedFile(t, b.QEMU.SecureBootCode, "apt-get install "+strings.Join(b.QEMU.HostPackages, " "))
	stub := filepath.Join(testKernel(t, b.Arch), path.Base(b.EFIStub.From))
	testutil.NeedFile(t, stub, "make testdata (scripts/testkernel.sh unpacks systemd-boot-efi of the arch)")
	keys := writeKeySet(t)
	img := buildSpecImage(t, board, fmt.Sprintf("secureBoot: {dir: %s, stub: %s}\n", keys, stub))

	vars := filepath.Join(t.TempDir(), "vars.fd")
	tmpl, err := os.ReadFile(b.QEMU.Vars)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vars, tmpl, 0o644); err != nil {
		t.Fatal(err)
	}
	boot := func(phase string) (*qemu.Machine, context.Context) {
		ctx, cancel := context.WithTimeout(context.Background(), secureBootPhase)
		t.Cleanup(cancel)
		m, err := qemu.Start(ctx, qemu.Config{Board: b, Image: img, Snapshot: true, NoReboot: true, SecureBoot: true, Vars: vars})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Kill(); m.Wait() })
		t.Logf("%s: %s", phase, strings.Join(m.Args(), " "))
		return m, ctx
	}
	stop := func(m *qemu.Machine) {
		// systemd-boot resets after enrolling (-no-reboot: QEMU exits);
		// OVMF may also hang in that reset, so do not wait long.
		select {
		case <-m.Exited():
		case <-time.After(60 * time.Second):
		}
		m.Kill()
		m.Wait()
	}

	start := time.Now()
	m, ctx := boot("enroll")
	t.Logf("%s", expect(ctx, t, m, "Enrolling secure boot keys from directory: "+strings.ReplaceAll("/"+ab.BLSKeysDir, "/", `\`)))
	stop(m)
	if strings.Contains(m.Log(), "Failed to write") { // systemd-boot: the firmware refused a key
		t.Fatalf("enrolling the keys failed:\n%s", m.Log())
	}
	t.Logf("enroll boot: %.1f s", time.Since(start).Seconds())

	start = time.Now()
	m, ctx = boot("signed")
	t.Logf("%s", expect(ctx, t, m, "basalt: stage1: root a: dm-verity on /dev/vda2, root hash "))
	t.Logf("%s", expect(ctx, t, m, contract.MarkerReady))
	m.Kill()
	m.Wait()
	// x86: the kernel's "secureboot: Secure boot enabled"; arm64: its EFI
	// stub's "EFI stub: UEFI Secure Boot is enabled."
	if log := m.Log(); !strings.Contains(log, "Secure boot enabled") && !strings.Contains(log, "UEFI Secure Boot is enabled") {
		t.Fatalf("the signed boot did not run with Secure Boot on:\n%s", log)
	}
	t.Logf("signed boot: %.1f s", time.Since(start).Seconds())

	// The twin: slot a's UKI signed by a key the firmware does not trust.
	resignUKI(t, img)
	start = time.Now()
	m, ctx = boot("re-signed")
	t.Logf("%s", expect(ctx, t, m, `Error loading \`+contract.SlotDir(contract.SlotA)+`\`+contract.UKIFile))
	select { // the firmware must not run the kernel after refusing it
	case <-m.Exited():
	case <-time.After(10 * time.Second):
	}
	m.Kill()
	m.Wait()
	for _, bad := range []string{"Linux version", "basalt: stage1", contract.MarkerReady} {
		if strings.Contains(m.Log(), bad) {
			t.Errorf("the re-signed UKI ran (%q on the console):\n%s", bad, m.Log())
		}
	}
	t.Logf("re-signed boot: %.1f s", time.Since(start).Seconds())
}

// writeKeySet writes a Secure Boot key directory (as basalt keygen
// --secure-boot does) and returns its path.
func writeKeySet(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "sb")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	files, err := secureboot.KeySet("basalt e2e", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// resignUKI replaces slot a's UKI in img's boot partition with the same
// image signed by a freshly generated key (mtools on the FAT in place).
func resignUKI(t *testing.T, img string) {
	t.Helper()
	l, err := disk.Read(img)
	if err != nil {
		t.Fatal(err)
	}
	fatImg := fmt.Sprintf("%s@@%d", img, l.Partitions[0].Start)
	uki := contract.SlotDir(contract.SlotA) + "/" + contract.UKIFile
	local := filepath.Join(t.TempDir(), "uki.efi")
	if out, err := exec.Command("mcopy", "-n", "-i", fatImg, "::"+uki, local).CombinedOutput(); err != nil {
		t.Fatalf("mcopy out: %v\n%s", err, out)
	}
	data, err := os.ReadFile(local)
	if err != nil {
		t.Fatal(err)
	}
	other, err := secureboot.Generate("not enrolled", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if data, err = secureboot.Sign(data, other); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(local, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mcopy", "-o", "-n", "-i", fatImg, local, "::"+uki).CombinedOutput(); err != nil {
		t.Fatalf("mcopy in: %v\n%s", err, out)
	}
}
