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
	"github.com/basaltos/basalt/contract/bundle"
	"github.com/basaltos/basalt/image/disk"
	"github.com/basaltos/basalt/internal/testutil"
	"github.com/basaltos/basalt/qemu"
)

// TestE2ESecureBootUpdate: v1 and v2 of a Secure Boot image (same keys) on
// qemu-x86_64's Secure Boot firmware. After the enrollment boot, v1 boots
// with Secure Boot on, pulls v2's bundle (rootfs + uki-a + uki-b) from
// `basalt serve`, writes b/uki.efi, arms `efi /b/uki.efi`, reboots into
// slot b (its signed UKI, Secure Boot still on) and commits. The negative
// twin of the firmware's check is TestE2ESecureBoot's re-signed UKI; the
// device's refusals of wrong bundle shapes are unit tests (initsys/update).
func TestE2ESecureBootUpdate(t *testing.T) {
	const board = "qemu-x86_64"
	b, err := boards.Get(board)
	if err != nil {
		t.Fatal(err)
	}
	testutil.NeedTool(t, b.QEMU.Binary)
	testutil.NeedFile(t, b.QEMU.SecureBootCode, "apt-get install "+strings.Join(b.QEMU.HostPackages, " "))
	testutil.NeedTool(t, "mtype")
	testutil.NeedFile(t, "/bin/busybox", "apt-get install busybox-static (QEMU's guestfwd relay, qemu.Relay)")
	stub := filepath.Join(testKernel(t, b.Arch), path.Base(b.EFIStub.From))
	testutil.NeedFile(t, stub, "make testdata (scripts/testkernel.sh unpacks systemd-boot-efi of the arch)")
	sb := fmt.Sprintf("secureBoot: {dir: %s, stub: %s}\n", writeKeySet(t), stub)
	img, _ := buildVersion(t, board, "1.0.0", sb)
	_, v2 := buildVersion(t, board, "1.1.0", sb)
	if m := openBundle(t, v2).Manifest(); !m.UKI() {
		t.Fatalf("v2's bundle carries no UKIs: %+v", m.Payloads)
	}
	c := serveChannel(t)
	c.publish(t, v2)
	vars := filepath.Join(t.TempDir(), "vars.fd")
	tmpl, err := os.ReadFile(b.QEMU.Vars)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(vars, tmpl, 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), updateDeadline)
	defer cancel()
	start := func(noReboot bool) *qemu.Machine {
		m, err := qemu.Start(ctx, qemu.Config{Board: b, Image: img, Format: qemu.Raw, SecureBoot: true, Vars: vars, NoReboot: noReboot,
			Net: qemu.Net{User: true, ToHost: []qemu.ToHost{{GuestPort: channelPort, HostPort: c.port}}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Kill(); m.Wait() })
		return m
	}
	t0 := time.Now()
	m := start(true)
	step(ctx, t, m, "Enrolling secure boot keys from directory")
	select { // systemd-boot resets after enrolling (-no-reboot: QEMU exits)
	case <-m.Exited():
	case <-time.After(60 * time.Second):
	}
	stop(m)
	t.Logf("enroll boot: %.1f s", time.Since(t0).Seconds())

	t1 := time.Now()
	m = start(false)
	step(ctx, t, m, contract.RootMountedMarker(contract.SlotA))
	step(ctx, t, m, "basalt: update: channel offers upd 1.1.0")
	t.Logf("%s", step(ctx, t, m, "basalt: update: wrote b/"+contract.UKIFile+".new"))
	step(ctx, t, m, "basalt: update: slot b armed for trial: upd 1.1.0, 1 tries")
	step(ctx, t, m, contract.RootMountedMarker(contract.SlotB))
	step(ctx, t, m, "basalt: update: slot b (1.1.0) booted on trial")
	step(ctx, t, m, "basalt: update: committed 1.1.0 in slot b: health gate passed")
	stop(m)
	log := m.Log()
	if n := strings.Count(log, "Secure boot enabled"); n < 2 {
		t.Errorf("%d boots said 'Secure boot enabled', want 2 (a, then b):\n%s", n, log)
	}
	t.Logf("%d kernel boots said 'Secure boot enabled'", strings.Count(log, "Secure boot enabled"))
	// The boot partition afterwards (QEMU wrote through to img): b's
	// committed entry boots its UKI, b has no kernel or initrd.
	l, err := disk.Read(img)
	if err != nil {
		t.Fatal(err)
	}
	fatImg := fmt.Sprintf("%s@@%d", img, l.Partitions[0].Start)
	mtools := func(args ...string) string {
		out, err := exec.Command(args[0], append([]string{"-i", fatImg}, args[1:]...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	entry := mtools("mtype", "::loader/entries/basalt-b.conf")
	if !strings.Contains(entry, "efi /b/"+contract.UKIFile+"\n") || !strings.Contains(entry, "1.1.0") {
		t.Errorf("b's entry:\n%s", entry)
	}
	ls := mtools("mdir", "-b", "::b")
	if strings.Contains(ls, contract.KernelFile) || strings.Contains(ls, contract.InitrdFile) || !strings.Contains(ls, contract.UKIFile) {
		t.Errorf("b/ holds:\n%s", ls)
	}
	t.Logf("boot partition: b/ = %s; basalt-b.conf:\n%s", strings.Join(strings.Fields(ls), " "), entry)
	t.Logf("v1 boot, apply of v2 (%s written as b/%s), trial boot of b with Secure Boot on, commit: %.1f s", bundle.UKIName(contract.SlotB), contract.UKIFile, time.Since(t1).Seconds())
}
