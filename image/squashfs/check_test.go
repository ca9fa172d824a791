package squashfs

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
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/basaltos/basalt/image/tree"
	"github.com/basaltos/basalt/internal/testutil"
)

// genReader yields size bytes of compressible pseudo-random text-like data
// seeded by seed, with zero runs where zeroEvery > 0 (every zeroEvery-th
// 64 KiB chunk is zero).
type genReader struct {
	rng       *rand.Rand
	left      int64
	chunk     int64
	zeroEvery int64
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	for i := 0; i < len(p); {
		n := min(len(p)-i, 32)
		if g.zeroEvery > 0 && (g.chunk>>16)%g.zeroEvery != 0 {
			clear(p[i : i+n])
		} else {
			off := g.rng.IntN(len(genText) - 32)
			copy(p[i:i+n], genText[off:])
			p[i+g.rng.IntN(n)] = byte(g.rng.Uint32())
		}
		i += n
		g.chunk += int64(n)
	}
	g.left -= int64(len(p))
	return len(p), nil
}

const genText = "alpha beta gamma delta kernel squash inode block fragment table " +
	"the quick brown fox jumps over the lazy dog 0123456789 {}[]();,.:/ " +
	"func main() { fmt.Println(\"hello\") } // a comment about blocks and tails "

func genOpener(seed uint64, size int64) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		return io.NopCloser(&genReader{rng: rand.New(rand.NewPCG(seed, 1)), left: size}), nil
	}
}

func writeImage(t testing.TB, tr *tree.Tree, opt Options) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "img.sqfs")
	st, err := WriteFile(img, tr, opt)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size%4096 != 0 || st.BytesUsed > st.Size {
		t.Fatalf("stats %+v: size not padded to 4 KiB", st)
	}
	return img
}

// listLine is one line of `unsquashfs -lln`, dir sizes dropped.
func listLine(e *tree.Entry, target *tree.Entry) string {
	m := target.Mode
	size := fmt.Sprint(target.Size)
	typ := "-"
	switch e.Type {
	case tree.Dir:
		typ, size = "d", "-"
	case tree.Symlink:
		typ, size = "l", fmt.Sprint(len(e.Target))
	case tree.CharDev, tree.BlockDev:
		typ = map[tree.Type]string{tree.CharDev: "c", tree.BlockDev: "b"}[e.Type]
		// unsquashfs 4.5 shows the encoded number as (rdev>>8, rdev&0xff).
		rdev := e.Minor&0xFF | e.Major<<8 | (e.Minor&^0xFF)<<12
		size = fmt.Sprintf("%d,%d", rdev>>8, rdev&0xFF)
	case tree.FIFO:
		typ, size = "p", "0"
	case tree.Socket:
		typ, size = "s", "0"
	}
	perm := []byte("rwxrwxrwx")
	for i := range perm {
		if m&(1<<(8-i)) == 0 {
			perm[i] = '-'
		}
	}
	special := func(bit fs.FileMode, i int, on, off byte) {
		if m&bit != 0 {
			if perm[i] == 'x' {
				perm[i] = on
			} else {
				perm[i] = off
			}
		}
	}
	special(fs.ModeSetuid, 2, 's', 'S')
	special(fs.ModeSetgid, 5, 's', 'S')
	special(fs.ModeSticky, 8, 't', 'T')
	line := fmt.Sprintf("%s%s %d/%d %s %s /%s", typ, perm, target.UID, target.GID, size,
		time.Unix(target.MTime, 0).UTC().Format("2006-01-02 15:04"), e.Path)
	if e.Type == tree.Symlink {
		line += " -> " + e.Target
	}
	return line
}

func wantListing(tr *tree.Tree) []string {
	var out []string
	for _, e := range tr.Sorted() {
		target := e
		if e.Type == tree.Regular && e.Link != "" {
			target = tr.Get(e.Link)
		}
		out = append(out, listLine(e, target))
	}
	return out
}

func gotListing(t testing.TB, img string) []string {
	t.Helper()
	bin := testutil.NeedTool(t, "unsquashfs")
	out, err := exec.Command(bin, "-lln", "-UTC", img).Output()
	if err != nil {
		t.Fatalf("unsquashfs -lln: %v\n%s", err, out)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		f := strings.SplitN(l, " ", 2)
		rest := strings.TrimLeft(f[1], " ")
		ug, rest, _ := strings.Cut(rest, " ")
		rest = strings.TrimLeft(rest, " ")
		size, rest, _ := strings.Cut(rest, " ")
		if strings.HasSuffix(size, ",") {
			var minor string
			minor, rest, _ = strings.Cut(strings.TrimLeft(rest, " "), " ")
			size += minor
		}
		if f[0][0] == 'd' {
			size = "-"
		}
		date, rest, _ := strings.Cut(rest, " ")
		hm, p, _ := strings.Cut(rest, " ")
		p = strings.TrimPrefix(p, "squashfs-root")
		if p == "" || p[0] != '/' {
			p = "/" + p
		}
		lines = append(lines, fmt.Sprintf("%s %s %s %s %s %s", f[0], ug, size, date, hm, p))
	}
	return lines
}

