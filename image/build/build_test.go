package build

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/ab"
	"github.com/basaltos/basalt/contract/bundle"
	"github.com/basaltos/basalt/contract/config"
	"github.com/basaltos/basalt/image/disk"
	"github.com/basaltos/basalt/image/fat"
	"github.com/basaltos/basalt/image/spec"
	"github.com/basaltos/basalt/internal/errclass"
	"github.com/basaltos/basalt/internal/testutil"
)

const sdBootEFI = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"

// localInputs returns the test kernel (scripts/testkernel.sh) and the
// host's systemd-boot (fail under CI, where make test provides both).
func localInputs(t testing.TB) (kernelDir, efi string) {
	t.Helper()
	kernelDir, _ = filepath.Abs("../../.cache/testkernel/amd64")
	testutil.NeedFile(t, filepath.Join(kernelDir, "vmlinuz"), "run `bash scripts/testkernel.sh amd64 .cache/testkernel/amd64`")
	testutil.NeedFile(t, sdBootEFI, "apt-get install systemd-boot-efi")
	return kernelDir, sdBootEFI
}

// writeSpec writes the default spec plus local inputs and extra YAML into
// dir and loads it.
func writeSpec(t testing.TB, dir, extra string) *spec.Spec {
	t.Helper()
	k, efi := localInputs(t)
	y := testutil.OSOnly(spec.DefaultYAML()) + fmt.Sprintf(`kernel:
  qemu-x86_64: {vmlinuz: %s/vmlinuz, modules: %s/lib/modules}
bootloader:
  qemu-x86_64: {file: %s}
`, k, k, efi) + extra
	p := filepath.Join(dir, "basalt.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	s, _, err := spec.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(testutil.NeedTool(t, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// extract copies a partition of img into its own file.
func extract(t testing.TB, img string, p disk.Partition) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), p.Name)
	run(t, "dd", "if="+img, "of="+out, "bs=1M", fmt.Sprintf("skip=%d", p.Start>>20), fmt.Sprintf("count=%d", p.Size>>20), "status=none")
	return out
}

