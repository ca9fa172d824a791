package ext4

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/basaltos/basalt/internal/testutil"
	"github.com/google/go-cmp/cmp"
)

var testOpt = Options{
	Label:    "basalt-data",
	UUID:     [16]byte{0x6b, 0x1a, 0x0c, 0x3e, 0x51, 0x2d, 0x4f, 0x6a, 0x9e, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77},
	HashSeed: [16]byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
	Epoch:    1700000000,
	Dirs:     []string{"var", "etc-upper", "rancher", "var/lib/rancher", "/var/log/"},
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.WriterAt
	n atomic.Int64
}

func (c *countingWriter) WriteAt(p []byte, off int64) (int, error) {
	c.n.Add(int64(len(p)))
	return c.w.WriteAt(p, off)
}

// image writes a filesystem of size bytes into a fresh sparse file and
// returns its path and the number of bytes Write wrote.
func image(t testing.TB, size int64, opt Options) (string, int64) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "data.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	cw := &countingWriter{w: f}
	if err := Write(cw, size, opt); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p, cw.n.Load()
}

func e2fsck(t *testing.T, img string) string {
	t.Helper()
	out, err := exec.Command(testutil.NeedTool(t, "e2fsck"), "-fn", img).CombinedOutput()
	if err != nil {
		t.Fatalf("e2fsck -fn: %v\n%s", err, out)
	}
	return string(out)
}

// sizes covers a partial single group, exactly one group, full groups,
// several flex groups, and last groups that are kept or dropped.
var sizes = []int64{16 << 20, 64 << 20, 128 << 20, 1 << 30, 5 << 30, 64<<20 + 4096 + 123, 4<<30 + 100<<10, 2<<30 + 600<<20}

func TestE2fsckClean(t *testing.T) {
	for _, size := range sizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			img, written := image(t, size, testOpt)
			out := e2fsck(t, img)
			t.Logf("%d MiB: %d KiB written; %s", size>>20, written>>10, lastLine(out))
			// Only metadata is written: bitmaps, descriptors, superblock
			// copies, a few inodes and directory blocks.
			if limit := int64(256<<10) + size/2048; written > limit {
				t.Errorf("wrote %d bytes for %d, want at most %d", written, size, limit)
			}
		})
	}
}

func lastLine(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return l[len(l)-1]
}

func TestDumpe2fs(t *testing.T) {
	img, _ := image(t, 64<<20, testOpt)
	cmd := exec.Command(testutil.NeedTool(t, "dumpe2fs"), "-h", img)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dumpe2fs -h: %v", err)
	}
	got := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			got[k] = strings.TrimSpace(v)
		}
	}
	want := map[string]string{
		"Filesystem volume name": "basalt-data",
		"Filesystem UUID":        "6b1a0c3e-512d-4f6a-9e11-223344556677",
		"Directory Hash Seed":    "deadbeef-0102-0304-0506-0708090a0b0c",
		"Filesystem features":    "has_journal ext_attr dir_index filetype extent 64bit flex_bg sparse_super large_file huge_file dir_nlink extra_isize metadata_csum",
		"Filesystem created":     "Tue Nov 14 22:13:20 2023",
		"Last write time":        "Tue Nov 14 22:13:20 2023",
		"Last checked":           "Tue Nov 14 22:13:20 2023",
		"Last mount time":        "n/a",
		"Filesystem state":       "clean",
		"Block size":             "4096",
		"Block count":            "16384",
		"Inode count":            "8192",
		"Journal inode":          "8",
		"Total journal blocks":   "1024",
		"Journal start":          "0",
		"Checksum type":          "crc32c",
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			delete(got, k)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("dumpe2fs -h (-want +got):\n%s", diff)
	}
}

func TestDirectories(t *testing.T) {
	img, _ := image(t, 16<<20, testOpt)
	debugfs := testutil.NeedTool(t, "debugfs")
	ls := func(dir string) []string {
		out, err := exec.Command(debugfs, "-R", "ls -l "+dir, img).Output()
		if err != nil {
			t.Fatalf("debugfs ls %s: %v", dir, err)
		}
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Fields(l)
			// inode mode (type) uid gid size date time name
			lines = append(lines, strings.Join([]string{f[1], f[3], f[4], f[5], f[8]}, " "))
		}
		sort.Strings(lines)
		return lines
	}
	for dir, want := range map[string][]string{
		"/": {"40700 0 0 16384 lost+found", "40755 0 0 4096 .", "40755 0 0 4096 ..",
			"40755 0 0 4096 etc-upper", "40755 0 0 4096 rancher", "40755 0 0 4096 var"},
		"/var":     {"40755 0 0 4096 .", "40755 0 0 4096 ..", "40755 0 0 4096 lib", "40755 0 0 4096 log"},
		"/var/lib": {"40755 0 0 4096 .", "40755 0 0 4096 ..", "40755 0 0 4096 rancher"},
	} {
		if diff := cmp.Diff(want, ls(dir)); diff != "" {
			t.Errorf("debugfs ls -l %s (-want +got):\n%s", dir, diff)
		}
	}
}

