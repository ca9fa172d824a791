package build

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/image/disk"
	"github.com/basaltos/basalt/image/secureboot"
	"github.com/basaltos/basalt/image/spec"
	"github.com/basaltos/basalt/internal/errclass"
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
	keys := filepath.Join(dir, "sb")
	os.Mkdir(keys, 0o755)
	files, err := secureboot.KeySet("basalt test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		os.WriteFile(filepath.Join(keys, f.Name), f.Data, 0o600)
	}
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

// TestBuildSecureBootRefusesBundle: no bundle that would carry an unsigned
// kernel to a Secure Boot device (nothing written).
func TestBuildSecureBootRefusesBundle(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "db.key"), nil, 0o600)
	s := writeSpec(t, dir, "")
	s.SecureBoot = &spec.SecureBoot{Key: "db.key", Cert: "db.crt"}
	out := filepath.Join(dir, "out")
	_, err := Build(context.Background(), s, Options{OutDir: out, Bundle: true})
	if errclass.Code(err) != errclass.ExitInvalid || !strings.Contains(err.Error(), "update bundles of Secure Boot images are not supported yet") {
		t.Errorf("err %v, want the refusal (exit %d)", err, errclass.ExitInvalid)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("%s written", out)
	}
}