func TestBuildDefaultQEMUx86(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "motd"), []byte("hello\n"), 0o600)
	s := writeSpec(t, dir, "overlays:\n  - {from: motd, to: /etc/motd, mode: \"0644\"}\n"+
		"config:\n  hostname: demo-1\n  cluster: {role: agent, server: \"https://10.0.0.1:6443\", token: s3cret}\n"+
		"services:\n  - {name: hello, path: /bin/hello, args: [-v], restart: on-failure}\n")
	out := filepath.Join(dir, "out")
	var steps []string
	var begun []string
	arts, err := Build(context.Background(), s, Options{OutDir: out, Epoch: 1700000000, Step: func(n string, d time.Duration) {
		steps = append(steps, n)
		t.Logf("%s: %v", n, d)
	}, Begin: func(n string) { begun = append(begun, n) }})
	if err != nil {
		t.Fatal(err)
	}
	wantSteps := []string{"resolve inputs", "orchestrator", "kernel modules", "initramfs", "root squashfs", "verity hash tree", "boot partition tree", "disk image", "checksums"}
	for i := range wantSteps {
		wantSteps[i] = "qemu-x86_64: " + wantSteps[i]
	}
	if diff := cmp.Diff(wantSteps, steps); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantSteps, begun); diff != "" {
		t.Errorf("steps begun (-want +got):\n%s", diff)
	}
	if len(arts) != 1 {
		t.Fatalf("artifacts = %+v", arts)
	}
	a := arts[0]
	if got, want := filepath.Base(a.Image), "basalt-demo-0.1.0-qemu-x86_64.img"; got != want {
		t.Errorf("image = %s, want %s", got, want)
	}
	ents, _ := os.ReadDir(out)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"basalt-demo-0.1.0-qemu-x86_64.img", "basalt-demo-0.1.0-qemu-x86_64.manifest.json"}, names); diff != "" {
		t.Errorf("output dir (-want +got):\n%s", diff)
	}

	run(t, "sgdisk", "-v", a.Image)
	l, err := disk.Read(a.Image)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, p := range l.Partitions {
		parts = append(parts, p.Name)
	}
	if diff := cmp.Diff([]string{contract.PartBoot, contract.PartRootA, contract.PartRootB, contract.PartData}, parts); diff != "" {
		t.Errorf("partitions (-want +got):\n%s", diff)
	}
	boot := extract(t, a.Image, l.Partitions[0])
	run(t, "fsck.vfat", "-n", boot)
	ls := run(t, "mdir", "-i", boot, "-/", "-b", "::")
	for _, want := range []string{"::/EFI/BOOT/BOOTX64.EFI", "::/loader/entries/basalt-a.conf", "::/loader/loader.conf", "::/a/vmlinuz", "::/a/initrd", "::/a/version", "::/basalt/config.d/"} {
		if !strings.Contains(ls, want+"\n") {
			t.Errorf("boot partition lacks %s:\n%s", want, ls)
		}
	}
	entry := run(t, "mtype", "-i", boot, "::loader/entries/basalt-a.conf")
	if !strings.Contains(entry, "options console=ttyS0 basalt.slot=a ro") || !strings.Contains(entry, "linux /a/vmlinuz") {
		t.Errorf("boot entry:\n%s", entry)
	}
	// The device reads the A/B state through contract/ab; so does the host, from the FAT.
	bf, err := os.Open(boot)
	if err != nil {
		t.Fatal(err)
	}
	defer bf.Close()
	fi, _ := bf.Stat()
	fsys, err := fat.Open(bf, 0, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	if st, err := (ab.BLS{}).State(fsys, ab.Env{}); err != nil || st != (ab.State{Committed: contract.SlotA}) {
		t.Errorf("A/B state of the fresh image: %+v, %v", st, err)
	}
	root := extract(t, a.Image, l.Partitions[1])
	sb := run(t, "unsquashfs", "-s", root)
	if !strings.Contains(sb, "Filesystem size") {
		t.Errorf("unsquashfs -s:\n%s", sb)
	}
	rel := run(t, "unsquashfs", "-cat", root, contract.ReleaseFile)
	kernel := strings.TrimSpace(string(must(os.ReadFile("../../.cache/testkernel/amd64/release"))))
	if want := "NAME=basalt-demo\nVERSION=0.1.0\nBOARD=qemu-x86_64\nARCH=amd64\nKERNEL=" + kernel + "\nBUILD_EPOCH=1700000000\nAB=bls-boot-counting\nUPDATE_COMPAT=basalt-demo\nORCHESTRATOR=none\n"; rel != want {
		t.Errorf("%s = %q, want %q", contract.ReleaseFile, rel, want)
	}
	if got := run(t, "unsquashfs", "-cat", root, "etc/motd"); got != "hello\n" {
		t.Errorf("overlay /etc/motd = %q", got)
	}
	lsRoot := run(t, "unsquashfs", "-lls", root, "sbin", "lib/modules/"+kernel+"/modules.dep", "tmp", "etc", "data")
	for _, want := range []string{"-rwxr-xr-x root/root", "squashfs-root" + contract.InitPath, "drwxrwxrwt root/root",
		"squashfs-root/sbin/modprobe -> basalt-init", "-rw------- root/root", "squashfs-root" + contract.BakedConfig, "squashfs-root" + contract.ServicesFile,
		"squashfs-root/etc/passwd", "squashfs-root/etc/group", "squashfs-root/etc/hosts", "squashfs-root/etc/nsswitch.conf", "squashfs-root/data"} {
		if !strings.Contains(lsRoot, want) {
			t.Errorf("root listing lacks %q:\n%s", want, lsRoot)
		}
	}

	if strings.Contains(lsRoot, "etc/machine-id") || strings.Contains(lsRoot, "bin/busybox") {
		t.Errorf("root has /etc/machine-id or busybox (no shell asked for):\n%s", lsRoot)
	}
	baked := run(t, "unsquashfs", "-cat", root, contract.BakedConfig)
	for _, want := range []string{"kind: DeviceConfig\n", "hostname: demo-1\n", "token: s3cret\n"} {
		if !strings.Contains(baked, want) {
			t.Errorf("%s lacks %q:\n%s", contract.BakedConfig, want, baked)
		}
	}
	if got, want := run(t, "unsquashfs", "-cat", root, contract.ServicesFile), "- name: hello\n  path: /bin/hello\n  args:\n    - -v\n  restart: on-failure\n"; got != want {
		t.Errorf("%s = %q, want %q", contract.ServicesFile, got, want)
	}
	// The root's modules.dep covers every module (as the host depmod's does)
	// and modules.alias lets modprobe resolve device aliases.
	modDir := "lib/modules/" + kernel + "/"
	hostDep := strings.Count(string(must(os.ReadFile("../../.cache/testkernel/amd64/"+modDir+"modules.dep"))), "\n")
	if got := strings.Count(run(t, "unsquashfs", "-cat", root, modDir+"modules.dep"), "\n"); got != hostDep {
		t.Errorf("root modules.dep has %d lines, host depmod %d", got, hostDep)
	}
	if alias := run(t, "unsquashfs", "-cat", root, modDir+"modules.alias"); !strings.Contains(alias, " virtio_blk\n") {
		t.Errorf("root modules.alias lacks virtio_blk")
	}

	data := extract(t, a.Image, l.Partitions[3])
	run(t, "e2fsck", "-fn", data)

	var m Manifest
	if err := json.Unmarshal(must(os.ReadFile(a.Manifest)), &m); err != nil {
		t.Fatal(err)
	}
	// verity on by default: the real tool verifies root-a against the root
	// hash of the boot entry.
	if m.Verity == nil || m.Verity.RootHash == "" {
		t.Fatalf("manifest has no verity root: %+v", m.Verity)
	}
	if want := m.Verity.CmdlineArgs(); !strings.Contains(entry, want+"\n") {
		t.Errorf("boot entry lacks %q:\n%s", want, entry)
	}
	run(t, "veritysetup", "verify", fmt.Sprintf("--hash-offset=%d", m.Verity.HashOffset), root, root, m.Verity.RootHash)
	if m.Image.SHA256 != a.SHA256 || len(m.Partitions) != 4 || m.Kernel != kernel || m.Epoch != 1700000000 {
		t.Errorf("manifest = %+v", m)
	}
	var kinds []string
	for _, in := range m.Inputs {
		kinds = append(kinds, in.Kind)
	}
	if diff := cmp.Diff([]string{"vmlinuz", "modules", "file", "init", "overlay"}, kinds); diff != "" {
		t.Errorf("input kinds (-want +got):\n%s", diff)
	}

	// Reproducible: a second build gives the same bytes.
	arts2, err := Build(context.Background(), s, Options{OutDir: filepath.Join(dir, "out2"), Epoch: 1700000000})
	if err != nil {
		t.Fatal(err)
	}
	if arts2[0].SHA256 != a.SHA256 {
		t.Errorf("second build sha256 %s, first %s", arts2[0].SHA256, a.SHA256)
	}

	// qcow2 (written in Go): qemu-img finds it consistent and equal to raw.
	arts3, err := Build(context.Background(), s, Options{OutDir: filepath.Join(dir, "out3"), Epoch: 1700000000, Format: QCOW2})
	if err != nil {
		t.Fatal(err)
	}
	q := arts3[0]
	if filepath.Ext(q.Image) != ".qcow2" || q.Format != QCOW2 {
		t.Errorf("qcow2 artifact = %+v", q)
	}
	run(t, "qemu-img", "check", q.Image)
	if out := run(t, "qemu-img", "compare", "-f", "raw", "-F", "qcow2", a.Image, q.Image); !strings.Contains(out, "Images are identical") {
		t.Errorf("qemu-img compare: %s", out)
	}
	var qm Manifest
	if err := json.Unmarshal(must(os.ReadFile(q.Manifest)), &qm); err != nil {
		t.Fatal(err)
	}
	if qm.Image.Format != QCOW2 || qm.Image.SHA256 != q.SHA256 || qm.Partitions[1].SHA256 != m.Partitions[1].SHA256 {
		t.Errorf("qcow2 manifest image = %+v", qm.Image)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestBuildBadInput(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra string
		opt   Options
		prep  func(dir string)
		want  string
	}{
		{name: "unknown board", opt: Options{Boards: []string{"rpi9"}}, want: `unknown board "rpi9"`},
		{name: "board not in spec", opt: Options{Boards: []string{"qemu-armv7"}}, want: `board "qemu-armv7" is not in the spec's boards`},
		{name: "root does not fit", extra: "disk: {rootSlot: 1MiB}\n", want: "does not fit a root slot of 1048576 bytes (BASE:11: .disk.rootSlot: 1MiB)"},
		{name: "wrong sha256", extra: "overlays:\n  - {from: f, to: /etc/f, sha256: " + strings.Repeat("0", 64) + "}\n",
			want: "BASE:12: .overlays[0].sha256: DIR/f has sha256 "},
		{name: "missing file", extra: "overlays:\n  - {from: f, to: /etc/f}\n", prep: func(dir string) { os.Remove(filepath.Join(dir, "f")) },
			want: "BASE:12: .overlays[0].from: DIR/f: no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)
			s := writeSpec(t, dir, tc.extra)
			if tc.prep != nil {
				tc.prep(dir)
			}
			out := filepath.Join(dir, "out")
			os.Mkdir(out, 0o755)
			o := tc.opt
			o.OutDir = out
			_, err := Build(context.Background(), s, o)
			if err == nil {
				t.Fatal("Build succeeded")
			}
			if !errors.Is(err, errclass.ErrInvalid) {
				t.Errorf("error does not match errclass.ErrInvalid: %v", err)
			}
			msg := strings.ReplaceAll(strings.ReplaceAll(err.Error(), s.File, "BASE"), dir, "DIR")
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not contain %q", msg, tc.want)
			}
			if ents, _ := os.ReadDir(out); len(ents) != 0 {
				t.Errorf("output dir not empty: %v", ents)
			}
		})
	}
}

