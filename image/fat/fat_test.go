package fat

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/image/disk"
	"github.com/basaltos/basalt/image/tree"
	"github.com/basaltos/basalt/internal/testutil"
	"github.com/google/go-cmp/cmp"
)

const (
	MiB   = 1 << 20
	epoch = 1700000000 // 2023-11-14 22:13:20 UTC
)

// pseudo returns n deterministic pseudo-random bytes.
func pseudo(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

// bootTree is a boot partition: long names, nested and empty directories,
// empty files, 8.3 names, names that differ from 8.3 only by case, and a
// 60 MB file.
func bootTree(t testing.TB, big int) *tree.Tree {
	t.Helper()
	tr := tree.New(epoch)
	add := func(p string, data []byte, mtime int64) {
		if err := tr.Add(tree.Entry{Path: p, Type: tree.Regular, Mode: 0o644, MTime: mtime, Size: int64(len(data)), Open: tree.BytesOpener(data)}); err != nil {
			t.Fatal(err)
		}
	}
	add("EFI/BOOT/BOOTX64.EFI", pseudo(1, 90000), epoch)
	add("EFI/systemd/systemd-bootx64.efi", pseudo(2, 120000), epoch)
	add("loader/loader.conf", []byte("timeout 0\ndefault basalt-a*\n"), epoch)
	add("loader/entries/basalt-a+3-0.conf", []byte("title basalt a\n"), epoch+3600)
	add("a/vmlinuz", pseudo(3, big), epoch+86400*365)
	add("a/initrd", pseudo(4, 3*MiB+7), epoch+1)
	add("a/dtbs/broadcom/bcm2711-rpi-4-b.dtb", pseudo(5, 50000), epoch)
	add("a/version", []byte("1.0.0\n"), epoch)
	add("basalt/config.yaml", []byte("hostname: edge\n"), epoch)
	add("empty", nil, epoch)
	add("README.TXT", []byte("8.3 name\n"), epoch)
	add("a name with spaces and a very long tail, more than thirteen characters.txt", []byte("lfn\n"), epoch)
	add("ünïcödé-名前.txt", []byte("utf-16\n"), epoch)
	add("data.tar.gz", []byte("x"), epoch)
	for i := range 40 { // a directory of several clusters
		add(fmt.Sprintf("many/file-%02d.conf", i), []byte(fmt.Sprint(i)), epoch)
	}
	if err := tr.Mkdir("basalt/config.d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := tr.Add(tree.Entry{Path: "b/vmlinuz", Type: tree.Regular, Mode: 0o644, MTime: epoch, Link: "a/vmlinuz"}); err != nil {
		t.Fatal(err)
	}
	return tr
}

// writeImage writes tr as a FAT32 of size bytes to a new file.
func writeImage(t testing.TB, tr *tree.Tree, size int64) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "boot.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := Write(f, size, tr, Options{Label: contract.BootFSLabel, VolumeID: 0xB5A1B007}); err != nil {
		t.Fatal(err)
	}
	return img
}

// fsckClean runs fsck.vfat -n and fails on anything but a clean summary.
func fsckClean(t *testing.T, img string) {
	t.Helper()
	fsck := testutil.NeedTool(t, "fsck.vfat")
	out, err := exec.Command(fsck, "-n", img).CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err != nil || len(lines) != 2 || strings.Contains(string(out), "will be") {
		t.Fatalf("fsck.vfat -n %s: %v\n%s", img, err, out)
	}
}

