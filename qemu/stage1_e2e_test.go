//go:build e2e

package qemu_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/image/initbin"
	"github.com/basaltos/basalt/initsys/modules"
	"github.com/basaltos/basalt/internal/testutil"
	"github.com/basaltos/basalt/qemu"
)

// The boards booted directly (-kernel/-initrd) with the Debian kernel that
// scripts/testkernel.sh unpacks for their arch.
var directBoards = []string{"qemu-x86_64", "qemu-arm64", "qemu-armv7"}

const bootDeadline = 5 * time.Minute

// sinceKernelRE reads the figure stage 1 prints after the root-mounted marker.
var sinceKernelRE = regexp.MustCompile(`\((\d+) ms since kernel start\)`)

// TestE2EStage1DirectBoot boots each board's kernel with an initramfs holding
// the device binary as /init and the board's module closure, on a GPT disk
// made with sgdisk + mksquashfs, and expects stage 1 to mount root a and
// switch_root into it (a probe binary stands in for stage 2).
func TestE2EStage1DirectBoot(t *testing.T) {
	for _, name := range directBoards {
		t.Run(name, func(t *testing.T) {
			v := newDirectVM(t, name, false)
			ctx, cancel := context.WithTimeout(context.Background(), bootDeadline)
			defer cancel()
			m := v.start(ctx, t, qemu.Auto)
			line := expect(ctx, t, m, contract.RootMountedMarker(contract.SlotA))
			t.Logf("%s", line)
			if !sinceKernelRE.MatchString(line) {
				t.Errorf("marker line %q lacks the time since kernel start", line)
			}
			expect(ctx, t, m, "stage2probe: pid 1, / is squashfs")
			if strings.Contains(m.Log(), "basalt: stage1: step modules failed") {
				t.Errorf("module loading warned:\n%s", m.Log())
			}
			m.Kill()
			m.Wait()
		})
	}
}

// TestE2EStage1DirectBootCorruptRoot is the negative twin: root a's
// squashfs superblock is zeroed, so stage 1 must print its error and ask
// for a reboot, which makes QEMU (-no-reboot) exit.
func TestE2EStage1DirectBootCorruptRoot(t *testing.T) {
	for _, name := range directBoards {
		t.Run(name, func(t *testing.T) {
			v := newDirectVM(t, name, true)
			ctx, cancel := context.WithTimeout(context.Background(), bootDeadline)
			defer cancel()
			m := v.start(ctx, t, qemu.Auto)
			line := expect(ctx, t, m, "basalt: stage1: step mount-root failed (")
			if !strings.Contains(line, "mount /dev/vda2 (basalt-root-a)") {
				t.Errorf("failure line %q does not name the device and partition", line)
			}
			expect(ctx, t, m, "basalt: stage1: rebooting in 1 s")
			select {
			case <-m.Exited():
			case <-ctx.Done():
				t.Fatalf("QEMU did not exit after the reboot request:\n%s", m.Log())
			}
			if err := m.Wait(); err != nil {
				t.Errorf("QEMU: %v\n%s", err, m.Log())
			}
			if strings.Contains(m.Log(), contract.RootMountedMarker(contract.SlotA)) {
				t.Errorf("corrupt root was mounted:\n%s", m.Log())
			}
		})
	}
}

func expect(ctx context.Context, t testing.TB, m *qemu.Machine, marker string) string {
	t.Helper()
	line, err := m.Expect(ctx, marker)
	if err != nil {
		m.Kill()
		t.Fatalf("%v\nqemu: %s\nconsole:\n%s", err, strings.Join(m.Args(), " "), m.Log())
	}
	return line
}

// directVM is a kernel, initramfs and disk made for one board.
type directVM struct {
	board                *boards.Board
	kernel, initrd, disk string
	append               string
}

func (v *directVM) start(ctx context.Context, t testing.TB, accel qemu.Accel) *qemu.Machine {
	t.Helper()
	m, err := qemu.Start(ctx, qemu.Config{
		Board: v.board, Image: v.disk, Snapshot: true, Accel: accel, NoReboot: true,
		Kernel: v.kernel, Initrd: v.initrd, Append: v.append,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Kill(); m.Wait() })
	return m
}

func newDirectVM(t testing.TB, boardName string, corrupt bool) *directVM {
	t.Helper()
	b, err := boards.Get(boardName)
	if err != nil {
		t.Fatal(err)
	}
	testutil.NeedTool(t, b.QEMU.Binary)
	testutil.NeedTool(t, "sgdisk")
	testutil.NeedTool(t, "mksquashfs")
	kdir := testKernel(t, b.Arch)
	dir := t.TempDir()
	v := &directVM{
		board:  b,
		kernel: filepath.Join(kdir, "vmlinuz"),
		initrd: filepath.Join(dir, "initrd"),
		disk:   filepath.Join(dir, "disk.img"),
		append: fmt.Sprintf("console=%s panic=-1 %s=a", b.Console, contract.CmdlineSlot),
	}
	writeInitramfs(t, b, kdir, v.initrd)
	writeDisk(t, b.Arch, v.disk, dir, corrupt)
	return v
}

