package ab_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/ab"
	"github.com/basaltos/basalt/contract/ab/pimodel"
)

const piDTB = "bcm2711-rpi-4-b.dtb"

// piCard is a fresh boot FAT of a Pi image (slot a committed) with the
// firmware model reading it.
func piCard(t *testing.T) (ab.Dir, *pimodel.Firmware) {
	t.Helper()
	d := ab.Dir(t.TempDir())
	for _, f := range (ab.Tryboot{}).Initial(piEntry(contract.SlotA)) {
		if err := d.WriteFile(f.Path, f.Data); err != nil {
			t.Fatal(err)
		}
	}
	slotFiles(t, d, contract.SlotA)
	return d, &pimodel.Firmware{FAT: d, DTB: piDTB}
}

func piEntry(s contract.Slot) ab.Entry {
	return ab.Entry{Slot: s, Title: "demo", Version: "1.0", Cmdline: "console=ttyS0,115200 basalt.slot=${slot} ro panic=10"}
}

// slotFiles writes a slot's kernel, initrd and device tree (what the
// builder or an update writes before the slot is armed).
func slotFiles(t *testing.T, d ab.Dir, s contract.Slot) {
	t.Helper()
	for _, n := range []string{contract.KernelFile, contract.InitrdFile, piDTB} {
		if err := d.WriteFile(string(s)+"/"+n, []byte(n+" of "+string(s))); err != nil {
			t.Fatal(err)
		}
	}
}

func boot(t *testing.T, fw *pimodel.Firmware, want contract.Slot, wantTryboot bool) pimodel.Boot {
	t.Helper()
	b, err := fw.Boot()
	if err != nil {
		t.Fatal(err)
	}
	if b.Slot != want || b.Tryboot != wantTryboot {
		t.Fatalf("firmware booted slot %s (tryboot %v), want %s (tryboot %v)", b.Slot, b.Tryboot, want, wantTryboot)
	}
	wantCmd := "console=ttyS0,115200 basalt.slot=" + string(want) + " ro panic=10"
	if b.Cmdline != wantCmd || b.Kernel != string(want)+"/vmlinuz" || b.Initrd != string(want)+"/initrd" || b.DTB != string(want)+"/"+piDTB {
		t.Fatalf("boot %+v, want slot %s's files and cmdline %q", b, want, wantCmd)
	}
	return b
}

