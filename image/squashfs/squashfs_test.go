package squashfs

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/basaltos/basalt/image/compress"
	"github.com/basaltos/basalt/image/tree"
)

const epoch = 1700000000

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// capV2 is a valid security.capability value (cap_net_bind_service, effective).
var capV2 = []byte{1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// everyType holds one entry of each kind plus xattrs, hard links,
// duplicates, special mode bits, owners and mtimes.
func everyType(t testing.TB) *tree.Tree {
	tr := tree.New(epoch)
	add := func(e tree.Entry) { must(t, tr.Add(e)) }
	add(tree.Entry{Path: "bin/ping", Type: tree.Regular, Mode: 0o755 | fs.ModeSetuid, UID: 0, GID: 0, MTime: epoch - 60, Size: 5000, Open: genOpener(1, 5000),
		Xattrs: map[string][]byte{"security.capability": capV2, "user.note": []byte("hello")}})
	add(tree.Entry{Path: "bin/ping6", Type: tree.Regular, Link: "bin/ping"})
	add(tree.Entry{Path: "usr/bin/ping-hardlink", Type: tree.Regular, Link: "bin/ping"})
	add(tree.Entry{Path: "usr/share/a", Type: tree.Regular, Mode: 0o644, UID: 1000, GID: 100, MTime: epoch + 120, Size: 300000, Open: genOpener(2, 300000)})
	add(tree.Entry{Path: "usr/share/b", Type: tree.Regular, Mode: 0o600, UID: 1000, GID: 100, MTime: epoch, Size: 300000, Open: genOpener(2, 300000)})
	add(tree.Entry{Path: "usr/share/small-dup", Type: tree.Regular, Mode: 0o644, MTime: epoch, Size: 5000, Open: genOpener(1, 5000)})
	add(tree.Entry{Path: "empty", Type: tree.Regular, Mode: 0o400, MTime: epoch})
	add(tree.Entry{Path: "tmp", Type: tree.Dir, Mode: 0o777 | fs.ModeSticky, MTime: epoch + 1})
	add(tree.Entry{Path: "srv", Type: tree.Dir, Mode: 0o2750&0o777 | fs.ModeSetgid, UID: 33, GID: 33, MTime: epoch + 2, Xattrs: map[string][]byte{"user.dir": []byte("x")}})
	add(tree.Entry{Path: "dev/null", Type: tree.CharDev, Mode: 0o666, Major: 1, Minor: 3, MTime: epoch})
	add(tree.Entry{Path: "dev/sda1", Type: tree.BlockDev, Mode: 0o660, GID: 6, Major: 8, Minor: 1, MTime: epoch})
	add(tree.Entry{Path: "dev/big", Type: tree.BlockDev, Mode: 0o660, Major: 259, Minor: 70000, MTime: epoch})
	add(tree.Entry{Path: "run/fifo", Type: tree.FIFO, Mode: 0o620, MTime: epoch})
	add(tree.Entry{Path: "run/sock", Type: tree.Socket, Mode: 0o755, MTime: epoch})
	add(tree.Entry{Path: "lib/link", Type: tree.Symlink, Mode: 0o777, Target: "../usr/share/a", MTime: epoch})
	add(tree.Entry{Path: "lib/xlink", Type: tree.Symlink, Mode: 0o777, Target: strings.Repeat("x", 300), MTime: epoch, Xattrs: map[string][]byte{"trusted.t": []byte("1")}})
	add(tree.Entry{Path: "tail", Type: tree.Regular, Mode: 0o644, MTime: epoch, Size: 3*128<<10 + 77, Open: genOpener(3, 3*128<<10+77)})
	add(tree.Entry{Path: "exact", Type: tree.Regular, Mode: 0o644, MTime: epoch, Size: 2 * 128 << 10, Open: genOpener(4, 2*128<<10)})
	return tr
}

func deep(t testing.TB) *tree.Tree {
	tr := tree.New(epoch)
	p := ""
	for i := range 100 {
		p += fmt.Sprintf("d%02d/", i)
		must(t, tr.AddBytes(p+"f", 0o644, []byte(p)))
	}
	return tr
}

func oneFile(t testing.TB) *tree.Tree {
	tr := tree.New(epoch)
	must(t, tr.AddBytes("hello.txt", 0o644, []byte("hello, world\n")))
	return tr
}

func TestWriteMatchesUnsquashfs(t *testing.T) {
	for _, tc := range []struct {
		name string
		tree func(testing.TB) *tree.Tree
		opt  Options
	}{
		{"empty", func(testing.TB) *tree.Tree { return tree.New(epoch) }, Options{}},
		{"one-file", oneFile, Options{}},
		{"deep", deep, Options{}},
		{"every-type-zstd", everyType, Options{}},
		{"every-type-gzip", everyType, Options{Compression: compress.Gzip}},
		{"every-type-xz", everyType, Options{Compression: compress.XZ}},
		{"every-type-none", everyType, Options{Compression: compress.None}},
		{"every-type-4k", everyType, Options{BlockSize: 4096}},
		{"every-type-1m", everyType, Options{BlockSize: 1 << 20, ExportTable: true}},
		{"every-type-export", everyType, Options{ExportTable: true, Compression: compress.Gzip}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := tc.tree(t)
			checkImage(t, tr, writeImage(t, tr, tc.opt), true)
		})
	}
}