// TestBuildInterrupted: a build cancelled during its last step (checksums,
// which once ran to the end and exited 0) fails with context.Canceled and
// leaves nothing in the output directory; a stale temporary directory of a
// killed build is removed by the next build, a running build's is kept.
func TestBuildInterrupted(t *testing.T) {
	dir := t.TempDir()
	s := writeSpec(t, dir, "")
	out := filepath.Join(dir, "out")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := Build(ctx, s, Options{OutDir: out, Step: func(name string, _ time.Duration) {
		if strings.HasSuffix(name, "checksums") {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted build: err = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		ents, _ := os.ReadDir(out)
		t.Errorf("interrupted build left %s with %v", out, ents)
	}

	// Checksums stop as soon as ctx is done.
	img := filepath.Join(dir, "big.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil || os.Truncate(img, 1<<30) != nil {
		t.Fatal(err)
	}
	if _, _, err := hashImage(ctx, img, disk.Layout{}, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("hashImage with a done ctx: %v, want context.Canceled", err)
	}

	stale := filepath.Join(out, tmpPrefix+"4194305-123") // above any pid_max
	running := filepath.Join(out, fmt.Sprintf("%s%d-456", tmpPrefix, os.Getppid()))
	for _, d := range []string{stale, running} {
		if err := os.MkdirAll(filepath.Join(d, "qemu-x86_64.work"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Build(context.Background(), s, Options{OutDir: out}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale %s was not removed", stale)
	}
	if _, err := os.Stat(running); err != nil {
		t.Errorf("a running build's %s was removed: %v", running, err)
	}
}

// TestBuildVerityOffConfigSigned: with verity: off the slot holds the
// bare squashfs and no boot file names a root hash; configTrust: signed
// bakes the configKey into config.TrustKeysFile.
func TestBuildVerityOffConfigSigned(t *testing.T) {
	dir := t.TempDir()
	k := ed25519.NewKeyFromSeed(make([]byte, 32))
	pem, _ := bundle.MarshalPublicKey(k.Public().(ed25519.PublicKey))
	os.WriteFile(filepath.Join(dir, "config.pub"), pem, 0o644)
	s := writeSpec(t, dir, "verity: off\nconfigTrust: signed\nconfigKey: config.pub\n")
	arts, err := Build(context.Background(), s, Options{OutDir: filepath.Join(dir, "out"), Epoch: 1700000000})
	if err != nil {
		t.Fatal(err)
	}
	var m Manifest
	if err := json.Unmarshal(must(os.ReadFile(arts[0].Manifest)), &m); err != nil {
		t.Fatal(err)
	}
	if m.Verity != nil {
		t.Errorf("manifest verity = %+v, want none", m.Verity)
	}
	l, err := disk.Read(arts[0].Image)
	if err != nil {
		t.Fatal(err)
	}
	boot := extract(t, arts[0].Image, l.Partitions[0])
	if entry := run(t, "mtype", "-i", boot, "::loader/entries/basalt-a.conf"); strings.Contains(entry, "basalt.verity") {
		t.Errorf("boot entry names a root hash:\n%s", entry)
	}
	root := extract(t, arts[0].Image, l.Partitions[1])
	if got := run(t, "unsquashfs", "-cat", root, config.TrustKeysFile); got != string(pem) {
		t.Errorf("%s = %q, want %q", config.TrustKeysFile, got, pem)
	}
	sb := run(t, "unsquashfs", "-s", root)
	var used int64
	if _, err := fmt.Sscanf(sb[strings.Index(sb, "Filesystem size "):], "Filesystem size %d bytes", &used); err != nil {
		t.Fatalf("unsquashfs -s: %v\n%s", err, sb)
	}
	// The squashfs writer pads to 4 KiB, like mksquashfs; nothing follows.
	if c := m.Partitions[1].Content; c < used || c >= used+4096 {
		t.Errorf("root content %d bytes is not the bare squashfs of %d bytes", c, used)
	}
}