func sum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestDeterministic(t *testing.T) {
	a, _ := image(t, 64<<20, testOpt)
	shuffled := testOpt
	shuffled.Dirs = []string{"var/log", "rancher", "var/lib/rancher", "etc-upper", "var"}
	b, _ := image(t, 64<<20, shuffled)
	if sum(t, a) != sum(t, b) {
		t.Error("same options (directories in another order) gave different images")
	}
	other := testOpt
	other.UUID[0]++
	c, _ := image(t, 64<<20, other)
	if sum(t, a) == sum(t, c) {
		t.Error("another UUID gave the same image")
	}
}

// TestOfflineGrow grows with resize2fs, a proxy for the online growth the
// device does (which needs CAP_SYS_RESOURCE and a mounted filesystem).
func TestOfflineGrow(t *testing.T) {
	resize2fs := testutil.NeedTool(t, "resize2fs")
	for _, c := range []struct{ from, to int64 }{{64 << 20, 4 << 30}, {16 << 20, 9 << 30}} {
		t.Run(fmt.Sprintf("%dM-%dM", c.from>>20, c.to>>20), func(t *testing.T) {
			img, _ := image(t, c.from, testOpt)
			if err := os.Truncate(img, c.to); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(resize2fs, img).CombinedOutput(); err != nil {
				t.Fatalf("resize2fs: %v\n%s", err, out)
			}
			want := fmt.Sprintf("/%d blocks", c.to/4096)
			if out := e2fsck(t, img); !strings.Contains(out, want) {
				t.Errorf("after resize2fs: %q, want %q", lastLine(out), want)
			}
		})
	}
}

// TestMountFill mounts the filesystem (root only), writes to it, and checks
// it again after unmounting.
func TestMountFill(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mount -o loop needs root")
	}
	mount := testutil.NeedTool(t, "mount")
	umount := testutil.NeedTool(t, "umount")
	img, _ := image(t, 64<<20, testOpt)
	mnt := t.TempDir()
	if out, err := exec.Command(mount, "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("mount -o loop: %v: %s", err, out)
	}
	mounted := true
	defer func() {
		if mounted {
			exec.Command(umount, mnt).Run()
		}
	}()
	for i := range 200 {
		d := filepath.Join(mnt, "var/lib/rancher", fmt.Sprintf("d%03d", i%20))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%d", i)), []byte(strings.Repeat("x", i*500)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(mnt, "etc-upper/big"), make([]byte, 20<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(umount, mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v: %s", err, out)
	}
	mounted = false
	t.Log(lastLine(e2fsck(t, img)))
}

func TestErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		size int64
		opt  Options
		want string
	}{
		{"too small", 4 << 20, Options{}, "at least 8388608"},
		{"long label", 16 << 20, Options{Label: "seventeen-bytes!!"}, "longer than 16 bytes"},
		{"negative epoch", 16 << 20, Options{Epoch: -1}, "epoch -1"},
		{"dotdot", 16 << 20, Options{Dirs: []string{"var/../etc"}}, `directory "var/../etc"`},
		{"empty dir", 16 << 20, Options{Dirs: []string{""}}, `directory ""`},
		{"lost+found", 16 << 20, Options{Dirs: []string{"lost+found/x"}}, "made by the filesystem"},
		{"full root", 16 << 20, Options{Dirs: manyDirs(400)}, "do not fit one block"},
	} {
		err := Write(failWriter{}, c.size, c.opt)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want error containing %q", c.name, err, c.want)
		}
	}
}

func manyDirs(n int) []string {
	var d []string
	for i := range n {
		d = append(d, fmt.Sprintf("directory-%04d", i))
	}
	return d
}

type failWriter struct{}

func (failWriter) WriteAt([]byte, int64) (int, error) { return 0, fmt.Errorf("must not be written") }

// BenchmarkWrite compares Write with mke2fs making the same filesystem.
func BenchmarkWrite(b *testing.B) {
	mke2fs := testutil.NeedTool(b, "mke2fs")
	const size = 1 << 30
	dir := b.TempDir()
	p := filepath.Join(dir, "ours.img")
	ref := filepath.Join(dir, "mke2fs.img")
	var ours, theirs int64
	for b.Loop() {
		f, _ := os.Create(p)
		f.Truncate(size)
		start := time.Now().UnixNano()
		if err := Write(f, size, testOpt); err != nil {
			b.Fatal(err)
		}
		ours += time.Now().UnixNano() - start
		f.Close()
		os.Remove(ref)
		start = time.Now().UnixNano()
		cmd := exec.Command(mke2fs, "-q", "-F", "-t", "ext4", "-b", "4096", "-O", "^resize_inode,^orphan_file,^metadata_csum_seed",
			"-L", testOpt.Label, "-U", "6b1a0c3e-512d-4f6a-9e11-223344556677", "-N", "65536", ref, "1G")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("mke2fs: %v\n%s", err, out)
		}
		theirs += time.Now().UnixNano() - start
	}
	b.ReportMetric(float64(ours)/float64(theirs), "time-ratio")
	b.ReportMetric(float64(ours)/float64(b.N)/1e6, "ours-ms/op")
	b.ReportMetric(float64(theirs)/float64(b.N)/1e6, "mke2fs-ms/op")
}
