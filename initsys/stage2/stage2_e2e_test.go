//go:build e2e

package stage2

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/image/compress"
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

// target is a board the e2e tests boot, with its Debian cloud test kernel.
type target struct{ board, goarch, console string }

var (
	x86_64  = target{"qemu-x86_64", "amd64", "ttyS0"}
	aarch64 = target{"qemu-arm64", "arm64", "ttyAMA0"}
)

func testKernel(t testing.TB, tg target) string {
	dir := os.Getenv("BASALT_TESTKERNEL_" + strings.ToUpper(tg.goarch))
	if dir == "" {
		dir = "../../.cache/testkernel/" + tg.goarch
	}
	testutil.NeedFile(t, filepath.Join(dir, "vmlinuz"), "bash scripts/testkernel.sh "+tg.goarch+" .cache/testkernel/"+tg.goarch)
	return dir
}

func goBuild(t testing.TB, tg target, out, pkg string) {
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+tg.goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// initrd: the device binary as /init plus the boot modules and modules.load.
func initrd(t testing.TB, kdir, initBin string) string {
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
	want := []string{"virtio_pci", "virtio_blk", "virtio_net", "squashfs", "overlay", "vfat", "nls_cp437", "nls_ascii"}
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
	tr.AddBytes(prefix+contract.ModulesLoadFile, 0o644, []byte(strings.Join(want, "\n")+"\n"))
	if err := tr.AddHostFile("init", initBin, 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := initramfs.Write(&buf, tr, compress.Zstd); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "initrd")
	os.WriteFile(p, buf.Bytes(), 0o644)
	return p
}

// disk makes a 1 GiB GPT image (boot, root-a squashfs, root-b, data ext4
// to the end) with host tools, grown to 4 GiB as a sparse file.
// With busybox-static on the host and a target of the host's arch, the
// root has /bin/sh for the emergency shell.
func disk(t testing.TB, tg target, initBin, dataName string) string {
	return diskWith(t, tg, initBin, dataName, nil)
}

// diskWith is disk with extra files in the root (path -> content).
func diskWith(t testing.TB, tg target, initBin, dataName string, extra map[string]string) string {
	for _, tool := range []string{"sgdisk", "mksquashfs", "mkfs.ext4", "dd"} {
		testutil.NeedTool(t, tool)
	}
	work := t.TempDir()
	root := filepath.Join(work, "root")
	for _, d := range []string{"sbin", "usr/bin", "etc/basalt", "data", "var", "run", "tmp", "proc", "sys", "dev", "root"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	copyFile(t, initBin, filepath.Join(root, "sbin/basalt-init"))
	goBuild(t, tg, filepath.Join(root, "usr/bin/probe"), "./testdata/probe")
	if _, err := os.Stat("/bin/busybox"); err == nil && tg.goarch == runtime.GOARCH {
		os.MkdirAll(filepath.Join(root, "bin"), 0o755)
		copyFile(t, "/bin/busybox", filepath.Join(root, "bin/busybox"))
		os.Symlink("busybox", filepath.Join(root, "bin/sh"))
	}
	os.WriteFile(filepath.Join(root, "etc/basalt/config.yaml"), []byte(bakedConfig), 0o644)
	os.WriteFile(filepath.Join(root, "etc/basalt-release"), []byte("NAME=basalt\nVERSION=e2e-1\nBUILD_EPOCH=1700000000\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/basalt/services.yaml"), []byte(
		"- name: crasher\n  path: /usr/bin/probe\n  args: [crash]\n  restart: always\n"+
			"- name: once\n  path: /usr/bin/probe\n  args: [crash]\n  restart: once\n"+
			"- name: probe\n  path: /usr/bin/probe\n  restart: once\n"), 0o644)
	for p, c := range extra {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(c), 0o644)
	}
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
	dd(t, bootFAT(t, work), img, 0, 2048*512)
	dd(t, sqfs, img, 0, (2048+64*2048)*512)
	dd(t, data, img, 0, dataStart*512)
	if err := os.Truncate(img, diskSize); err != nil {
		t.Fatal(err)
	}
	return img
}

// The device config of the e2e image: a baked default in the root, and the
// boot partition's basalt/config.yaml overriding the hostname and adding a
// file (later wins per key; write_files append).
const (
	bakedConfig = "apiVersion: basalt.dev/v1alpha1\nkind: DeviceConfig\nhostname: baked\n" +
		"ntp: {servers: [pool.ntp.org]}\nwrite_files: [{path: /etc/basalt-e2e-baked, content: \"from the root\\n\"}]\n"
	bootConfig = "#cloud-config\nhostname: e2e-host\nwrite_files:\n  - path: /var/lib/e2e/hello\n    content: hello from the boot partition\n    permissions: '0600'\n"
)

// bootFAT makes the 64 MiB basalt-boot FAT with basalt/config.yaml.
func bootFAT(t testing.TB, work string) string {
	for _, tool := range []string{"mkfs.vfat", "mmd", "mcopy"} {
		testutil.NeedTool(t, tool)
	}
	p, cfg := filepath.Join(work, "boot.fat"), filepath.Join(work, "config.yaml")
	os.WriteFile(cfg, []byte(bootConfig), 0o644)
	for _, c := range [][]string{
		{"mkfs.vfat", "-C", "-F", "32", "-n", "BASALT", p, "65536"},
		{"mmd", "-i", p, "::basalt"},
		{"mcopy", "-i", p, cfg, "::basalt/config.yaml"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	return p
}

func copyFile(t testing.TB, from, to string) {
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(to, b, 0o755)
}

// dd copies from[skip:] to to[seek:] in place, keeping holes.
func dd(t testing.TB, from, to string, skip, seek int64) {
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

// bootVM boots img with the target's test kernel and initrd; stdin (may be
// nil) is the serial console's input, appendArgs go on the command line,
// extra drives (raw images) are attached after img.
func bootVM(t testing.TB, tg target, img, initrd string, stdin io.Reader, appendArgs string, extra ...string) *vm {
	kdir := testKernel(t, tg)
	b, err := boards.Get(tg.board)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	m, err := qemu.Start(ctx, qemu.Config{Board: b, ExtraDrives: append([]string{img}, extra...), NoReboot: true, Accel: qemu.TCG, Memory: 512,
		Net: qemu.Net{User: true}, Kernel: filepath.Join(kdir, "vmlinuz"), Initrd: initrd, Stdin: stdin,
		Append: strings.TrimSpace("console=" + tg.console + " panic=-1 basalt.slot=a " + appendArgs)})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	v := &vm{m, ctx, cancel}
	t.Cleanup(func() { m.Kill(); cancel() })
	return v
}

func (v *vm) expect(t testing.TB, markers ...string) {
	t.Helper()
	for _, mk := range markers {
		if _, err := v.m.Expect(v.ctx, mk); err != nil {
			t.Fatalf("waiting for %q: %v\nconsole:\n%s", mk, err, v.m.Log())
		}
	}
}

// keptLog reads the init's kept log from the data partition with debugfs.
func keptLog(t testing.TB, img string) string {
	testutil.NeedTool(t, "debugfs")
	p := filepath.Join(t.TempDir(), "data.ext4")
	dd(t, img, p, dataStart*512, 0)
	// /var is the data filesystem's var/: the path on it is the same.
	out, err := exec.Command("debugfs", "-R", "cat "+contract.InitLog, p).Output()
	if err != nil {
		t.Fatalf("debugfs cat %s: %v", contract.InitLog, err)
	}
	return string(out)
}

// dataFsck checks the data partition with e2fsck -fn and returns its summary line.
func dataFsck(t testing.TB, img string) string {
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

// prepare builds basalt-init for tg, its initrd and a disk whose data
// partition is named dataName.
func prepare(t testing.TB, tg target, dataName string) (img, rd string) {
	kdir := testKernel(t, tg)
	bin := filepath.Join(t.TempDir(), "basalt-init")
	goBuild(t, tg, bin, "../../cmd/basalt-init")
	return disk(t, tg, bin, dataName), initrd(t, kdir, bin)
}

// TestE2EBoot: ready with timed steps; data grows from 1 GiB to 4 GiB; the
// crasher restarts with growing backoff, the once service does not; /var
// persists, / is read-only; poweroff leaves a clean filesystem; a second
// boot does not grow again.
func TestE2EBoot(t *testing.T) { testBoot(t, x86_64) }

// TestE2EBootARM64 is TestE2EBoot on qemu-arm64 (-M virt -cpu max).
func TestE2EBootARM64(t *testing.T) { testBoot(t, aarch64) }

func testBoot(t *testing.T, tg target) {
	img, rd := prepare(t, tg, "basalt-data")
	v := bootVM(t, tg, img, rd, nil, "")
	v.expect(t, "basalt: step api-filesystems ok (", "table rewritten, kernel told", "basalt: data filesystem grown",
		"basalt: step data-layout ok (", "basalt: config sources: [baked:/etc/basalt/config.yaml basalt/config.yaml cmdline]",
		"basalt: step config-apply ok (",
		// restrict=on: slirp's DHCP offers no router and no DNS, so NTP
		// cannot resolve and the clock keeps the build-epoch floor.
		"no DNS server on this network: NTP pool.ntp.org cannot be resolved; clock at the build-epoch floor or later (2023-11-14T22:13:20Z)",
		"basalt: step ssh ok (", "basalt: ready",
		"[crasher] restart #1 in 1s", "[crasher] restart #2 in 2s", "[crasher] restart #3 in 4s",
		"probe: var file created", "probe: hostname e2e-host",
		"probe: /var/lib/e2e/hello -rw------- \"hello from the boot partition\"",
		"probe: /etc/basalt-e2e-baked -rw-r--r-- \"from the root\\n\"",
		`init lines, first "basalt: stage1: step kernel-filesystems ok (`, // probe: kmsg has N init lines, ...
		"probe: root write: open /root-probe: read-only file system", "probe: root home write: <nil>", "data:     4",
		"probe: config reload done <nil>", "poweroff now")
	v.m.Wait()
	log := v.m.Log()
	if strings.Contains(log, "[once] restart") {
		t.Errorf("once service restarted:\n%s", log)
	}
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "basalt: step ") || strings.Contains(l, "basalt: config") || strings.Contains(l, "ntp") || strings.Contains(l, "restart #") || strings.Contains(l, "basalt: ready") || strings.Contains(l, "probe: kmsg") || strings.HasPrefix(strings.TrimSpace(l), "data:") {
			t.Log(strings.TrimSpace(l))
		}
	}
	sum := dataFsck(t, img)
	t.Log("e2fsck:", sum)
	kept := keptLog(t, img)
	t.Logf("kept log %s: %d lines, the first %q", contract.InitLog, strings.Count(kept, "\n"), strings.SplitN(kept, "\n", 2)[0])
	for _, want := range []string{"basalt: stage1: step mount-root ok (", "basalt: root a mounted (", "basalt: step api-filesystems ok (",
		"basalt: step init-log ok (", "basalt: ready (", "basalt: shutdown: step stop-services ok ("} {
		if !strings.Contains(kept, want) {
			t.Errorf("kept log %s lacks %q:\n%s", contract.InitLog, want, kept)
		}
	}
	wantBlocks := (diskSize - dataStart*512 - 34*512) / 4096
	if !strings.Contains(sum, fmt.Sprintf("/%d blocks", wantBlocks)) {
		t.Errorf("data fs after boot: %q, want %d blocks", sum, wantBlocks)
	}

	v2 := bootVM(t, tg, img, rd, nil, "")
	v2.expect(t, "table already grown, kernel up to date", "data filesystem already fills", "basalt: ready", "probe: var file present", "poweroff now")
	v2.m.Wait()
	dataFsck(t, img)
}

// TestE2EPowerCutDuringGrowth kills QEMU after the table was rewritten and
// before the filesystem grew; the next boot finishes the job.
func TestE2EPowerCutDuringGrowth(t *testing.T) {
	img, rd := prepare(t, x86_64, "basalt-data")
	v := bootVM(t, x86_64, img, rd, nil, "")
	v.expect(t, "table rewritten")
	v.m.Kill()
	v2 := bootVM(t, x86_64, img, rd, nil, "")
	v2.expect(t, "basalt: ready", "poweroff now")
	v2.m.Wait()
	if sum := dataFsck(t, img); !strings.Contains(sum, fmt.Sprintf("/%d blocks", (diskSize-dataStart*512-34*512)/4096)) {
		t.Errorf("after the cut and a boot: %q", sum)
	}
}

// TestE2EPowerCutDuringResize cuts the power while EXT4_IOC_RESIZE_FS is at
// work: basalt.debug.grow_steps=8 makes the init grow the filesystem in 8
// resizes, printing a marker after each; QEMU is killed at the first
// marker, with the second resize under way. The next boot (without the
// debug key) replays the journal, finishes growth and is ready; after its
// poweroff e2fsck -fn is clean and the filesystem fills the partition.
func TestE2EPowerCutDuringResize(t *testing.T) {
	img, rd := prepare(t, x86_64, "basalt-data")
	v := bootVM(t, x86_64, img, rd, nil, "basalt.debug.grow_steps=8")
	v.expect(t, "table rewritten", "basalt: data filesystem growing: ")
	v.m.Kill()
	if strings.Contains(v.m.Log(), "basalt: step grow-filesystem ok") {
		t.Fatalf("growth finished before the cut:\n%s", v.m.Log())
	}
	v2 := bootVM(t, x86_64, img, rd, nil, "")
	v2.expect(t, "table already grown", "basalt: data filesystem grown ", "basalt: ready", "poweroff now")
	v2.m.Wait()
	for _, l := range strings.Split(v.m.Log()+v2.m.Log(), "\n") {
		if strings.Contains(l, "data filesystem") || strings.Contains(l, "EXT4-fs") || strings.Contains(l, "grow") {
			t.Log(strings.TrimSpace(l))
		}
	}
	sum := dataFsck(t, img)
	t.Log("e2fsck:", sum)
	if !strings.Contains(sum, fmt.Sprintf("/%d blocks", (diskSize-dataStart*512-34*512)/4096)) {
		t.Errorf("after the cut and a boot: %q", sum)
	}
}

// TestE2EMissingDataFails is the negative twin: no basalt-data partition
// is an essential failure, logged with its reason, then a reboot.
func TestE2EMissingDataFails(t *testing.T) {
	img, rd := prepare(t, x86_64, "basalt-other")
	v := bootVM(t, x86_64, img, rd, nil, "")
	v.expect(t, "basalt: boot failed: essential step find-data: no partition labelled basalt-data", "basalt: rebooting in 5 s", "basalt: reboot now")
	v.m.Wait()
	if strings.Contains(v.m.Log(), "basalt: ready") {
		t.Error("ready after an essential failure")
	}
}

// TestE2EEmergencyShell is the debug twin of TestE2EMissingDataFails: with
// basalt.debug=1 the failed essential step drops to /bin/sh (busybox) on
// the console instead of rebooting, and commands typed there run.
func TestE2EEmergencyShell(t *testing.T) {
	if runtime.GOARCH != x86_64.goarch {
		t.Skip("the emergency shell test puts the host's amd64 busybox-static into the guest")
	}
	testutil.NeedFile(t, "/bin/busybox", "apt-get install busybox-static (make deps)")
	img, rd := prepare(t, x86_64, "basalt-other")
	in, type_ := io.Pipe()
	v := bootVM(t, x86_64, img, rd, in, "basalt.debug=1")
	t.Cleanup(func() { type_.Close() })
	v.expect(t, "basalt: boot failed: essential step find-data: no partition labelled basalt-data",
		"basalt: basalt.debug=1: emergency shell instead of reboot")
	// The console tty buffers what is typed before the shell reads it.
	fmt.Fprintf(type_, "echo marker-$((6*7))\n")
	v.expect(t, "marker-42")
	fmt.Fprintf(type_, "echo second-$((2+3)) $(cat /proc/1/comm)\n")
	v.expect(t, "basalt-emergency# ", "second-5 basalt-init")
	if strings.Contains(v.m.Log(), "basalt: reboot") {
		t.Errorf("rebooted despite basalt.debug=1:\n%s", v.m.Log())
	}
}