func piState(t *testing.T, d ab.Dir, env ab.Env) ab.State {
	t.Helper()
	st, err := ab.Tryboot{}.State(d, env)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// arm puts b on trial as the device does: write the slot, arm, reboot
// with the mechanism's reboot argument.
func arm(t *testing.T, d ab.Dir, fw *pimodel.Firmware, s contract.Slot) {
	t.Helper()
	slotFiles(t, d, s)
	var m ab.Mechanism = ab.Tryboot{}
	if err := m.Disarm(d, s); err != nil {
		t.Fatal(err)
	}
	if err := m.Arm(d, piEntry(s), ab.DefaultTries); err != nil {
		t.Fatal(err)
	}
	r, ok := m.(ab.Rebooter)
	if !ok {
		t.Fatal("tryboot is not an ab.Rebooter")
	}
	fw.Reboot(r.RebootArg())
}

func TestTrybootCommit(t *testing.T) {
	d, fw := piCard(t)
	b := boot(t, fw, contract.SlotA, false)
	if st := piState(t, d, b.Env()); st != (ab.State{Committed: contract.SlotA}) {
		t.Fatalf("fresh card: %s", st)
	}
	// A stray tryboot reboot with no trial armed boots the committed slot.
	fw.Reboot(ab.TrybootRebootArg)
	boot(t, fw, contract.SlotA, true)

	arm(t, d, fw, contract.SlotB)
	if st := piState(t, d, ab.Env{}); st != (ab.State{Committed: contract.SlotA, Trial: contract.SlotB, TriesLeft: 1}) {
		t.Fatalf("armed, seen from the host: %s", st)
	}
	b = boot(t, fw, contract.SlotB, true)
	if st := piState(t, d, b.Env()); !st.OnTrial || st.Trial != contract.SlotB {
		t.Fatalf("trial boot: %s", st)
	}
	if err := (ab.Tryboot{}).Commit(d, b.Env()); err != nil {
		t.Fatal(err)
	}
	fw.Reboot("")
	b = boot(t, fw, contract.SlotB, false)
	if st := piState(t, d, b.Env()); st != (ab.State{Committed: contract.SlotB}) {
		t.Fatalf("after commit: %s", st)
	}
	// The next update goes to a, and b stays the fallback.
	arm(t, d, fw, contract.SlotA)
	boot(t, fw, contract.SlotA, true)
	fw.Reboot("")
	boot(t, fw, contract.SlotB, false)
}

// TestTrybootFailedTrial: the trial slot does not commit (health gate,
// panic, watchdog): the next boot is a normal one, into the committed slot,
// and the device sees the trial failed.
func TestTrybootFailedTrial(t *testing.T) {
	d, fw := piCard(t)
	arm(t, d, fw, contract.SlotB)
	boot(t, fw, contract.SlotB, true) // the trial fails here: no commit
	if err := (ab.Tryboot{}).Commit(d, ab.Env{Booted: contract.SlotB}); err == nil {
		t.Error("commit without the tryboot flag succeeded")
	}
	fw.Reboot("") // the watchdog, panic= or the init's reboot
	b := boot(t, fw, contract.SlotA, false)
	st := piState(t, d, b.Env())
	if st != (ab.State{Committed: contract.SlotA, Failed: contract.SlotB}) {
		t.Fatalf("after the failed trial: %s", st)
	}
	if err := (ab.Tryboot{}).Commit(d, b.Env()); err == nil || !strings.Contains(err.Error(), "was not booted on trial") {
		t.Errorf("commit of the committed slot: %v", err)
	}
	if err := (ab.Tryboot{}).Disarm(d, contract.SlotB); err != nil {
		t.Fatal(err)
	}
	if st := piState(t, d, b.Env()); st != (ab.State{Committed: contract.SlotA}) {
		t.Errorf("after disarm: %s", st)
	}
	if err := (ab.Tryboot{}).Disarm(d, contract.SlotA); err == nil {
		t.Error("disarming the committed slot succeeded")
	}
}

// An armed slot whose files are missing is not booted by the model (the
// firmware ignores the prefix and finds no kernel at the root).
func TestTrybootMissingSlot(t *testing.T) {
	d, fw := piCard(t)
	if err := (ab.Tryboot{}).Arm(d, piEntry(contract.SlotB), 1); err != nil {
		t.Fatal(err)
	}
	fw.Reboot(ab.TrybootRebootArg)
	if _, err := fw.Boot(); err == nil || !strings.Contains(err.Error(), "no b/vmlinuz") {
		t.Errorf("boot of an empty slot: %v", err)
	}
}

// Commit keeps what else config.txt says (a user's dtoverlay=).
func TestTrybootCommitKeepsSettings(t *testing.T) {
	d, fw := piCard(t)
	cfg, _ := d.ReadFile(ab.PiConfigFile)
	if err := d.WriteFile(ab.PiConfigFile, append(cfg, "dtoverlay=disable-bt\n"...)); err != nil {
		t.Fatal(err)
	}
	arm(t, d, fw, contract.SlotB)
	b := boot(t, fw, contract.SlotB, true)
	if err := (ab.Tryboot{}).Commit(d, b.Env()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{ab.PiConfigFile, ab.PiTrybootFile} {
		got, _ := d.ReadFile(f)
		if !strings.Contains(string(got), "\nos_prefix=b/\n") || !strings.Contains(string(got), "dtoverlay=disable-bt\n") || !strings.Contains(string(got), "dtparam=watchdog=on\n") {
			t.Errorf("%s after commit:\n%s", f, got)
		}
	}
}

func TestTrybootBadConfig(t *testing.T) {
	d, _ := piCard(t)
	for _, tt := range []struct{ data, want string }{
		{"kernel=vmlinuz\n", "config.txt: want exactly one os_prefix= line, found 0"},
		{"os_prefix=a/\nos_prefix=b/\n", "found 2"},
		{"os_prefix=c/\n", `os_prefix "c/" names no slot`},
	} {
		if err := d.WriteFile(ab.PiConfigFile, []byte(tt.data)); err != nil {
			t.Fatal(err)
		}
		if _, err := (ab.Tryboot{}).State(d, ab.Env{}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err = %v, want %q", tt.data, err, tt.want)
		}
	}
}

func TestReadTrybootFlag(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		data []byte
		want bool
		err  bool
	}{{[]byte{0, 0, 0, 1}, true, false}, {[]byte{0, 0, 0, 0}, false, false}, {[]byte{1}, false, true}} {
		p := filepath.Join(dir, "tryboot")
		os.WriteFile(p, tt.data, 0o644)
		got, err := ab.ReadTrybootFlag(p)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("%x: %v, %v", tt.data, got, err)
		}
	}
	if got, err := ab.ReadTrybootFlag(filepath.Join(dir, "none")); got || err != nil {
		t.Errorf("missing: %v, %v", got, err)
	}
}

// A committed slot that stage 1 refuses hands over to the spare; when
// that fails too, there is no good slot.
func TestTrybootFallback(t *testing.T) {
	d := ab.Dir(t.TempDir())
	for _, f := range (ab.Tryboot{}).Initial(piEntry(contract.SlotA), piEntry(contract.SlotB)) {
		if err := d.WriteFile(f.Path, f.Data); err != nil {
			t.Fatal(err)
		}
	}
	slotFiles(t, d, contract.SlotA)
	slotFiles(t, d, contract.SlotB)
	fw := &pimodel.Firmware{FAT: d, DTB: piDTB}
	b := boot(t, fw, contract.SlotA, false)
	to, err := (ab.Tryboot{}).Fallback(d, b.Env())
	if err != nil || to != contract.SlotB {
		t.Fatalf("Fallback from a: %s, %v", to, err)
	}
	fw.Reboot("")
	b = boot(t, fw, contract.SlotB, false)
	if st := piState(t, d, b.Env()); st != (ab.State{Committed: contract.SlotB, Failed: contract.SlotA}) {
		t.Fatalf("on b: %s", st)
	}
	if _, err := (ab.Tryboot{}).Fallback(d, b.Env()); !errors.Is(err, ab.ErrNoGoodSlot) {
		t.Errorf("Fallback from b: %v, want ErrNoGoodSlot", err)
	}
	// A failed trial: the next plain boot is the committed slot.
	if err := (ab.Tryboot{}).Disarm(d, contract.SlotA); err != nil {
		t.Fatal(err)
	}
	arm(t, d, fw, contract.SlotA)
	b = boot(t, fw, contract.SlotA, true)
	if to, err := (ab.Tryboot{}).Fallback(d, b.Env()); err != nil || to != contract.SlotB {
		t.Fatalf("Fallback of the trial: %s, %v", to, err)
	}
	fw.Reboot("")
	b = boot(t, fw, contract.SlotB, false)
	if st := piState(t, d, b.Env()); st != (ab.State{Committed: contract.SlotB, Failed: contract.SlotA}) {
		t.Errorf("after the failed trial: %s", st)
	}
}