func TestDuplicatesStoredOnce(t *testing.T) {
	tr := everyType(t)
	img := filepath.Join(t.TempDir(), "img")
	st, err := WriteFile(img, tr, Options{})
	must(t, err)
	if st.Duplicates != 2 {
		t.Errorf("Duplicates = %d, want 2 (usr/share/b, usr/share/small-dup)", st.Duplicates)
	}
	if st.Inodes != tr.Len()-2 {
		t.Errorf("Inodes = %d, want %d (two hard links share bin/ping's)", st.Inodes, tr.Len()-2)
	}
}

func TestManyFilesInOneDir(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 files")
	}
	tr := tree.New(epoch)
	for i := range 100000 {
		must(t, tr.Add(tree.Entry{Path: fmt.Sprintf("d/file-%06d", i), Type: tree.Regular, Mode: 0o644,
			UID: uint32(i % 7), MTime: epoch + int64(i), Size: int64(i % 50), Open: tree.BytesOpener([]byte(strings.Repeat("z", i%50)))}))
	}
	img := writeImage(t, tr, Options{})
	checkImage(t, tr, img, false)
}

// zeroRuns is a 5 GiB file of zeros with a few 1 KiB data islands.
type zeroRuns struct{ off, size int64 }

func (z *zeroRuns) Read(p []byte) (int, error) {
	if z.off >= z.size {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), z.size-z.off)]
	clear(p)
	for _, at := range []int64{0, 1 << 30, 4<<30 + 12345, z.size - 1000} {
		for i := max(at, z.off); i < at+1000 && i < z.off+int64(len(p)); i++ {
			p[i-z.off] = byte(i*7 + 1)
		}
	}
	z.off += int64(len(p))
	return len(p), nil
}

func TestSparseHugeFile(t *testing.T) {
	if testing.Short() {
		t.Skip("5 GiB of generated content")
	}
	const size = 5<<30 + 4321
	tr := tree.New(epoch)
	must(t, tr.Add(tree.Entry{Path: "huge", Type: tree.Regular, Mode: 0o644, MTime: epoch, Size: size,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(&zeroRuns{size: size}), nil }}))
	must(t, tr.AddBytes("after", 0o644, []byte("after the huge file")))
	img := filepath.Join(t.TempDir(), "img")
	st, err := WriteFile(img, tr, Options{})
	must(t, err)
	if st.Size > 1<<20 {
		t.Errorf("image is %d bytes: sparse blocks not used", st.Size)
	}
	if want := size/(128<<10) - 3; st.SparseBlocks != want { // three islands in full blocks, one in the tail
		t.Errorf("SparseBlocks = %d, want %d", st.SparseBlocks, want)
	}
	checkImage(t, tr, img, true)
}