// checkImage verifies img against tr with squashfs-tools: a sane superblock,
// the exact listing, and (extract) byte-identical content and full metadata.
func checkImage(t testing.TB, tr *tree.Tree, img string, extract bool) {
	t.Helper()
	bin := testutil.NeedTool(t, "unsquashfs")
	out, err := exec.Command(bin, "-s", img).CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs -s: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("Creation or last append time %s", time.Unix(tr.Epoch, 0).UTC().Format("Mon Jan _2 15:04:05 2006")); !strings.Contains(string(out), want) {
		t.Errorf("unsquashfs -s lacks %q:\n%s", want, out)
	}
	if d := cmp.Diff(wantListing(tr), gotListing(t, img)); d != "" {
		t.Fatalf("unsquashfs -lln (-want +got):\n%s", d)
	}
	if extract {
		checkExtract(t, tr, img)
	}
}

func checkExtract(t testing.TB, tr *tree.Tree, img string) {
	t.Helper()
	bin := testutil.NeedTool(t, "unsquashfs")
	dir := filepath.Join(t.TempDir(), "x")
	cmd := exec.Command(bin, "-no-progress", "-d", dir, img)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs -d: %v\n%s", err, out)
	}
	root := os.Geteuid() == 0
	inodes := map[string]uint64{}
	for _, e := range tr.Sorted() {
		p := filepath.Join(dir, e.Path)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Errorf("%s: %v", e.Path, err)
			continue
		}
		target := e
		if e.Type == tree.Regular && e.Link != "" {
			target = tr.Get(e.Link)
			if ino, ok := inodes[e.Link]; ok && ino != st.Ino {
				t.Errorf("%s: not a hard link of %s", e.Path, e.Link)
			}
		}
		inodes[e.Path] = st.Ino
		got := fmt.Sprintf("mode %o", st.Mode&0o7777)
		want := fmt.Sprintf("mode %o", uint16(tree.UnixPerm(target.Mode)))
		if e.Type == tree.Symlink {
			got, want = "", ""
		}
		if root {
			got += fmt.Sprintf(" owner %d:%d", st.Uid, st.Gid)
			want += fmt.Sprintf(" owner %d:%d", target.UID, target.GID)
		}
		if e.Type != tree.Dir || e.Path == "" {
			got += fmt.Sprintf(" mtime %d", st.Mtim.Sec)
			want += fmt.Sprintf(" mtime %d", target.MTime)
		}
		switch e.Type {
		case tree.Regular:
			got += fmt.Sprintf(" nlink %d %s", st.Nlink, fileSum(t, p))
			want += fmt.Sprintf(" nlink %d %s", nlinks(tr, target.Path), entrySum(t, target))
		case tree.Symlink:
			l, _ := os.Readlink(p)
			got += " -> " + l
			want += " -> " + e.Target
		case tree.CharDev, tree.BlockDev:
			if root {
				got += fmt.Sprintf(" dev %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
				want += fmt.Sprintf(" dev %d:%d", e.Major, e.Minor)
			}
		}
		if root {
			for k, v := range target.Xattrs {
				buf := make([]byte, 64<<10)
				n, err := unix.Lgetxattr(p, k, buf)
				if err != nil || !bytes.Equal(buf[:n], v) {
					t.Errorf("%s: xattr %s = %q, %v; want %q", e.Path, k, buf[:max(n, 0)], err, v)
				}
			}
		}
		if got != want {
			t.Errorf("%s: extracted %q, want %q", e.Path, got, want)
		}
	}
}

func nlinks(tr *tree.Tree, p string) uint64 {
	n := uint64(1)
	for _, e := range tr.Sorted() {
		if e.Type == tree.Regular && e.Link == p {
			n++
		}
	}
	return n
}

func fileSum(t testing.TB, p string) string {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func entrySum(t testing.TB, e *tree.Entry) string {
	h := sha256.New()
	if e.Size > 0 {
		r, err := e.Open()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if _, err := io.Copy(h, r); err != nil {
			t.Fatal(err)
		}
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}
