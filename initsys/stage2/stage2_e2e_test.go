//go:build e2e

package stage2

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/image/initramfs"
	"github.com/basaltos/basalt/image/tree"
	"github.com/basaltos/basalt/initsys/modules"
	"github.com/basaltos/basalt/internal/testutil"
	"github.com/basaltos/basalt/qemu"
)

const (
	MiB       = 1 << 20
	imageSize = 1 << 30
	diskSize  = 4 << 30
	dataStart = 2048 + 3*64*2048 // sectors: boot, root-a, root-b of 64 MiB
)

func testKernel(t *testing.T) string {
	dir := os.Getenv("BASALT_TESTKERNEL_AMD64")
	if dir == "" {
		dir = "../../.cache/testkernel/amd64"
	}
	if _, err := os.Stat(filepath.Join(dir, "vmlinuz")); err != nil {
		t.Skipf("no test kernel in %s (bash scripts/testkernel.sh amd64 .cache/testkernel/amd64): %v", dir, err)
	}
	return dir
}

func goBuild(t *testing.T, out, pkg string) {
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// initrd: the device binary as /init plus the boot modules and modules.load.
func initrd(t *testing.T, kdir, initBin string) string {
	rel, _ := os.ReadFile(filepath.Join(kdir, "release"))
	mdir := filepath.Join(kdir, "lib/modules", strings.TrimSpace(string(rel)))
	f, err := os.Open(filepath.Join(mdir, "modules.dep"))
	if err != nil {
		t.Fatal(err)
	}
	deps, err := modules.ParseDep(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"virtio_pci", "virtio_blk", "virtio_net", "squashfs", "overlay"}
	order, err := deps.Order(want, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := tree.New(0)
	prefix := "lib/modules/" + strings.TrimSpace(string(rel)) + "/"
	for _, m := range order {
		if err := tr.AddHostFile(prefix+m.Path, filepath.Join(mdir, m.Path), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"modules.dep", "modules.builtin"} {
		if err := tr.AddHostFile(prefix+n, filepath.Join(mdir, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tr.AddBytes(prefix+modules.LoadFile, 0o644, []byte(strings.Join(want, "\n")+"\n"))
	if err := tr.AddHostFile("init", initBin, 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := initramfs.Write(&buf, tr, initramfs.Zstd); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "initrd")
	os.WriteFile(p, buf.Bytes(), 0o644)
	return p
}

// disk makes a 1 GiB GPT image (boot, root-a squashfs, root-b, data ext4
// to the end) with host tools, grown to 4 GiB as a sparse file.
func disk(t *testing.T, initBin, dataName string) string {
	for _, tool := range []string{"sgdisk", "mksquashfs", "mkfs.ext4", "dd"} {
		testutil.NeedTool(t, tool)
	}
	work := t.TempDir()
	root := filepath.Join(work, "root")
	for _, d := range []string{"sbin", "usr/bin", "etc/basalt", "data", "var", "run", "tmp", "proc", "sys", "dev", "root"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	copyFile(t, initBin, filepath.Join(root, "sbin/basalt-init"))
	goBuild(t, filepath.Join(root, "usr/bin/probe"), "./testdata/probe")
	os.WriteFile(filepath.Join(root, "etc/basalt-release"), []byte("NAME=basalt\nVERSION=e2e-1\nBUILD_EPOCH=1700000000\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/basalt/services.yaml"), []byte(
		"- name: crasher\n  path: /usr/bin/probe\n  args: [crash]\n  restart: always\n"+
			"- name: once\n  path: /usr/bin/probe\n  args: [crash]\n  restart: once\n"+
			"- name: probe\n  path: /usr/bin/probe\n  restart: once\n"), 0o644)
	sqfs := filepath.Join(work, "root.sqfs")
	if out, err := exec.Command("mksquashfs", root, sqfs, "-all-root", "-noappend", "-quiet").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	img := filepath.Join(work, "disk.img")
	os.WriteFile(img, nil, 0o644)
	os.Truncate(img, imageSize)
	if out, err := exec.Command("sgdisk", "-o",
		"-n", "1:2048:+64M", "-c", "1:basalt-boot", "-n", "2:0:+64M", "-c", "2:basalt-root-a",
		"-n", "3:0:+64M", "-c", "3:basalt-root-b", "-n", "4:0:0", "-c", "4:"+dataName, img).CombinedOutput(); err != nil {
		t.Fatalf("sgdisk: %v\n%s", err, out)
	}
	data := filepath.Join(work, "data.ext4")
	os.WriteFile(data, nil, 0o644)
	os.Truncate(data, imageSize-dataStart*512-34*512)
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-b", "4096", "-L", "basalt-data", data).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	dd(t, sqfs, img, 0, (2048+64*2048)*512)
	dd(t, data, img, 0, dataStart*512)
	if err := os.Truncate(img, diskSize); err != nil {
		t.Fatal(err)
	}
	return img
}

func copyFile(t *testing.T, from, to string) {
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(to, b, 0o755)
}

// dd copies from[skip:] to to[seek:] in place, keeping holes.
func dd(t *testing.T, from, to string, skip, seek int64) {
	out, err := exec.Command("dd", "if="+from, "of="+to, "bs=1M", "iflag=skip_bytes", "oflag=seek_bytes",
		fmt.Sprintf("skip=%d", skip), fmt.Sprintf("seek=%d", seek), "conv=notrunc,sparse", "status=none").CombinedOutput()
	if err != nil {
		t.Fatalf("dd: %v\n%s", err, out)
	}
}

type vm struct {
	m      *qemu.Machine
	ctx    context.Context
	cancel context.CancelFunc
}

func bootVM(t *testing.T, img, initrd string) *vm {
	kdir := testKernel(t)
	b, err := boards.Get("qemu-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	m, err := qemu.Start(ctx, qemu.Config{Board: b, ExtraDrives: []string{img}, NoReboot: true, Accel: qemu.TCG, Memory: 512,
		Net: qemu.Net{User: true}, Kernel: filepath.Join(kdir, "vmlinuz"), Initrd: initrd, Append: "console=ttyS0 panic=-1 basalt.slot=a"})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	v := &vm{m, ctx, cancel}
	t.Cleanup(func() { m.Kill(); cancel() })
	return v
}

func (v *vm) expect(t *testing.T, markers ...string) {
	t.Helper()
	for _, mk := range markers {
		if _, err := v.m.Expect(v.ctx, mk); err != nil {
			t.Fatalf("waiting for %q: %v\nconsole:\n%s", mk, err, v.m.Log())
		}
	}
}

// dataFsck checks the data partition with e2fsck -fn and returns its summary line.
func dataFsck(t *testing.T, img string) string {
	testutil.NeedTool(t, "e2fsck")
	p := filepath.Join(t.TempDir(), "data.ext4")
	dd(t, img, p, dataStart*512, 0)
	out, err := exec.Command("e2fsck", "-fn", p).CombinedOutput()
	if err != nil {
		t.Errorf("e2fsck -fn data: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// TestE2EBoot: ready with timed steps; data grows from 1 GiB to 4 GiB; the
// crasher restarts with growing backoff, the once service does not; /var
// persists, / is read-only; poweroff leaves a clean filesystem; a second
// boot does not grow again.
func TestE2EBoot(t *testing.T) {
	kdir := testKernel(t)
	work := t.TempDir()
	bin := filepath.Join(work, "basalt-init")
	goBuild(t, bin, "../../cmd/basalt-init")
	rd := initrd(t, kdir, bin)
	img := disk(t, bin, "basalt-data")

	v := bootVM(t, img, rd)
	v.expect(t, "basalt: step api-filesystems ok (", "table rewritten, kernel told", "basalt: data filesystem grown",
		"basalt: step data-layout ok (", "basalt: ready",
		"[crasher] restart #1 in 1s", "[crasher] restart #2 in 2s", "[crasher] restart #3 in 4s",
		"probe: var file created", "probe: root write: open /root-probe: read-only file system", "data:     4", "poweroff now")
	v.m.Wait()
	log := v.m.Log()
	if strings.Contains(log, "[once] restart") {
		t.Errorf("once service restarted:\n%s", log)
	}
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "basalt: step ") || strings.Contains(l, "restart #") || strings.Contains(l, "basalt: ready") || strings.HasPrefix(strings.TrimSpace(l), "data:") {
			t.Log(strings.TrimSpace(l))
		}
	}
	sum := dataFsck(t, img)
	t.Log("e2fsck:", sum)
	wantBlocks := (diskSize - dataStart*512 - 34*512) / 4096
	if !strings.Contains(sum, fmt.Sprintf("/%d blocks", wantBlocks)) {
		t.Errorf("data fs after boot: %q, want %d blocks", sum, wantBlocks)
	}

	v2 := bootVM(t, img, rd)
	v2.expect(t, "table already grown, kernel up to date", "data filesystem already fills", "basalt: ready", "probe: var file present", "poweroff now")
	v2.m.Wait()
	dataFsck(t, img)
}

// TestE2EPowerCutDuringGrowth kills QEMU after the table was rewritten and
// before the filesystem grew; the next boot finishes the job.
func TestE2EPowerCutDuringGrowth(t *testing.T) {
	kdir := testKernel(t)
	work := t.TempDir()
	bin := filepath.Join(work, "basalt-init")
	goBuild(t, bin, "../../cmd/basalt-init")
	rd := initrd(t, kdir, bin)
	img := disk(t, bin, "basalt-data")
	v := bootVM(t, img, rd)
	v.expect(t, "table rewritten")
	v.m.Kill()
	v2 := bootVM(t, img, rd)
	v2.expect(t, "basalt: ready", "poweroff now")
	v2.m.Wait()
	if sum := dataFsck(t, img); !strings.Contains(sum, fmt.Sprintf("/%d blocks", (diskSize-dataStart*512-34*512)/4096)) {
		t.Errorf("after the cut and a boot: %q", sum)
	}
}

// TestE2EMissingDataFails is the negative twin: no basalt-data partition
// is an essential failure, logged with its reason, then a reboot.
func TestE2EMissingDataFails(t *testing.T) {
	kdir := testKernel(t)
	work := t.TempDir()
	bin := filepath.Join(work, "basalt-init")
	goBuild(t, bin, "../../cmd/basalt-init")
	rd := initrd(t, kdir, bin)
	img := disk(t, bin, "basalt-other")
	v := bootVM(t, img, rd)
	v.expect(t, "basalt: boot failed: essential step find-data: no partition labelled basalt-data", "basalt: rebooting in 5 s", "basalt: reboot now")
	v.m.Wait()
	if strings.Contains(v.m.Log(), "basalt: ready") {
		t.Error("ready after an essential failure")
	}
}