// mtools runs an mtools command with TZ=UTC (FAT times are local times).
func mtools(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(testutil.NeedTool(t, name), args...)
	cmd.Env = append(os.Environ(), "TZ=UTC", "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// treeFiles returns path -> content of tr's regular files (links resolved)
// and the list of directories.
func treeFiles(t testing.TB, tr *tree.Tree) (map[string][]byte, []string) {
	files, dirs := map[string][]byte{}, []string{}
	for _, e := range tr.Sorted() {
		switch {
		case e.Path == "":
		case e.Type == tree.Dir:
			dirs = append(dirs, e.Path)
		default:
			c := e
			if e.Link != "" {
				c = tr.Get(e.Link)
			}
			r, err := c.Open()
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			buf.ReadFrom(r)
			r.Close()
			files[e.Path] = buf.Bytes()
		}
	}
	return files, dirs
}

// hostFiles walks an extracted directory like treeFiles.
func hostFiles(t *testing.T, root string) (map[string][]byte, []string, map[string]int64) {
	files, dirs, mtimes := map[string][]byte{}, []string{}, map[string]int64{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			dirs = append(dirs, rel)
			return nil
		}
		b, err := os.ReadFile(p)
		files[rel] = b
		fi, _ := d.Info()
		mtimes[rel] = fi.ModTime().Unix()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(dirs)
	return files, dirs, mtimes
}

func TestWriteCheckedByTools(t *testing.T) {
	tr := bootTree(t, 60*MiB)
	img := writeImage(t, tr, 256*MiB)
	fsckClean(t, img)

	out := mtools(t, "mdir", "-i", img, "::")
	for _, s := range []string{"Volume in drive : is BASALT", "Serial Number is B5A1-B007", "README   TXT", "EMPTY                0 2023-11-14  22:13  empty"} {
		if !strings.Contains(out, s) {
			t.Errorf("mdir does not show %q:\n%s", s, out)
		}
	}

	dst := filepath.Join(t.TempDir(), "x")
	os.Mkdir(dst, 0o755)
	mtools(t, "mcopy", "-s", "-m", "-n", "-i", img, "::/", dst)
	wantFiles, wantDirs := treeFiles(t, tr)
	gotFiles, gotDirs, mtimes := hostFiles(t, dst)
	sort.Strings(wantDirs)
	if d := cmp.Diff(wantDirs, gotDirs); d != "" {
		t.Errorf("directories (-want +got):\n%s", d)
	}
	if len(gotFiles) != len(wantFiles) {
		t.Errorf("%d files extracted, want %d", len(gotFiles), len(wantFiles))
	}
	for p, want := range wantFiles {
		if got, ok := gotFiles[p]; !ok || !bytes.Equal(got, want) {
			t.Errorf("%s: extracted %d bytes (present %v), want %d identical bytes", p, len(got), ok, len(want))
		}
		if want := tr.Get(p).MTime &^ 1; mtimes[p] != want {
			t.Errorf("%s: mtime %d, want %d", p, mtimes[p], want)
		}
	}
}

func TestReproducible(t *testing.T) {
	sum := func() string {
		b, err := os.ReadFile(writeImage(t, bootTree(t, 2*MiB), 64*MiB))
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%x", sha256.Sum256(b))
	}
	if a, b := sum(), sum(); a != b {
		t.Errorf("two writes of the same tree differ: %s %s", a, b)
	}
}

func TestReadBack(t *testing.T) {
	tr := bootTree(t, 1*MiB)
	img := writeImage(t, tr, 64*MiB)
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fsys, err := Open(f, 0, 64*MiB)
	if err != nil {
		t.Fatal(err)
	}
	if fsys.Label() != "BASALT" || fsys.VolumeID() != 0xB5A1B007 {
		t.Errorf("label %q, volume ID %08X", fsys.Label(), fsys.VolumeID())
	}
	files, _ := treeFiles(t, tr)
	for p, want := range files {
		got, err := fsys.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("ReadFile(%s): %d bytes, %v; want %d", p, len(got), err, len(want))
		}
	}
	ents, err := fsys.ReadDir("loader/entries")
	if err != nil {
		t.Fatal(err)
	}
	want := []DirEntry{{Name: "basalt-a+3-0.conf", ShortName: "BASALT~1.CON", Size: 15, ModTime: time.Unix(epoch+3600, 0).UTC()}}
	if d := cmp.Diff(want, ents); d != "" {
		t.Errorf("ReadDir (-want +got):\n%s", d)
	}
	if _, err := fsys.ReadFile("a/nope"); err == nil {
		t.Error("ReadFile of a missing file succeeded")
	}
}

func TestAddFile(t *testing.T) {
	mkfs := testutil.NeedTool(t, "mkfs.vfat")
	ours := writeImage(t, bootTree(t, 1*MiB), 64*MiB)
	theirs := filepath.Join(t.TempDir(), "mkfs.img")
	if out, err := exec.Command(mkfs, "-C", "-F", "32", "-n", "BASALT", "-i", "12345678", theirs, "65536").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.vfat: %v\n%s", err, out)
	}
	edits := map[string][]byte{
		"basalt/config.d/10-network.yaml": []byte("network: {}\n"),
		"basalt/config.yaml":              pseudo(9, 5000), // replaces (ours) or creates
		"new/dir/deep/file.bin":           pseudo(10, 70000),
		"EMPTY":                           nil,
	}
	for i := range 40 { // grows basalt/config.d past one cluster
		edits[fmt.Sprintf("basalt/config.d/%02d-drop-in-with-a-long-name.yaml", 20+i)] = []byte(fmt.Sprint(i))
	}
	keys := make([]string, 0, len(edits))
	for k := range edits {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, img := range []string{ours, theirs} {
		t.Run(filepath.Base(img), func(t *testing.T) {
			f, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if err := AddFile(f, 0, 64*MiB, k, edits[k], epoch); err != nil {
					t.Fatal(err)
				}
			}
			f.Close()
			fsckClean(t, img)
			dst := t.TempDir()
			for _, k := range keys {
				out := filepath.Join(dst, strings.ReplaceAll(k, "/", "_"))
				mtools(t, "mcopy", "-n", "-i", img, "::/"+k, out)
				got, err := os.ReadFile(out)
				if err != nil || !bytes.Equal(got, edits[k]) {
					t.Errorf("%s: mcopy got %d bytes, want %d identical", k, len(got), len(edits[k]))
				}
			}
		})
	}
}

