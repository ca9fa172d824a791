package build

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/bundle"
	"github.com/basaltos/basalt/image/disk"
	"github.com/basaltos/basalt/image/secureboot"
	"github.com/basaltos/basalt/internal/testutil"
)

const efiStub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"

// TestBuildSecureBoot: slot a boots a signed UKI whose command line holds
// the slot's verity root hash; systemd-boot is signed; the keys to enroll
// and loader.conf's secure-boot-enroll are on the boot partition; sbverify
// accepts both signatures with the db certificate; two builds are
// byte-identical.
func TestBuildSecureBoot(t *testing.T) {
	testutil.NeedFile(t, efiStub, "apt-get install systemd-boot-efi")
	dir := t.TempDir()
	keys := writeKeySet(t, dir)
	s := writeSpec(t, dir, "secureBoot:\n  dir: sb\n  stub: "+efiStub+"\n")
	var sums []string
	var img string
	var m Manifest
	for i := range 2 {
		arts, err := Build(context.Background(), s, Options{OutDir: filepath.Join(dir, "out", string(rune('0'+i))), Epoch: 1700000000})
		if err != nil {
			t.Fatal(err)
		}
		img = arts[0].Image
		if err := json.Unmarshal(must(os.ReadFile(arts[0].Manifest)), &m); err != nil {
			t.Fatal(err)
		}
		sums = append(sums, m.Image.SHA256)
	}
	if sums[0] != sums[1] {
		t.Errorf("two Secure Boot builds differ: %v", sums)
	}
	l, err := disk.Read(img)
	if err != nil {
		t.Fatal(err)
	}
	boot := extract(t, img, l.Partitions[0])
	run(t, "fsck.vfat", "-n", boot)
	ls := run(t, "mdir", "-i", boot, "-/", "-b", "::")
	for _, want := range []string{"::/EFI/BOOT/BOOTX64.EFI", "::/a/" + contract.UKIFile, "::/loader/keys/auto/PK.auth", "::/loader/keys/auto/KEK.auth", "::/loader/keys/auto/db.auth"} {
		if !strings.Contains(ls, want+"\n") {
			t.Errorf("boot partition lacks %s:\n%s", want, ls)
		}
	}
	if strings.Contains(ls, "::/a/vmlinuz\n") || strings.Contains(ls, "::/a/initrd\n") {
		t.Errorf("boot partition has an unsigned kernel or initrd beside the UKI:\n%s", ls)
	}
	if lc := run(t, "mtype", "-i", boot, "::loader/loader.conf"); !strings.Contains(lc, "secure-boot-enroll force\n") {
		t.Errorf("loader.conf:\n%s", lc)
	}
	if e := run(t, "mtype", "-i", boot, "::loader/entries/basalt-a.conf"); !strings.Contains(e, "efi /a/"+contract.UKIFile+"\n") || strings.Contains(e, "options") {
		t.Errorf("entry:\n%s", e)
	}
	sbverify := testutil.NeedTool(t, "sbverify")
	for _, f := range []string{"a/" + contract.UKIFile, "EFI/BOOT/BOOTX64.EFI"} {
		out := filepath.Join(t.TempDir(), filepath.Base(f))
		run(t, "mcopy", "-i", boot, "::"+f, out)
		if b, err := exec.Command(sbverify, "--cert", filepath.Join(keys, secureboot.DBCertFile), out).CombinedOutput(); err != nil {
			t.Errorf("sbverify %s: %v\n%s", f, err, b)
		}
		if f != "a/"+contract.UKIFile {
			continue
		}
		uki := must(os.ReadFile(out))
		cl, err := secureboot.SectionData(uki, ".cmdline")
		if err != nil || m.Verity == nil || !bytes.Contains(cl, []byte("basalt.verity="+m.Verity.RootHash)) || !bytes.Contains(cl, []byte(contract.CmdlineSlot+"=a ")) {
			t.Errorf("UKI command line %q (err %v) lacks slot a or the root hash", cl, err)
		}
		if k, _ := secureboot.SectionData(uki, ".linux"); len(k) == 0 {
			t.Error("UKI has no kernel")
		}
	}
}

// writeKeySet writes a fresh secureboot.KeySet to dir/sb (spec
// secureBoot.dir: sb) and returns that directory.
func writeKeySet(t *testing.T, dir string) string {
	t.Helper()
	keys := filepath.Join(dir, "sb")
	os.Mkdir(keys, 0o755)
	files, err := secureboot.KeySet("basalt test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		os.WriteFile(filepath.Join(keys, f.Name), f.Data, 0o600)
	}
	return keys
}

// TestBuildSecureBootBundle: a Secure Boot image's bundle carries the
// rootfs and each slot's signed UKI (no kernel, no initrd); uki-a is the
// image's own a/uki.efi, uki-b's signed command line names slot b; the
// signature and every payload verify.
func TestBuildSecureBootBundle(t *testing.T) {
	testutil.NeedFile(t, efiStub, "apt-get install systemd-boot-efi")
	dir := t.TempDir()
	keys := writeKeySet(t, dir)
	k := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	pub, _ := bundle.MarshalPublicKey(k.Public().(ed25519.PublicKey))
	os.WriteFile(filepath.Join(dir, "k.pub"), pub, 0o644)
	s := writeSpec(t, dir, "update:\n  publicKey: [k.pub]\nsecureBoot:\n  dir: sb\n  stub: "+efiStub+"\n")
	arts, err := Build(context.Background(), s, Options{OutDir: filepath.Join(dir, "out"), Epoch: 1700000000, SignKey: k})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(arts[0].Bundle)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := bundle.Open(f, []ed25519.PublicKey{k.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	m := r.Manifest()
	ps, got := readPayloads(t, r)
	var names []string
	for _, p := range ps {
		names = append(names, p.Name+":"+p.Kind)
	}
	if want := "rootfs:rootfs uki-a:uki uki-b:uki"; strings.Join(names, " ") != want || !m.UKI() {
		t.Fatalf("payloads %q, want %q", strings.Join(names, " "), want)
	}
	if m.Payloads[0].Verity == nil {
		t.Error("rootfs payload without verity parameters")
	}
	l, err := disk.Read(arts[0].Image)
	if err != nil {
		t.Fatal(err)
	}
	boot := extract(t, arts[0].Image, l.Partitions[0])
	a := filepath.Join(t.TempDir(), "uki.efi")
	run(t, "mcopy", "-i", boot, "::a/"+contract.UKIFile, a)
	if !bytes.Equal(must(os.ReadFile(a)), got["uki-a"]) {
		t.Error("the bundle's uki-a differs from the image's a/uki.efi")
	}
	for _, slot := range []contract.Slot{contract.SlotA, contract.SlotB} {
		uki := got[bundle.UKIName(slot)]
		cl, err := secureboot.SectionData(uki, ".cmdline")
		if err != nil || !bytes.Contains(cl, []byte(contract.CmdlineSlot+"="+string(slot)+" ")) || !bytes.Contains(cl, []byte("basalt.verity="+m.Payloads[0].Verity.RootHash)) {
			t.Errorf("%s: command line %q (err %v) lacks slot %s or the root hash", bundle.UKIName(slot), cl, err, slot)
		}
		out := filepath.Join(t.TempDir(), "uki.efi")
		os.WriteFile(out, uki, 0o644)
		if b, err := exec.Command(testutil.NeedTool(t, "sbverify"), "--cert", filepath.Join(keys, secureboot.DBCertFile), out).CombinedOutput(); err != nil {
			t.Errorf("sbverify %s: %v\n%s", bundle.UKIName(slot), err, b)
		}
	}
}
