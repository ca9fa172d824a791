//go:build e2e

package squashfs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/basaltos/basalt/image/compress"
	"github.com/basaltos/basalt/image/tree"
	"github.com/basaltos/basalt/internal/testutil"
)

// kernelDir returns the unpacked Debian cloud kernel (scripts/testkernel.sh).
func kernelDir(t *testing.T) (dir, release string) {
	t.Helper()
	dir = os.Getenv("BASALT_TEST_KERNEL_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", ".cache", "testkernel", "amd64")
	}
	rel, err := os.ReadFile(filepath.Join(dir, "release"))
	if err != nil {
		msg := fmt.Sprintf("no test kernel in %s (run: bash scripts/testkernel.sh amd64 %s): %v", dir, dir, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dir, strings.TrimSpace(string(rel))
}

// moduleClosure returns the .ko files (relative to the release's module
// directory) that mods need, dependencies first, from modules.dep.
func moduleClosure(t *testing.T, modDir string, mods ...string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		t.Fatal(err)
	}
	deps := map[string][]string{}
	byName := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		ko, rest, _ := strings.Cut(sc.Text(), ":")
		deps[ko] = strings.Fields(rest)
		byName[strings.TrimSuffix(filepath.Base(ko), ".ko")] = ko
	}
	var out []string
	seen := map[string]bool{}
	var visit func(ko string)
	visit = func(ko string) {
		if seen[ko] {
			return
		}
		seen[ko] = true
		d := deps[ko]
		for i := len(d) - 1; i >= 0; i-- {
			visit(d[i])
		}
		out = append(out, ko)
	}
	for _, m := range mods {
		ko, ok := byName[m]
		if !ok {
			t.Fatalf("module %s not in %s/modules.dep (built in? then drop it from the list)", m, modDir)
		}
		visit(ko)
	}
	return out
}

// manifest describes t in kcheck's format.
func manifest(tb testing.TB, t *tree.Tree) string {
	ifmt := map[tree.Type]uint32{tree.Dir: 0o040000, tree.Regular: 0o100000, tree.Symlink: 0o120000,
		tree.CharDev: 0o020000, tree.BlockDev: 0o060000, tree.FIFO: 0o010000, tree.Socket: 0o140000}
	var sb strings.Builder
	for _, e := range t.Sorted() {
		m := e
		if e.Type == tree.Regular && e.Link != "" {
			m = t.Get(e.Link)
		}
		size, sum, target := fmt.Sprint(m.Size), "-", "-"
		switch e.Type {
		case tree.Dir:
			size = "-"
		case tree.Regular:
			sum = entrySum(tb, m)
		case tree.Symlink:
			size, target = fmt.Sprint(len(e.Target)), e.Target
		case tree.CharDev, tree.BlockDev:
			size, target = "0", fmt.Sprintf("%d:%d", e.Major, e.Minor)
		case tree.FIFO, tree.Socket:
			size = "0"
		}
		var xs []string
		for k, v := range m.Xattrs {
			xs = append(xs, fmt.Sprintf("%s=%x", k, v))
		}
		sort.Strings(xs)
		mode := ifmt[e.Type] | tree.UnixPerm(m.Mode)
		if e.Type == tree.Symlink {
			mode = 0o120777
		}
		fmt.Fprintf(&sb, "%s\t%o\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", e.Path, mode, m.UID, m.GID, m.MTime, size, sum, target, strings.Join(xs, ","))
	}
	return sb.String()
}

