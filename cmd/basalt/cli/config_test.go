package cli

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/image/disk"
	"github.com/basaltos/basalt/image/fat"
	"github.com/basaltos/basalt/image/tree"
	"github.com/basaltos/basalt/internal/testutil"
)

func run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	code := 0
	if err := root.Execute(); err != nil {
		errb.WriteString(err.Error())
		code = exitFailure
		if strings.Contains(err.Error(), ErrInvalid.Error()) {
			code = exitInvalid
		}
	}
	return code, out.String(), errb.String()
}

func TestConfigAddShowValidate(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	tr := tree.New(0)
	tr.AddBytes(contract.BootConfig, 0o644, []byte("apiVersion: basalt.dev/v1alpha1\nkind: DeviceConfig\nhostname: boot\ntimezone: UTC\n"))
	l := disk.Layout{Scheme: disk.GPT, DiskGUID: disk.DeriveGUID("s", "disk"), Partitions: []disk.Partition{
		{Name: contract.PartBoot, Type: disk.TypeESP, GUID: disk.DeriveGUID("s", "boot"), Size: 40 << 20},
	}}
	if err := disk.Write(img, l, func(p disk.Partition, w io.WriterAt) error {
		return fat.Write(w, p.Size, tr, fat.Options{Label: contract.BootFSLabel, VolumeID: 7, HiddenSectors: uint32(p.Start / disk.SectorSize)})
	}); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "site.yaml")
	os.WriteFile(good, []byte("#cloud-config\nhostname: site7\ncluster: {role: agent, server: 'https://s:6443', token: t0ps3cret}\n"), 0o644)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: basalt.dev/v1alpha1\nkind: DeviceConfig\nhostname: -x\n"), 0o644)

	if code, _, stderr := run("config", "validate", good, bad); code != exitInvalid || !strings.Contains(stderr, bad+`:3: .hostname: invalid hostname "-x"`) {
		t.Errorf("validate: code %d\n%s", code, stderr)
	}
	if code, _, stderr := run("config", "add", img, bad); code != exitInvalid {
		t.Errorf("add bad: code %d\n%s", code, stderr)
	}
	if code, _, stderr := run("config", "add", img, good, "--name", "50-site.yaml"); code != 0 {
		t.Fatalf("add: code %d\n%s", code, stderr)
	}
	code, stdout, stderr := run("config", "show", img)
	if code != 0 {
		t.Fatalf("show: code %d\n%s", code, stderr)
	}
	for _, want := range []string{"hostname: site7 # basalt/config.d/50-site.yaml:2", "timezone: UTC # basalt/config.yaml:4", "token: <redacted>"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "t0ps3cret") {
		t.Errorf("show prints the secret:\n%s", stdout)
	}
	mtype := testutil.NeedTool(t, "mtype")
	if out, err := exec.Command(mtype, "-i", img+"@@1M", "::/basalt/config.d/50-site.yaml").CombinedOutput(); err != nil || !strings.Contains(string(out), "site7") {
		t.Errorf("mtype: %v %s", err, out)
	}
}

func TestConfigSeed(t *testing.T) {
	fsck := testutil.NeedTool(t, "fsck.vfat")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "user-data"), []byte("#cloud-config\nhostname: seeded\n"), 0o644)
	out := filepath.Join(dir, "seed.img")
	if code, _, stderr := run("config", "seed", dir, "-o", out); code != 0 {
		t.Fatalf("seed: %d %s", code, stderr)
	}
	if b, err := exec.Command(fsck, "-n", out).CombinedOutput(); err != nil {
		t.Errorf("fsck.vfat: %v\n%s", err, b)
	}
	if b, err := exec.Command(testutil.NeedTool(t, "mtype"), "-i", out, "::/user-data").CombinedOutput(); err != nil || !strings.Contains(string(b), "hostname: seeded") {
		t.Errorf("mtype: %v %s", err, b)
	}
	if b, err := exec.Command("blkid", "-o", "value", "-s", "LABEL", out).CombinedOutput(); err == nil && strings.TrimSpace(string(b)) != "CIDATA" {
		t.Errorf("blkid label %q", b)
	}
}
