package initramfs

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/basaltos/basalt/image/compress"
	"github.com/basaltos/basalt/image/tree"
	"github.com/basaltos/basalt/internal/testutil"
	"github.com/google/go-cmp/cmp"
)

const epoch = 1700000000

// sample returns the entries of a tree with every entry type, link groups
// whose data member is first or last in sorted order, and odd name lengths.
func sample() []tree.Entry {
	file := func(p string, mode fs.FileMode, uid, gid uint32, data string) tree.Entry {
		return tree.Entry{Path: p, Type: tree.Regular, Mode: mode, UID: uid, GID: gid, MTime: epoch + 7,
			Size: int64(len(data)), Open: tree.BytesOpener([]byte(data))}
	}
	return []tree.Entry{
		{Path: "bin", Type: tree.Dir, Mode: 0o755, MTime: epoch},
		file("bin/init", 0o755, 0, 0, "#!/bin/sh\necho init\n"),
		{Path: "bin/0init", Type: tree.Regular, Mode: 0o755, MTime: epoch, Link: "bin/init"},
		{Path: "bin/sh", Type: tree.Regular, Mode: 0o755, MTime: epoch, Link: "bin/init"},
		{Path: "bin/su", Type: tree.Regular, Mode: 0o755 | fs.ModeSetuid, MTime: epoch, Size: 3, Open: tree.BytesOpener([]byte("abc"))},
		{Path: "tmp", Type: tree.Dir, Mode: 0o777 | fs.ModeSticky, MTime: epoch},
		{Path: "etc/a/b/c", Type: tree.Dir, Mode: 0o700, UID: 1000, GID: 100, MTime: epoch + 1},
		file("etc/hosts", 0o644, 0, 0, "127.0.0.1 localhost\n"),
		file("etc/empty", 0o600, 5, 6, ""),
		file("etc/big", 0o640, 0, 42, strings.Repeat("0123456789abcdef", 5000)+"xyz"),
		{Path: "lib", Type: tree.Symlink, Mode: 0o777, MTime: epoch, Target: "usr/lib"},
		{Path: "dev/console", Type: tree.CharDev, Mode: 0o600, MTime: epoch, Major: 5, Minor: 1},
		{Path: "dev/vda", Type: tree.BlockDev, Mode: 0o660, GID: 6, MTime: epoch, Major: 254, Minor: 0},
		{Path: "run/initctl", Type: tree.FIFO, Mode: 0o600, MTime: epoch},
	}
}

func build(t *testing.T, seed int64) *tree.Tree {
	t.Helper()
	es := sample()
	if seed != 0 {
		rand.New(rand.NewSource(seed)).Shuffle(len(es), func(i, j int) { es[i], es[j] = es[j], es[i] })
	}
	tr := tree.New(epoch)
	for _, e := range es {
		if err := tr.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	// Shuffling may let an implicit parent replace an explicit one; fix
	// the explicit directories again so every order gives the same tree.
	for _, e := range sample() {
		if e.Type == tree.Dir {
			if err := tr.Add(e); err != nil {
				t.Fatal(err)
			}
		}
	}
	return tr
}

func archive(t *testing.T, tr *tree.Tree, c compress.Compression) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, tr, c); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// wantListing is what `cpio -itv --numeric-uid-gid` shows in its first four
// columns (mode, nlink, uid, gid) plus the name.
func wantListing(tr *tree.Tree) []string {
	var out []string
	for _, e := range tr.Sorted() {
		name := pathName(e)
		if e.Link != "" {
			l := *tr.Get(e.Link)
			l.Path, l.Link = e.Path, e.Link
			e = &l
		}
		typ := map[tree.Type]byte{tree.Regular: '-', tree.Dir: 'd', tree.Symlink: 'l', tree.CharDev: 'c', tree.BlockDev: 'b', tree.FIFO: 'p'}[e.Type]
		// ls-style: suid shows as 's' on user x, sticky as 't' on other x.
		perm := []byte(fs.FileMode(tree.UnixPerm(e.Mode) & 0o777).String()[1:])
		if e.Mode&fs.ModeSetuid != 0 {
			perm[2] = 's'
		}
		if e.Mode&fs.ModeSticky != 0 {
			perm[8] = 't'
		}
		nlink := 1
		switch {
		case e.Type == tree.Dir:
			nlink = 2
			for _, c := range tr.Children(e.Path) {
				if c.Type == tree.Dir {
					nlink++
				}
			}
		case e.Type == tree.Regular && (e.Link != "" || e.Path == "bin/init"):
			nlink = 3
		}
		if e.Type == tree.Symlink {
			name += " -> " + e.Target
		}
		out = append(out, fmt.Sprintf("%c%s %d %d %d %s", typ, perm, nlink, e.UID, e.GID, name))
	}
	return out
}

func cpioList(t *testing.T, archive []byte, verbose bool) []string {
	t.Helper()
	args := []string{"-it", "--quiet"}
	if verbose {
		args = []string{"-itv", "--quiet", "--numeric-uid-gid"}
	}
	cmd := exec.Command(testutil.NeedTool(t, "cpio"), args...)
	cmd.Stdin = bytes.NewReader(archive)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio %v: %v\n%s", args, err, out)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if verbose {
			f := strings.Fields(l)
			// mode nlink uid gid size|maj,min date(3 fields) name...
			i := 8
			if f[0][0] == 'c' || f[0][0] == 'b' {
				i = 9
			}
			l = strings.Join(append(f[:4:4], f[i:]...), " ")
		}
		lines = append(lines, l)
	}
	return lines
}

