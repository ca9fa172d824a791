//go:build e2e

package ext4

import (
	"bytes"
	"context"
	"fmt"
	"github.com/basaltos/basalt/internal/testutil"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/image/compress"
	"github.com/basaltos/basalt/image/initramfs"
	"github.com/basaltos/basalt/image/tree"
	"github.com/basaltos/basalt/qemu"
)

// testKernel returns the directory scripts/testkernel.sh filled for amd64
// (`make testdata`), or skips.
func testKernel(t *testing.T) string {
	dir := os.Getenv("BASALT_TESTKERNEL_AMD64")
	if dir == "" {
		dir = "../../.cache/testkernel/amd64"
	}
	testutil.NeedFile(t, filepath.Join(dir, "vmlinuz"), "make testdata")
	return dir
}

// growInitrd builds testdata/growinit as /init with the virtio modules.
func growInitrd(t *testing.T, kdir string) string {
	work := t.TempDir()
	bin := filepath.Join(work, "init")
	cmd := exec.Command("go", "build", "-o", bin, "./testdata/growinit")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build growinit: %v\n%s", err, out)
	}
	release, err := os.ReadFile(filepath.Join(kdir, "release"))
	if err != nil {
		t.Fatal(err)
	}
	mods := filepath.Join(kdir, "lib/modules", strings.TrimSpace(string(release)), "kernel/drivers")
	tr := tree.New(testOpt.Epoch)
	if err := tr.AddHostFile("init", bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"virtio/virtio_ring", "virtio/virtio", "virtio/virtio_pci_legacy_dev",
		"virtio/virtio_pci_modern_dev", "virtio/virtio_pci", "block/virtio_blk"} {
		if err := tr.AddHostFile("lib/modules/"+filepath.Base(m)+".ko", filepath.Join(mods, m+".ko"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := initramfs.Write(&buf, tr, compress.Zstd); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(work, "initrd")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// bootGrow boots the kernel on disk and returns the console line with
// marker, or the error and console log.
func bootGrow(t *testing.T, disk, marker string) string {
	kdir := testKernel(t)
	initrd := growInitrd(t, kdir)
	b, err := boards.Get("qemu-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	m, err := qemu.Start(ctx, qemu.Config{Board: b, ExtraDrives: []string{disk}, NoReboot: true, Accel: qemu.TCG,
		Kernel: filepath.Join(kdir, "vmlinuz"), Initrd: initrd, Append: "console=ttyS0 panic=-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()
	line, err := m.Expect(ctx, marker)
	if err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, m.Log())
	}
	m.Wait()
	return line
}

// TestE2EOnlineGrow grows a 64 MiB filesystem online to 16 GiB (past the
// first descriptor block: the kernel converts it to meta_bg) under the
// Debian 6.1 cloud kernel, then checks it with e2fsck and dumpe2fs.
func TestE2EOnlineGrow(t *testing.T) {
	const from, to = 64 << 20, 16 << 30
	disk, _ := image(t, from, testOpt)
	if err := os.Truncate(disk, to); err != nil {
		t.Fatal(err)
	}
	if line := bootGrow(t, disk, "BASALT-GROW-"); !strings.Contains(line, "BASALT-GROW-OK") {
		t.Fatalf("console: %q", line)
	}
	out := e2fsck(t, disk)
	t.Log(lastLine(out))
	if !strings.Contains(out, fmt.Sprintf("/%d blocks", to/4096)) {
		t.Errorf("e2fsck after online growth: %q, want %d blocks", lastLine(out), to/4096)
	}
	dump, err := exec.Command("dumpe2fs", "-h", disk).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(dump), "\n") {
		if strings.HasPrefix(l, "Filesystem features:") {
			t.Log(l)
			if !strings.Contains(l, "meta_bg") {
				t.Errorf("no meta_bg after growing past one descriptor block: %s", l)
			}
		}
	}
}

// TestE2EOnlineGrowCorrupt is the negative twin: a superblock with a bad
// checksum must not mount, and the guest must say so.
func TestE2EOnlineGrowCorrupt(t *testing.T) {
	disk, _ := image(t, 64<<20, testOpt)
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff}, 1024+0x3FC); err != nil { // s_checksum
		t.Fatal(err)
	}
	f.Close()
	if err := os.Truncate(disk, 4<<30); err != nil {
		t.Fatal(err)
	}
	line := bootGrow(t, disk, "BASALT-GROW-")
	if !strings.Contains(line, "BASALT-GROW-FAIL: mount /dev/vda") {
		t.Fatalf("console: %q, want a failed mount", line)
	}
}