func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(tr *tree.Tree)
		size int64
		want string
	}{
		{"symlink", func(tr *tree.Tree) { tr.AddSymlink("a/link", "vmlinuz") }, 64 * MiB, "a/link: FAT cannot hold a symlink"},
		{"case", func(tr *tree.Tree) { tr.AddBytes("A/VMLINUZ", 0o644, nil) }, 64 * MiB, "differ only in case"},
		{"bad char", func(tr *tree.Tree) { tr.AddBytes("a/x:y", 0o644, nil) }, 64 * MiB, `character ':'`},
		{"too small", func(*tree.Tree) {}, 16 * MiB, "FAT32 needs at least 65525"},
		{"full", func(tr *tree.Tree) { tr.AddBytes("huge", 0o644, make([]byte, 70*MiB)) }, 64 * MiB, "huge: does not fit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := tree.New(epoch)
			tr.AddBytes("a/vmlinuz", 0o644, []byte("k"))
			tc.edit(tr)
			err := Write(discard{}, tc.size, tr, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want error containing %q", err, tc.want)
			}
		})
	}
}

type discard struct{}

func (discard) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

func TestGeometryLikeMkfs(t *testing.T) {
	tests := []struct {
		size                         int64
		spc, reserved, fat, clusters uint32
	}{
		// mkfs.fat 4.2 -F 32 on files of these sizes.
		{64 * MiB, 1, 32, 1009, 129022},
		{256 * MiB, 1, 32, 4033, 516190},
	}
	for _, tc := range tests {
		g, err := newGeometry(tc.size)
		if err != nil {
			t.Fatal(err)
		}
		got := []uint32{g.spc, g.reserved, g.fatSize, g.clusters}
		if d := cmp.Diff([]uint32{tc.spc, tc.reserved, tc.fat, tc.clusters}, got); d != "" {
			t.Errorf("%d MiB (-want +got):\n%s", tc.size>>20, d)
		}
	}
}

func TestShortNames(t *testing.T) {
	n := shortNamer{}
	var got []string
	for _, name := range []string{"README.TXT", "vmlinuz", "config.yaml", "config.yml", ".hidden", "a b.c.d", "ünï.txt", "Makefile.am.in"} {
		sn, long, err := n.name(name)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %v", sn[:], long))
	}
	want := []string{"README  TXT false", "VMLINUZ     true", "CONFIG~1YAM true", "CONFIG  YML true", "HIDDEN~1    true", "ABC~1   D   true", "_N_~1   TXT true", "MAKEFI~1IN  true"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// TestInDiskImage writes the boot partition of a GPT disk through
// disk.Write's bounded window and reads it back with mtools at its offset.
func TestInDiskImage(t *testing.T) {
	img := filepath.Join(t.TempDir(), "disk.img")
	tr := bootTree(t, 1*MiB)
	l := disk.Layout{Scheme: disk.GPT, DiskGUID: disk.DeriveGUID("s", "disk"), Partitions: []disk.Partition{
		{Name: contract.PartBoot, Type: disk.TypeESP, GUID: disk.DeriveGUID("s", "boot"), Size: 40 * MiB},
		{Name: contract.PartData, Type: disk.TypeLinuxFS, GUID: disk.DeriveGUID("s", "data"), Size: MiB},
	}}
	err := disk.Write(img, l, func(p disk.Partition, w io.WriterAt) error {
		if p.Name != contract.PartBoot {
			return nil
		}
		return Write(w, p.Size, tr, Options{Label: contract.BootFSLabel, VolumeID: 7, HiddenSectors: uint32(p.Start / disk.SectorSize)})
	})
	if err != nil {
		t.Fatal(err)
	}
	out := mtools(t, "mdir", "-b", "-i", img+"@@1M", "::/a")
	if !strings.Contains(out, "::/a/vmlinuz") {
		t.Errorf("mdir at the partition offset:\n%s", out)
	}
	// 50 MiB of files cannot fit the 40 MiB partition: an error, no image.
	tr.AddBytes("big", 0o644, make([]byte, 50*MiB))
	if err := disk.Write(img+"2", l, func(p disk.Partition, w io.WriterAt) error {
		return Write(w, p.Size, tr, Options{})
	}); err == nil {
		t.Error("oversized boot partition written")
	}
}
