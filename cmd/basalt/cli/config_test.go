package cli

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/image/build"
	"github.com/basaltos/basalt/image/disk"
	"github.com/basaltos/basalt/image/fat"
	"github.com/basaltos/basalt/image/tree"
	"github.com/basaltos/basalt/internal/errclass"
	"github.com/basaltos/basalt/internal/testutil"
)

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

	if code, _, stderr := runCLI("config", "validate", good, bad); code != errclass.ExitInvalid || !strings.Contains(stderr, bad+`:3: .hostname: invalid hostname "-x"`) {
		t.Errorf("validate: code %d\n%s", code, stderr)
	}
	if code, stdout, stderr := runCLI("config", "validate", good); code != 0 || stdout != good+": valid\n" {
		t.Errorf("validate good: code %d, stdout %q, want %q\n%s", code, stdout, good+": valid\n", stderr)
	}
	mars := filepath.Join(dir, "mars.yaml")
	os.WriteFile(mars, []byte("#cloud-config\ntimezone: Mars/Olympus\n"), 0o644)
	if code, _, stderr := runCLI("config", "validate", mars); code != errclass.ExitInvalid || !strings.Contains(stderr, mars+`:2: .timezone: unknown time zone "Mars/Olympus"`) {
		t.Errorf("validate unknown zone: code %d\n%s", code, stderr)
	}
	if code, _, stderr := runCLI("config", "add", img, bad); code != errclass.ExitInvalid {
		t.Errorf("add bad: code %d\n%s", code, stderr)
	}
	if code, _, stderr := runCLI("config", "add", good, good); code != errclass.ExitInvalid || !strings.Contains(stderr, "is not a basalt disk image") {
		t.Errorf("add to a non-image: code %d, want %d\n%s", code, errclass.ExitInvalid, stderr)
	}
	// The manifest next to the image: its sums follow the image's bytes.
	lay, err := disk.Read(img)
	if err != nil {
		t.Fatal(err)
	}
	stale := strings.Repeat("0", 64)
	m := build.Manifest{Image: build.FileInfo{File: "disk.img", Format: build.Raw, SHA256: stale},
		Partitions: []build.PartInfo{{Number: 1, Name: lay.Partitions[0].Name, Start: lay.Partitions[0].Start, Size: lay.Partitions[0].Size, SHA256: stale}}}
	mj, _ := json.Marshal(m)
	os.WriteFile(build.ManifestPath(img), mj, 0o644)
	if code, _, stderr := runCLI("config", "add", img, good, "--name", "50-site.yaml"); code != 0 {
		t.Fatalf("add: code %d\n%s", code, stderr)
	}
	if err := json.Unmarshal(must(os.ReadFile(build.ManifestPath(img))), &m); err != nil {
		t.Fatal(err)
	}
	data := must(os.ReadFile(img))
	p0 := m.Partitions[0]
	if want := fmt.Sprintf("%x", sha256.Sum256(data)); m.Image.SHA256 != want {
		t.Errorf("after config add, manifest image sha256 %s, file %s", m.Image.SHA256, want)
	}
	if want := fmt.Sprintf("%x", sha256.Sum256(data[p0.Start:p0.Start+p0.Size])); p0.SHA256 != want {
		t.Errorf("after config add, manifest boot sha256 %s, bytes %s", p0.SHA256, want)
	}
	code, stdout, stderr := runCLI("config", "show", img)
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
	if code, stdout, stderr := runCLI("inspect", img, "--ls", "boot:/basalt/config.d"); code != 0 || !strings.Contains(stdout, "50-site.yaml") {
		t.Errorf("inspect --ls boot:/basalt/config.d: %d %q %s", code, stdout, stderr)
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
	if code, stdout, stderr := runCLI("config", "seed", dir, "-o", out); code != 0 || !strings.Contains(stdout, out+": NoCloud seed") {
		t.Fatalf("seed: %d %q %s", code, stdout, stderr)
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

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