func shuffledTree(t testing.TB, seed uint64) *tree.Tree {
	type ent struct {
		p    string
		size int64
	}
	var ents []ent
	for i := range 300 {
		ents = append(ents, ent{fmt.Sprintf("d%d/e%d/f%03d", i%5, i%3, i), int64(i * 997 % 400000)})
	}
	rand.New(rand.NewPCG(seed, 2)).Shuffle(len(ents), func(i, j int) { ents[i], ents[j] = ents[j], ents[i] })
	tr := tree.New(epoch)
	for i, e := range ents {
		_ = i
		must(t, tr.Add(tree.Entry{Path: e.p, Type: tree.Regular, Mode: 0o644, MTime: epoch, Size: e.size, Open: genOpener(uint64(e.size%9), e.size)}))
	}
	return tr
}

func TestReproducible(t *testing.T) {
	var sums []string
	for i, opt := range []Options{{Workers: 1}, {Workers: 2}, {Workers: 7}} {
		img := writeImage(t, shuffledTree(t, uint64(i)), opt)
		b, err := os.ReadFile(img)
		must(t, err)
		sums = append(sums, fmt.Sprintf("%x", sha256.Sum256(b)))
	}
	for i, s := range sums[1:] {
		if s != sums[0] {
			t.Errorf("image %d: sha256 %s, want %s", i+1, s, sums[0])
		}
	}
}

type badReader struct{ n int }

func (b *badReader) Read(p []byte) (int, error) {
	if b.n == 0 {
		return 0, io.EOF
	}
	n := min(len(p), b.n)
	b.n -= n
	return n, nil
}

func TestBadInput(t *testing.T) {
	sized := func(size int64, real int) *tree.Tree {
		tr := tree.New(epoch)
		must(t, tr.Add(tree.Entry{Path: "etc/f", Type: tree.Regular, Mode: 0o644, Size: size,
			Open: func() (io.ReadCloser, error) { return io.NopCloser(&badReader{real}), nil }}))
		return tr
	}
	for _, tc := range []struct {
		name string
		tree func() *tree.Tree
		opt  Options
		want string
	}{
		{"short", func() *tree.Tree { return sized(1000, 999) }, Options{}, "etc/f: content is 999 bytes, want size 1000"},
		{"long", func() *tree.Tree { return sized(1000, 1001) }, Options{}, "etc/f: content is longer than size 1000"},
		{"short-big", func() *tree.Tree { return sized(1<<20, 300000) }, Options{}, "etc/f: content is 300000 bytes, want size 1048576"},
		{"missing-link", func() *tree.Tree {
			tr := tree.New(epoch)
			must(t, tr.Add(tree.Entry{Path: "l", Type: tree.Regular, Link: "nowhere"}))
			return tr
		}, Options{}, `l: hard link to missing "nowhere"`},
		{"mtime", func() *tree.Tree {
			tr := tree.New(epoch)
			must(t, tr.Add(tree.Entry{Path: "old", Type: tree.FIFO, MTime: -1}))
			return tr
		}, Options{}, "old: mtime -1"},
		{"xattr-namespace", func() *tree.Tree {
			tr := tree.New(epoch)
			must(t, tr.Add(tree.Entry{Path: "x", Type: tree.FIFO, Xattrs: map[string][]byte{"system.posix_acl_access": nil}}))
			return tr
		}, Options{}, `x: xattr "system.posix_acl_access"`},
		{"block-size", func() *tree.Tree { return tree.New(epoch) }, Options{BlockSize: 3000}, "block size 3000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := WriteFile(filepath.Join(dir, "img"), tc.tree(), tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}