func TestListing(t *testing.T) {
	tr := build(t, 0)
	a := archive(t, tr, compress.None)
	var wantNames []string
	for _, e := range tr.Sorted() {
		wantNames = append(wantNames, pathName(e))
	}
	if diff := cmp.Diff(wantNames, cpioList(t, a, false)); diff != "" {
		t.Errorf("cpio -it (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantListing(tr), cpioList(t, a, true)); diff != "" {
		t.Errorf("cpio -itv (-want +got):\n%s", diff)
	}
}

func TestExtract(t *testing.T) {
	tr := build(t, 0)
	a := archive(t, tr, compress.None)
	dir := t.TempDir()
	cmd := exec.Command(testutil.NeedTool(t, "cpio"), "-idm", "--quiet", "--no-absolute-filenames")
	cmd.Dir, cmd.Stdin = dir, bytes.NewReader(a)
	if out, err := cmd.CombinedOutput(); err != nil && os.Geteuid() == 0 {
		t.Fatalf("cpio -idm: %v\n%s", err, out)
	}
	root := os.Geteuid() == 0
	var inoInit uint64
	for _, e := range tr.Sorted() {
		if e.Path == "" || (!root && (e.Type == tree.CharDev || e.Type == tree.BlockDev)) {
			continue
		}
		p := filepath.Join(dir, e.Path)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", e.Path, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if e.Link != "" {
			l := *tr.Get(e.Link)
			l.Path, l.Link = e.Path, e.Link
			e = &l
		}
		if e.Type != tree.Dir && e.Type != tree.Symlink && st.Mtim.Sec != e.MTime {
			t.Errorf("%s: mtime %d, want %d", e.Path, st.Mtim.Sec, e.MTime)
		}
		if root && (st.Uid != e.UID || st.Gid != e.GID) {
			t.Errorf("%s: owner %d:%d, want %d:%d", e.Path, st.Uid, st.Gid, e.UID, e.GID)
		}
		if got, want := st.Mode&0o7777, tree.UnixPerm(e.Mode); e.Type != tree.Symlink && got != want {
			t.Errorf("%s: mode %o, want %o", e.Path, got, want)
		}
		switch e.Type {
		case tree.Regular:
			src := e
			if e.Link != "" {
				src = tr.Get(e.Link)
			}
			r, _ := src.Open()
			want := new(bytes.Buffer)
			want.ReadFrom(r)
			got, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(got, want.Bytes()) {
				t.Errorf("%s: content differs (%d bytes, want %d), err %v", e.Path, len(got), want.Len(), err)
			}
			if src.Path == "bin/init" {
				if inoInit == 0 {
					inoInit = st.Ino
				} else if st.Ino != inoInit {
					t.Errorf("%s: not a hard link of bin/init", e.Path)
				}
			}
		case tree.Symlink:
			if got, _ := os.Readlink(p); got != e.Target {
				t.Errorf("%s: target %q, want %q", e.Path, got, e.Target)
			}
		case tree.CharDev, tree.BlockDev:
			if maj, min := uint32(st.Rdev>>8&0xfff), uint32(st.Rdev&0xff); maj != e.Major || min != e.Minor {
				t.Errorf("%s: device %d:%d, want %d:%d", e.Path, maj, min, e.Major, e.Minor)
			}
		}
	}
}

func TestReproducible(t *testing.T) {
	for _, c := range []compress.Compression{compress.None, compress.Gzip, compress.Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			sums := map[[32]byte][]int64{}
			for _, seed := range []int64{0, 1, 2, 3} {
				s := sha256.Sum256(archive(t, build(t, seed), c))
				sums[s] = append(sums[s], seed)
			}
			if len(sums) != 1 {
				t.Errorf("%d different archives for 4 insertion orders: %v", len(sums), sums)
			}
		})
	}
}

func TestCompressedReadable(t *testing.T) {
	tr := build(t, 0)
	plain := cpioList(t, archive(t, tr, compress.None), false)
	for _, c := range []struct {
		c    compress.Compression
		tool string
	}{{compress.Zstd, "zstd"}, {compress.Gzip, "gzip"}} {
		t.Run(c.c.String(), func(t *testing.T) {
			cmd := exec.Command(testutil.NeedTool(t, c.tool), "-dc")
			cmd.Stdin = bytes.NewReader(archive(t, tr, c.c))
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s -dc: %v", c.tool, err)
			}
			if diff := cmp.Diff(plain, cpioList(t, out, false)); diff != "" {
				t.Errorf("%s -dc | cpio -it (-want +got):\n%s", c.tool, diff)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		e    tree.Entry
		want string
	}{
		{"xattr", tree.Entry{Path: "x", Type: tree.Regular, Xattrs: map[string][]byte{"user.a": {1}}}, "x: newc cpio cannot hold extended attributes"},
		{"short content", tree.Entry{Path: "s", Type: tree.Regular, Size: 10, Open: tree.BytesOpener([]byte("abc"))}, "s: content of s: 3 bytes, entry says 10"},
		{"long content", tree.Entry{Path: "l", Type: tree.Regular, Size: 1, Open: tree.BytesOpener([]byte("abc"))}, "longer than the 1 bytes"},
		{"mtime", tree.Entry{Path: "m", Type: tree.Dir, MTime: -1}, "m: mtime -1"},
		{"dangling link", tree.Entry{Path: "d", Type: tree.Regular, Link: "nowhere"}, `d: hard link to missing "nowhere"`},
	} {
		tr := tree.New(epoch)
		if err := tr.Add(c.e); err != nil {
			t.Fatal(err)
		}
		err := Write(new(bytes.Buffer), tr, compress.None)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want error containing %q", c.name, err, c.want)
		}
	}
}