// initramfs builds the newc archive: /init (kcheck), the modules, their
// load order and the manifest.
func initramfs(t *testing.T, modDir string, kos []string, man string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kcheck")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(gobin, "build", "-trimpath", "-o", bin, "./internal/kcheck")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build kcheck: %v\n%s", err, out)
	}
	init, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	recs := []cpio.Record{cpio.Directory("m", 0o755), cpio.StaticFile("init", string(init), 0o755), cpio.StaticFile("manifest", man, 0o644)}
	var order []string
	for i, ko := range kos {
		b, err := os.ReadFile(filepath.Join(modDir, ko))
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("m/%02d-%s", i, filepath.Base(ko))
		recs = append(recs, cpio.StaticFile(name, string(b), 0o644))
		order = append(order, "/"+name)
	}
	recs = append(recs, cpio.StaticFile("modules.order", strings.Join(order, "\n")+"\n", 0o644))
	var buf bytes.Buffer
	w := cpio.Newc.Writer(&buf)
	cpio.MakeAllReproducible(recs)
	if err := cpio.WriteRecordsAndDirs(w, recs); err != nil {
		t.Fatal(err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "initrd.cpio")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// bootCheck boots the kernel with the image as a virtio disk and returns
// kcheck's verdict line and the console log.
func bootCheck(t *testing.T, kernel, initrd, img string) (string, string) {
	t.Helper()
	qemu := testutil.NeedTool(t, "qemu-system-x86_64")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-M", "q35", "-accel", "tcg", "-m", "512", "-nographic", "-no-reboot",
		"-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0 panic=-1 quiet",
		"-drive", "file="+img+",if=virtio,format=raw,readonly=on", "-nic", "none")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("qemu: no verdict before the deadline; console:\n%s", out)
	}
	if err != nil {
		t.Fatalf("qemu: %v; console:\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "KCHECK: PASS") || strings.HasPrefix(strings.TrimSpace(l), "KCHECK: FAIL") {
			return strings.TrimSpace(l), string(out)
		}
	}
	t.Fatalf("no KCHECK verdict on the console:\n%s", out)
	return "", ""
}

func e2eTree(t *testing.T) *tree.Tree {
	tr := everyType(t)
	for i := range 3000 {
		must(t, tr.Add(tree.Entry{Path: fmt.Sprintf("many/entry-%05d", i), Type: tree.Regular, Mode: 0o640,
			UID: uint32(i % 3), MTime: epoch + int64(i), Size: int64(i % 700), Open: genOpener(uint64(i%11), int64(i%700))}))
	}
	const sparse = 3<<20 + 999
	must(t, tr.Add(tree.Entry{Path: "var/sparse", Type: tree.Regular, Mode: 0o600, MTime: epoch, Size: sparse,
		Open: func() (rc io.ReadCloser, err error) {
			return io.NopCloser(&genReader{rng: rand.New(rand.NewPCG(5, 1)), left: sparse, zeroEvery: 3}), nil
		}}))
	must(t, tr.Add(tree.Entry{Path: "opt/x", Type: tree.Dir, Mode: 0o700 | fs.ModeSetgid, MTime: epoch}))
	return tr
}

func TestE2EKernelMountsSquashfs(t *testing.T) {
	kdir, rel := kernelDir(t)
	modDir := filepath.Join(kdir, "lib", "modules", rel)
	kos := moduleClosure(t, modDir, "virtio_pci", "virtio_blk", "squashfs")
	tr := e2eTree(t)
	initrd := initramfs(t, modDir, kos, manifest(t, tr))
	for _, c := range []compress.Compression{compress.Zstd, compress.Gzip, compress.XZ} {
		t.Run(c.String(), func(t *testing.T) {
			img := writeImage(t, tr, Options{Compression: c})
			verdict, log := bootCheck(t, filepath.Join(kdir, "vmlinuz"), initrd, img)
			if verdict != "KCHECK: PASS" {
				t.Fatalf("guest: %s\nconsole:\n%s", verdict, log)
			}
			if !strings.Contains(log, fmt.Sprintf("KCHECK: %d entries match", tr.Len())) {
				t.Errorf("guest did not check all %d entries:\n%s", tr.Len(), log)
			}
		})
	}
}

// TestE2EKernelRejectsCorruptSquashfs is the negative twin: one flipped byte
// in the inode table must make the guest report FAIL.
func TestE2EKernelRejectsCorruptSquashfs(t *testing.T) {
	kdir, rel := kernelDir(t)
	modDir := filepath.Join(kdir, "lib", "modules", rel)
	kos := moduleClosure(t, modDir, "virtio_pci", "virtio_blk", "squashfs")
	tr := e2eTree(t)
	initrd := initramfs(t, modDir, kos, manifest(t, tr))
	img := writeImage(t, tr, Options{})
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	inodeStart := binary.LittleEndian.Uint64(b[64:])
	b[inodeStart+40] ^= 0x55 // inside the first compressed inode block
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
	verdict, log := bootCheck(t, filepath.Join(kdir, "vmlinuz"), initrd, img)
	if !strings.HasPrefix(verdict, "KCHECK: FAIL") {
		t.Fatalf("guest accepted a corrupt image: %s\nconsole:\n%s", verdict, log)
	}
	t.Logf("guest: %.300s", verdict)
}
