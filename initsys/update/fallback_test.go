package update

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/ab"
)

// Stage 1 refused slot a of a fresh image (both slots hold 1.0.0) and fell
// back: the boot of b reports why once, keeps it in the status, clears
// the record and disarms a.
func TestAfterBootReportsStage1Fallback(t *testing.T) {
	for _, mech := range []string{ab.BLSName, ab.UBootName} {
		t.Run(mech, func(t *testing.T) {
			f := newFake(t, mech)
			d := ab.Dir(f.boot)
			m, _ := ab.For(mech)
			for _, x := range m.Initial(ab.Entry{Slot: "a", Cmdline: "basalt.slot=${slot}"}, ab.Entry{Slot: "b", Cmdline: "basalt.slot=${slot}"}) {
				d.WriteFile(x.Path, x.Data)
			}
			d.WriteFile("b/version", []byte("1.0.0\n"))
			d.WriteFile("b/vmlinuz", []byte("kernel"))
			const why = "stage 1 refused its root: dm-verity found corruption"
			if err := ab.RecordFailure(d, "a", why); err != nil {
				t.Fatal(err)
			}
			if to, err := m.Fallback(d, ab.Env{Booted: "a"}); err != nil || to != "b" {
				t.Fatalf("Fallback: %s, %v", to, err)
			}
			f.restart(t, mech, "b", "1.0.0")
			if err := f.u.AfterBoot(context.Background(), nil, GateOptions{}, nil); err != nil {
				t.Fatal(err)
			}
			st := f.u.Status()
			if st.Phase != RolledBack || st.Slot != "a" || st.FailedReason != why || st.AB != "committed b" {
				t.Errorf("status %+v", st)
			}
			if c := f.console.String(); !strings.Contains(c, "slot a failed at boot: "+why) || !strings.Contains(c, "rolled back from 1.0.0 (slot a): "+why) {
				t.Errorf("console:\n%s", c)
			}
			if fs, _ := ab.ReadFailures(d); fs != nil {
				t.Errorf("record not cleared: %v", fs)
			}
			// The next boot says nothing again.
			f.console.Reset()
			f.restart(t, mech, "b", "1.0.0")
			f.u.AfterBoot(context.Background(), nil, GateOptions{}, nil)
			if c := f.console.String(); strings.Contains(c, "failed at boot") {
				t.Errorf("reported again:\n%s", c)
			}
			// b fails later: a's entry was removed, nothing to fall back to
			// (U-Boot boots a once more, which then finds b spent: ab's tests).
			if _, err := m.Fallback(d, ab.Env{Booted: contract.SlotB}); mech == ab.BLSName && !errors.Is(err, ab.ErrNoGoodSlot) {
				t.Errorf("Fallback from b after a was disarmed: %v", err)
			}
		})
	}
}

// A record that does not parse (anyone can write the FAT) is said and
// cleared, not said again on every boot.
func TestAfterBootClearsUnreadableFailures(t *testing.T) {
	f := newFake(t, ab.BLSName)
	d := ab.Dir(f.boot)
	d.WriteFile(ab.FailureFile, []byte("garbage\n"))
	f.restart(t, ab.BLSName, "a", "1.0.0")
	if err := f.u.AfterBoot(context.Background(), nil, GateOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	if c := f.console.String(); !strings.Contains(c, ab.FailureFile+" line 1") || !strings.Contains(c, "(clearing it)") {
		t.Errorf("console:\n%s", c)
	}
	if _, err := d.ReadFile(ab.FailureFile); err == nil {
		t.Error("unreadable record kept")
	}
}