// testKernel returns the directory scripts/testkernel.sh unpacked the
// arch's kernel into. Tests do not touch the network: without it they skip.
func testKernel(t testing.TB, arch boards.Arch) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".cache", "testkernel", string(arch)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "release")); err != nil {
		msg := fmt.Sprintf("no test kernel for %s: run `bash scripts/testkernel.sh %s .cache/testkernel/%s` in the repository first", arch, arch, arch)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dir
}

// writeInitramfs writes a newc initramfs: /init (the device binary),
// /dev/console, and the board's module closure with its modules.dep and
// the modules.load list, as the builder lays them out.
func writeInitramfs(t testing.TB, b *boards.Board, kdir, out string) {
	t.Helper()
	rel := strings.TrimSpace(string(mustRead(t, filepath.Join(kdir, "release"))))
	mdir := filepath.Join(kdir, "lib", "modules", rel)
	deps, err := modules.ParseDep(bytes.NewReader(mustRead(t, filepath.Join(mdir, "modules.dep"))))
	if err != nil {
		t.Fatal(err)
	}
	builtin := map[string]bool{}
	for _, l := range strings.Fields(string(mustRead(t, filepath.Join(mdir, "modules.builtin")))) {
		builtin[contract.ModuleName(l)] = true
	}
	var load []string
	for _, n := range b.Modules {
		if _, ok := deps[contract.ModuleName(n)]; ok {
			load = append(load, n)
		}
	}
	closure, err := deps.Order(load, builtin)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := initbin.Get(b.Arch)
	if err != nil {
		t.Fatal(err)
	}
	base := strings.TrimPrefix(contract.ModulesDir, "/") + "/" + rel + "/"
	recs := []cpio.Record{
		cpio.StaticFile("init", string(bin), 0o755),
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.StaticFile(base+contract.ModulesLoadFile, strings.Join(load, "\n")+"\n", 0o644),
	}
	var dep strings.Builder
	for _, m := range closure {
		recs = append(recs, cpio.StaticFile(base+m.Path, string(mustRead(t, filepath.Join(mdir, m.Path))), 0o644))
		fmt.Fprintf(&dep, "%s:", m.Path)
		for _, d := range m.Deps {
			fmt.Fprintf(&dep, " %s", deps[d].Path)
		}
		dep.WriteString("\n")
	}
	recs = append(recs, cpio.StaticFile(base+"modules.dep", dep.String(), 0o644))
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	w := cpio.NewDedupWriter(cpio.Newc.Writer(f))
	if err := cpio.WriteRecordsAndDirs(w, recs); err != nil {
		t.Fatal(err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// GPT layout of the test disk, in 512-byte sectors: four 8 MiB partitions.
const (
	sectorSize  = 512
	partSectors = 16384
	firstSector = 2048
	diskSectors = firstSector + 4*partSectors + 2048
)

// writeDisk writes a GPT disk with the four basalt partitions; root a holds
// a squashfs with the stage-2 probe as /sbin/basalt-init. corrupt zeroes
// its superblock.
func writeDisk(t testing.TB, arch boards.Arch, out, dir string, corrupt bool) {
	t.Helper()
	root := filepath.Join(dir, "root")
	for _, d := range []string{"proc", "sys", "dev", "run", "sbin", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, strings.TrimPrefix(contract.ReleaseFile, "/")), []byte("NAME=basalt-test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	buildProbe(t, arch, filepath.Join(root, strings.TrimPrefix(contract.InitPath, "/")))
	sqfs := filepath.Join(dir, "root.sqfs")
	run(t, "mksquashfs", root, sqfs, "-noappend", "-quiet", "-no-progress", "-all-root", "-comp", "gzip")

	if err := os.WriteFile(out, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(out, diskSectors*sectorSize); err != nil {
		t.Fatal(err)
	}
	args := []string{"-o"}
	for i, label := range []string{contract.PartBoot, contract.PartRootA, contract.PartRootB, contract.PartData} {
		start := firstSector + i*partSectors
		args = append(args, fmt.Sprintf("-n%d:%d:%d", i+1, start, start+partSectors-1), fmt.Sprintf("-c%d:%s", i+1, label))
	}
	run(t, "sgdisk", append(args, "-t1:ef00", out)...)

	data := mustRead(t, sqfs)
	if len(data) > partSectors*sectorSize {
		t.Fatalf("test squashfs is %d bytes, partition %d", len(data), partSectors*sectorSize)
	}
	if corrupt {
		clear(data[:4096])
	}
	f, err := os.OpenFile(out, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, (firstSector+partSectors)*sectorSize); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// buildProbe cross-compiles testdata/stage2probe for arch.
func buildProbe(t testing.TB, arch boards.Arch, out string) {
	t.Helper()
	crossBuild(t, arch, "./testdata/stage2probe", out)
}

// crossBuild cross-compiles the test program pkg (static) for arch.
func crossBuild(t testing.TB, arch boards.Arch, pkg, out string) {
	t.Helper()
	goarch, goarm := arch.GOARCH()
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOARM="+goarm)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, msg)
	}
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(testutil.NeedTool(t, name), args...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, msg)
	}
}

func mustRead(t testing.TB, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sinceKernelMs returns the figure of the root-mounted marker line.
func sinceKernelMs(line string) (float64, bool) {
	m := sinceKernelRE.FindStringSubmatch(line)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseFloat(m[1], 64)
	return n, err == nil
}
