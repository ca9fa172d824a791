package ab

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/basaltos/basalt/contract"
)

// freshBoth is a fresh image with slot a committed and slot b installed
// as its spare, both slots' kernels on the FAT.
func freshBoth(t *testing.T, m Mechanism) Dir {
	t.Helper()
	d := Dir(t.TempDir())
	for _, f := range m.Initial(entry(contract.SlotA), entry(contract.SlotB)) {
		if err := d.WriteFile(f.Path, f.Data); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []contract.Slot{contract.SlotA, contract.SlotB} {
		if err := d.WriteFile(contract.SlotDir(s)+"/"+contract.KernelFile, []byte("kernel")); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// bootUBoot does what boot.scr does (BootScript): a trial with tries left
// is counted down and booted, else the committed slot.
func bootUBoot(t *testing.T, d Dir) contract.Slot {
	t.Helper()
	b, err := d.ReadFile(contract.BootStateFile)
	if err != nil {
		t.Fatal(err)
	}
	c, tr, n, err := ParseState(b)
	if err != nil {
		t.Fatal(err)
	}
	if tr != "" && n > 0 {
		d.WriteFile(contract.BootStateFile, StateText(c, tr, n-1))
		return tr
	}
	return c
}

func TestBLSFallback(t *testing.T) {
	m := BLS{}
	d := freshBoth(t, m)
	if got := entries(t, d); !cmp.Equal(got, []string{"basalt-a.conf", "basalt-b.conf"}) {
		t.Fatalf("initial entries %v", got)
	}
	if st := state(t, m, d, Env{}); st != (State{Committed: "a"}) {
		t.Fatalf("fresh state %s", st)
	}
	if slot, _ := bootBLS(t, d); slot != "a" {
		t.Fatalf("fresh boot: slot %s", slot)
	}
	to, err := m.Fallback(d, Env{Booted: "a"})
	if err != nil || to != "b" {
		t.Fatalf("Fallback from a: %s, %v", to, err)
	}
	if got := entries(t, d); !cmp.Equal(got, []string{"basalt-a+0-1.conf", "basalt-b.conf"}) {
		t.Errorf("entries after fallback %v", got)
	}
	slot, _ := bootBLS(t, d)
	if slot != "b" {
		t.Fatalf("boot after fallback: slot %s, want b", slot)
	}
	if st := state(t, m, d, Env{Booted: slot}); st != (State{Committed: "b", Failed: "a"}) {
		t.Errorf("state on b %s", st)
	}
	// b fails too: a has no tries left, nothing is touched.
	if _, err := m.Fallback(d, Env{Booted: "b"}); !errors.Is(err, ErrNoGoodSlot) {
		t.Errorf("Fallback from b with a failed: %v, want ErrNoGoodSlot", err)
	}
	if got := entries(t, d); !cmp.Equal(got, []string{"basalt-a+0-1.conf", "basalt-b.conf"}) {
		t.Errorf("entries after the refused fallback %v", got)
	}
	// The updater disarms the failed slot on b; a later failure of b still stops.
	if err := m.Disarm(d, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Fallback(d, Env{Booted: "b"}); !errors.Is(err, ErrNoGoodSlot) {
		t.Errorf("Fallback from b with no entry of a: %v", err)
	}
}

// A trial slot that fails stage 1 ends its trial at once.
func TestBLSFallbackTrial(t *testing.T) {
	m := BLS{}
	d := fresh(t, m)
	if err := m.Arm(d, entry("b"), 3); err != nil {
		t.Fatal(err)
	}
	slot, _ := bootBLS(t, d)
	if slot != "b" {
		t.Fatalf("trial boot: slot %s", slot)
	}
	if to, err := m.Fallback(d, Env{Booted: "b"}); err != nil || to != "a" {
		t.Fatalf("Fallback of the trial: %s, %v", to, err)
	}
	if slot, _ := bootBLS(t, d); slot != "a" {
		t.Fatalf("after the failed trial: slot %s, want a", slot)
	}
	if st := state(t, m, d, Env{Booted: "a"}); st != (State{Committed: "a", Failed: "b"}) {
		t.Errorf("state %s", st)
	}
}

// An image without a spare (built before both slots were installed) has
// nothing to fall back to.
func TestFallbackWithoutSpare(t *testing.T) {
	for _, m := range []Mechanism{BLS{}, UBoot{}} {
		d := fresh(t, m)
		if _, err := m.Fallback(d, Env{Booted: "a"}); !errors.Is(err, ErrNoGoodSlot) {
			t.Errorf("%s: %v, want ErrNoGoodSlot", m.Name(), err)
		}
	}
}

func TestUBootFallback(t *testing.T) {
	m := UBoot{}
	d := freshBoth(t, m)
	if b, _ := d.ReadFile("b/" + contract.SlotArgsFile); string(b) != "basalt_args=\n" {
		t.Errorf("spare args file %q", b)
	}
	if slot := bootUBoot(t, d); slot != "a" {
		t.Fatalf("fresh boot: %s", slot)
	}
	if to, err := m.Fallback(d, Env{Booted: "a"}); err != nil || to != "b" {
		t.Fatalf("Fallback from a: %s, %v", to, err)
	}
	slot := bootUBoot(t, d)
	if slot != "b" {
		t.Fatalf("boot after fallback: %s", slot)
	}
	if st := state(t, m, d, Env{Booted: slot}); st != (State{Committed: "b", Failed: "a"}) {
		t.Errorf("state on b %s", st)
	}
	if _, err := m.Fallback(d, Env{Booted: "b"}); !errors.Is(err, ErrNoGoodSlot) {
		t.Errorf("Fallback from b with a failed: %v", err)
	}
	// A trial of a (armed by an update, tries counted down by boot.scr).
	if err := m.Disarm(d, "a"); err != nil {
		t.Fatal(err)
	}
	if err := m.Arm(d, entry("a"), 2); err != nil {
		t.Fatal(err)
	}
	if slot := bootUBoot(t, d); slot != "a" {
		t.Fatalf("trial boot: %s", slot)
	}
	if to, err := m.Fallback(d, Env{Booted: "a"}); err != nil || to != "b" {
		t.Fatalf("Fallback of the trial: %s, %v", to, err)
	}
	if slot := bootUBoot(t, d); slot != "b" {
		t.Fatalf("after the failed trial: %s", slot)
	}
	if st := state(t, m, d, Env{Booted: "b"}); st != (State{Committed: "b", Failed: "a"}) {
		t.Errorf("after the failed trial %s", st)
	}
}

func TestFailureRecord(t *testing.T) {
	d := Dir(t.TempDir())
	if fs, err := ReadFailures(d); err != nil || fs != nil {
		t.Fatalf("no record: %v, %v", fs, err)
	}
	if err := RecordFailure(d, "b", "first\nreason"); err != nil {
		t.Fatal(err)
	}
	if err := RecordFailure(d, "a", "dm-verity: corrupt"); err != nil {
		t.Fatal(err)
	}
	if err := RecordFailure(d, "b", "second "+strings.Repeat("x", 2000)); err != nil {
		t.Fatal(err)
	}
	fs, err := ReadFailures(d)
	if err != nil {
		t.Fatal(err)
	}
	want := []Failure{{"a", "dm-verity: corrupt"}, {"b", "second " + strings.Repeat("x", maxReason-7) + "..."}}
	if diff := cmp.Diff(want, fs); diff != "" {
		t.Errorf("failures (-want +got):\n%s", diff)
	}
	if err := ClearFailures(d); err != nil {
		t.Fatal(err)
	}
	if fs, _ := ReadFailures(d); fs != nil {
		t.Errorf("after clear: %v", fs)
	}
	for _, bad := range []string{"c: x\n", "a:x\n", "a: \n", "a: x\na: y\n", "garbage\n"} {
		if _, err := ParseFailures([]byte(bad)); err == nil {
			t.Errorf("ParseFailures(%q) succeeded", bad)
		}
	}
}

// FuzzParseFailures: the record is on a FAT anyone can write; parsing never
// panics, and what parses is written back to the same failures.
func FuzzParseFailures(f *testing.F) {
	f.Add([]byte("a: dm-verity found corruption\nb: no valid hash tree\n"))
	f.Add([]byte("b: x\r\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fs, err := ParseFailures(b)
		if err != nil {
			return
		}
		again, err := ParseFailures(failuresText(fs))
		if err != nil {
			t.Fatalf("re-parse of %q: %v", failuresText(fs), err)
		}
		if len(again) != len(fs) {
			t.Fatalf("%d failures became %d", len(fs), len(again))
		}
	})
}

// FuzzUBootFallback: stage 1 reads the state file (anyone can write the
// FAT) and falls back; it never panics, and when it falls back the slot
// it names boots next with the refused slot Failed, never the refused one.
func FuzzUBootFallback(f *testing.F) {
	f.Add([]byte("slot=a\ntrial=\ntries=0\n"), true)
	f.Add([]byte("slot=a\ntrial=b\ntries=2\n\x00"), false)
	f.Add([]byte("slot=b\ntrial=a\ntries=0\n"), true)
	f.Fuzz(func(t *testing.T, text []byte, bootedA bool) {
		d := freshBoth(t, UBoot{})
		d.WriteFile(contract.BootStateFile, text)
		booted := contract.SlotB
		if bootedA {
			booted = contract.SlotA
		}
		to, err := UBoot{}.Fallback(d, Env{Booted: booted})
		if err != nil {
			return
		}
		if to == booted {
			t.Fatalf("fell back to the refused slot %s", to)
		}
		if st := state(t, UBoot{}, d, Env{Booted: to}); st.Failed != booted || st.Committed != to {
			t.Fatalf("after falling back from %s to %s: %s", booted, to, st)
		}
	})
}

// FuzzBLSFallback: entry names are read from the FAT; whatever they are,
// Fallback never panics and never names the refused slot.
func FuzzBLSFallback(f *testing.F) {
	f.Add("basalt-a.conf", "basalt-b+2-1.conf")
	f.Add("basalt-a+0-3.conf", "basalt-b.conf")
	f.Fuzz(func(t *testing.T, n1, n2 string) {
		d := Dir(t.TempDir())
		for i, n := range []string{n1, n2} {
			if n == "" || strings.ContainsAny(n, "/\\\x00") || n == "." || n == ".." || len(n) > 200 {
				return
			}
			if err := d.WriteFile(blsEntries+"/"+n, []byte("version "+strings.Repeat("1", i+1)+"\n")); err != nil {
				return
			}
		}
		to, err := BLS{}.Fallback(d, Env{Booted: contract.SlotA})
		if err == nil && to != contract.SlotB {
			t.Fatalf("fell back to %q", to)
		}
	})
}
