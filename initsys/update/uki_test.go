package update

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/ab"
	"github.com/basaltos/basalt/contract/bundle"
)

// fakeUKI stands in for slot's signed UKI of version (named so: the
// device only hashes and places it; image/build and the QEMU Secure Boot
// test have real ones).
func fakeUKI(slot contract.Slot, version string) []byte {
	return []byte("fake uki of slot " + string(slot) + " " + version)
}

// secureBootBundle makes makeBundle's manifest a Secure Boot one: uki-a and
// uki-b in place of kernel and initrd.
func secureBootBundle(version string) func(*bundle.Manifest) {
	return func(m *bundle.Manifest) {
		m.Payloads = m.Payloads[:1]
		for _, slot := range []contract.Slot{contract.SlotA, contract.SlotB} {
			b := fakeUKI(slot, version)
			m.Payloads = append(m.Payloads, bundle.Payload{Name: bundle.UKIName(slot), Kind: bundle.UKI, Size: int64(len(b)), SHA256: sum(b)})
		}
	}
}

// newSecureBootFake is newFake(BLS) whose slot a boots a UKI.
func newSecureBootFake(t *testing.T) *fakeDevice {
	f := newFake(t, ab.BLSName)
	os.Remove(filepath.Join(f.boot, "a", contract.KernelFile))
	m, _ := ab.For(ab.BLSName)
	for _, x := range m.Initial(ab.Entry{Slot: "a", Title: "demo 1.0.0", Cmdline: "basalt.slot=${slot}", UKI: true}) {
		ab.Dir(f.boot).WriteFile(x.Path, x.Data)
	}
	ab.Dir(f.boot).WriteFile("a/"+contract.UKIFile, fakeUKI("a", "1.0.0"))
	return f
}

// TestApplySecureBootBundle: the target's UKI becomes b/uki.efi, the
// entry boots it (efi, no options), no kernel or initrd is written, no
// staged file is left; a trial of b then commits like any other.
func TestApplySecureBootBundle(t *testing.T) {
	f := newSecureBootFake(t)
	if _, err := f.u.Apply(context.Background(), makeBundle(t, "1.1.0", secureBootBundle("1.1.0"), key), Options{}); err != nil {
		t.Fatalf("%v\n%s", err, f.console.String())
	}
	if b, _ := os.ReadFile(filepath.Join(f.boot, "b", contract.UKIFile)); string(b) != string(fakeUKI("b", "1.1.0")) {
		t.Errorf("b/%s = %q, want slot b's UKI", contract.UKIFile, b)
	}
	names, _ := ab.Dir(f.boot).Names("b")
	if strings.Join(names, " ") != contract.UKIFile+" "+contract.BootVersionFile {
		t.Errorf("b/ holds %q, want only %s and %s (no kernel, initrd or staged file)", names, contract.UKIFile, contract.BootVersionFile)
	}
	e, err := os.ReadFile(filepath.Join(f.boot, "loader/entries/basalt-b+3-0.conf"))
	if err != nil || !strings.Contains(string(e), "efi /b/"+contract.UKIFile+"\n") || strings.Contains(string(e), "linux") || strings.Contains(string(e), "options") {
		t.Errorf("entry of b (%v):\n%s", err, e)
	}
	if !strings.Contains(f.console.String(), "update: wrote b/"+contract.UKIFile+".new") {
		t.Errorf("console:\n%s", f.console.String())
	}
	if !strings.Contains(f.u.Status().AB, "trial b (3 tries left)") {
		t.Errorf("A/B state %q", f.u.Status().AB)
	}
}

// TestApplySecureBootRefusals: a UKI-booting device refuses a bundle with
// a kernel and initrd (its firmware would refuse them), a U-Boot device a
// bundle of UKIs; nothing is written either way.
func TestApplySecureBootRefusals(t *testing.T) {
	f := newSecureBootFake(t)
	before := f.snapshot(t)
	if _, err := f.u.Apply(context.Background(), makeBundle(t, "1.1.0", nil, key), Options{}); err == nil || !strings.Contains(err.Error(), "boots a signed UKI") {
		t.Errorf("kernel bundle on a Secure Boot device: %v", err)
	}
	f2 := newFake(t, ab.UBootName)
	before2 := f2.snapshot(t)
	if _, err := f2.u.Apply(context.Background(), makeBundle(t, "1.1.0", secureBootBundle("1.1.0"), key), Options{}); err == nil || !strings.Contains(err.Error(), "cannot") {
		t.Errorf("UKI bundle on a U-Boot device: %v", err)
	}
	for _, c := range []struct {
		f      *fakeDevice
		before map[string]string
	}{{f, before}, {f2, before2}} {
		after := c.f.snapshot(t)
		for p, s := range c.before {
			if after[p] != s {
				t.Errorf("%s changed", p)
			}
		}
		if len(after) != len(c.before) {
			t.Errorf("files %d -> %d", len(c.before), len(after))
		}
	}
}
