package ab

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/basaltos/basalt/contract"
)

// fresh writes m's initial files into a temporary directory (the boot FAT
// as the device mounts it).
func fresh(t *testing.T, m Mechanism) Dir {
	t.Helper()
	d := Dir(t.TempDir())
	for _, f := range m.Initial(entry(contract.SlotA)) {
		if err := d.WriteFile(f.Path, f.Data); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func entry(s contract.Slot) Entry {
	return Entry{Slot: s, Title: "demo 1.0." + string(s), Version: "1.0", Cmdline: "console=ttyS0 basalt.slot=${slot} ro"}
}

func state(t *testing.T, m Mechanism, d Dir, env Env) State {
	t.Helper()
	st, err := m.State(d, env)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func entries(t *testing.T, d Dir) []string {
	t.Helper()
	n, err := d.Names(blsEntries)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(n)
	return n
}

func TestFor(t *testing.T) {
	for _, n := range Names() {
		m, err := For(n)
		if err != nil || m.Name() != n {
			t.Errorf("For(%q) = %v, %v", n, m, err)
		}
	}
	if _, err := For("grub"); err == nil || !strings.Contains(err.Error(), BLSName) {
		t.Errorf("For(grub): %v, want an error listing the known mechanisms", err)
	}
}

// bootBLS does what systemd-boot does at boot: pick the first entry in its
// order (sort-key, then version descending, counted entries with no tries
// left last), count a counted one down by renaming it, and return the
// slot and the LoaderBootCountPath it would set.
func bootBLS(t *testing.T, d Dir) (contract.Slot, string) {
	t.Helper()
	ents, err := BLS{}.entries(d, Env{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) == 0 {
		t.Fatal("no boot entries")
	}
	slices.SortStableFunc(ents, func(a, b blsEntry) int {
		ab, bb := a.counted && a.left == 0, b.counted && b.left == 0
		if ab != bb {
			if ab {
				return 1
			}
			return -1
		}
		return b.gen - a.gen
	})
	e := ents[0]
	if !e.counted {
		return e.slot, ""
	}
	if e.left == 0 {
		return e.slot, "" // a bad entry booted because nothing else is left
	}
	nn := blsFileName(e.slot, "+"+strconv.Itoa(e.left-1)+"-"+strconv.Itoa(e.done+1))
	if err := d.Rename(blsEntries+"/"+e.name, blsEntries+"/"+nn); err != nil {
		t.Fatal(err)
	}
	return e.slot, `\loader\entries\` + nn
}

func TestBLSTrialCommit(t *testing.T) {
	m := BLS{}
	d := fresh(t, m)
	if got := entries(t, d); !cmp.Equal(got, []string{"basalt-a.conf"}) {
		t.Fatalf("initial entries %v", got)
	}
	lc, _ := d.ReadFile(blsLoader)
	if !strings.Contains(string(lc), "default basalt-*") {
		t.Errorf("loader.conf %q", lc)
	}
	b, _ := d.ReadFile(blsEntries + "/basalt-a.conf")
	for _, want := range []string{"options console=ttyS0 basalt.slot=a ro\n", "linux /a/vmlinuz\n", "sort-key basalt\n", "version 1\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("entry lacks %q:\n%s", want, b)
		}
	}
	if st := state(t, m, d, Env{Booted: "a"}); st != (State{Committed: "a"}) {
		t.Errorf("fresh state %+v", st)
	}
	if err := m.Disarm(d, "a"); err == nil {
		t.Error("Disarm of the committed slot succeeded")
	}
	if err := m.Arm(d, entry("b"), 3); err != nil {
		t.Fatal(err)
	}
	if got := entries(t, d); !cmp.Equal(got, []string{"basalt-a.conf", "basalt-b+3-0.conf"}) {
		t.Fatalf("armed entries %v", got)
	}
	if st := state(t, m, d, Env{Booted: "a"}); st != (State{Committed: "a", Trial: "b", TriesLeft: 3}) {
		t.Errorf("armed state %+v", st)
	}
	slot, bcp := bootBLS(t, d)
	if slot != "b" || bcp != `\loader\entries\basalt-b+2-1.conf` {
		t.Fatalf("booted %s %s", slot, bcp)
	}
	env := Env{Booted: slot, BootCountPath: bcp}
	if st := state(t, m, d, env); st != (State{Committed: "a", Trial: "b", TriesLeft: 2, OnTrial: true}) {
		t.Errorf("on-trial state %+v", st)
	}
	// A stray unsuffixed twin (power cut) must not block blessing.
	d.WriteFile(blsEntries+"/basalt-b.conf", []byte("title stray\n"))
	if err := m.Commit(d, env); err != nil {
		t.Fatal(err)
	}
	if got := entries(t, d); !cmp.Equal(got, []string{"basalt-a.conf", "basalt-b.conf"}) {
		t.Fatalf("committed entries %v", got)
	}
	if st := state(t, m, d, Env{Booted: "b"}); st != (State{Committed: "b"}) {
		t.Errorf("committed state %+v", st)
	}
	if slot, _ := bootBLS(t, d); slot != "b" {
		t.Errorf("next boot: slot %s, want b", slot)
	}
	// Back to a: slot a sorts after b by name, the generation puts it first.
	if err := m.Arm(d, entry("a"), 1); err != nil {
		t.Fatal(err)
	}
	if got := entries(t, d); !cmp.Equal(got, []string{"basalt-a+1-0.conf", "basalt-b.conf"}) {
		t.Fatalf("re-armed entries %v", got)
	}
	if slot, _ := bootBLS(t, d); slot != "a" {
		t.Errorf("trial boot: slot %s, want a", slot)
	}
}

func TestBLSRollback(t *testing.T) {
	m := BLS{}
	d := fresh(t, m)
	if err := m.Arm(d, entry("b"), 2); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if slot, _ := bootBLS(t, d); slot != "b" {
			t.Fatalf("trial boot %d: slot %s", i, slot)
		}
	}
	slot, bcp := bootBLS(t, d)
	if slot != "a" || bcp != "" {
		t.Fatalf("after the tries: slot %s %q, want a", slot, bcp)
	}
	env := Env{Booted: "a"}
	if st := state(t, m, d, env); st != (State{Committed: "a", Failed: "b"}) {
		t.Errorf("rolled-back state %+v", st)
	}
	if err := m.Commit(d, env); err == nil {
		t.Error("Commit of slot a (no counted entry) succeeded")
	}
	if err := m.Disarm(d, "b"); err != nil {
		t.Fatal(err)
	}
	if st := state(t, m, d, env); st != (State{Committed: "a"}) {
		t.Errorf("after Disarm %+v", st)
	}
}

func TestUBootTrialCommitRollback(t *testing.T) {
	m := UBoot{}
	d := fresh(t, m)
	b, _ := d.ReadFile(contract.BootStateFile)
	if string(b) != "slot=a\ntrial=\ntries=0\n" {
		t.Errorf("initial state file %q", b)
	}
	if err := m.Arm(d, entry("a"), 3); err == nil {
		t.Error("Arm of the committed slot succeeded")
	}
	if err := m.Arm(d, entry("b"), 2); err != nil {
		t.Fatal(err)
	}
	if st := state(t, m, d, Env{Booted: "a"}); st != (State{Committed: "a", Trial: "b", TriesLeft: 2}) {
		t.Errorf("armed %+v", st)
	}
	// boot.scr counts down (as U-Boot's env export writes it: NUL-ended).
	d.WriteFile(contract.BootStateFile, []byte("slot=a\ntrial=b\ntries=1\n\x00"))
	env := Env{Booted: "b"}
	if st := state(t, m, d, env); st != (State{Committed: "a", Trial: "b", TriesLeft: 1, OnTrial: true}) {
		t.Errorf("on trial %+v", st)
	}
	if err := m.Commit(d, Env{Booted: "a"}); err == nil {
		t.Error("Commit of a slot not on trial succeeded")
	}
	if err := m.Commit(d, env); err != nil {
		t.Fatal(err)
	}
	if st := state(t, m, d, env); st != (State{Committed: "b"}) {
		t.Errorf("committed %+v", st)
	}
	// Rollback: tries spent, the committed slot booted.
	m.Arm(d, entry("a"), 1)
	d.WriteFile(contract.BootStateFile, []byte("slot=b\ntrial=a\ntries=0\n"))
	if st := state(t, m, d, Env{Booted: "b"}); st != (State{Committed: "b", Failed: "a"}) {
		t.Errorf("rolled back %+v", st)
	}
	if err := m.Disarm(d, "a"); err != nil {
		t.Fatal(err)
	}
	if st := state(t, m, d, Env{Booted: "b"}); st != (State{Committed: "b"}) {
		t.Errorf("after Disarm %+v", st)
	}
}

func TestParseStateErrors(t *testing.T) {
	for _, bad := range []string{"", "slot=c\n", "slot=a\nfoo=1\n", "slot=a\nslot=b\n", "slot=a\ntries=-1\n", "slot=a\ntrial=x\n", "garbage"} {
		if _, _, _, err := ParseState([]byte(bad)); err == nil {
			t.Errorf("ParseState(%q) succeeded", bad)
		}
	}
}

func TestParseBLSName(t *testing.T) {
	for name, want := range map[string]blsEntry{
		"basalt-a.conf":      {slot: "a"},
		"basalt-b+3-0.conf":  {slot: "b", counted: true, left: 3},
		"BASALT-B+2-1.CONF":  {slot: "b", counted: true, left: 2, done: 1},
		"basalt-b+0.conf":    {slot: "b", counted: true},
		"basalt-c.conf":      {},
		"basalt-a+x-1.conf":  {},
		"other.conf":         {},
		"basalt-a.conf.tmp":  {},
		".basalt-a.conf.tmp": {},
	} {
		got, ok := parseBLSName(name)
		if ok != (want.slot != "") {
			t.Errorf("%s: ok %v", name, ok)
			continue
		}
		got.name = ""
		if ok && got != want {
			t.Errorf("%s: %+v, want %+v", name, got, want)
		}
	}
}

func TestDirWriteFileLeavesNoTemp(t *testing.T) {
	d := Dir(t.TempDir())
	if err := d.WriteFile("x/y.txt", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteFile("x/y.txt", []byte("2")); err != nil {
		t.Fatal(err)
	}
	n, _ := os.ReadDir(filepath.Join(string(d), "x"))
	if len(n) != 1 {
		t.Errorf("dir holds %v", n)
	}
	if b, _ := d.ReadFile("x/y.txt"); string(b) != "2" {
		t.Errorf("content %q", b)
	}
}

// Without efivarfs the device cannot read LoaderBootCountPath: the booted
// slot's counted entry is still the one the loader booted.
func TestBLSCommitWithoutBootCountPath(t *testing.T) {
	m := BLS{}
	d := fresh(t, m)
	m.Arm(d, entry("b"), 1)
	if slot, _ := bootBLS(t, d); slot != "b" {
		t.Fatal("trial not booted")
	}
	env := Env{Booted: "b"}
	if st := state(t, m, d, env); !st.OnTrial || st.Trial != "b" {
		t.Errorf("state %+v", st)
	}
	if err := m.Commit(d, env); err != nil {
		t.Fatal(err)
	}
	if got := entries(t, d); !cmp.Equal(got, []string{"basalt-a.conf", "basalt-b.conf"}) {
		t.Errorf("entries %v", got)
	}
}

// TestBLSUKIEntry: a Secure Boot slot's entry boots its unified kernel
// image with "efi" and no options (the command line is signed inside it);
// arming and boot counting work on it as on linux entries.
func TestBLSUKIEntry(t *testing.T) {
	m := BLS{}
	d := Dir(t.TempDir())
	e := entry(contract.SlotA)
	e.UKI, e.Args = true, "basalt.verity=00"
	for _, f := range m.Initial(e) {
		if err := d.WriteFile(f.Path, f.Data); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := d.ReadFile(blsEntries + "/basalt-a.conf")
	if want := "title demo 1.0.a (slot a)\nversion 1\nsort-key basalt\nefi /a/" + contract.UKIFile + "\n"; string(b) != want {
		t.Errorf("UKI entry:\n%s\nwant:\n%s", b, want)
	}
	eb := entry("b")
	eb.UKI = true
	if err := m.Arm(d, eb, 2); err != nil {
		t.Fatal(err)
	}
	slot, bcp := bootBLS(t, d)
	if err := m.Commit(d, Env{Booted: slot, BootCountPath: bcp}); err != nil || slot != "b" {
		t.Fatalf("commit of the UKI trial (slot %s): %v", slot, err)
	}
	if b, _ := d.ReadFile(blsEntries + "/basalt-b.conf"); !strings.Contains(string(b), "efi /b/"+contract.UKIFile+"\n") || strings.Contains(string(b), "options") {
		t.Errorf("committed UKI entry:\n%s", b)
	}
}
