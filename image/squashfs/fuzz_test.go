package squashfs

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/basaltos/basalt/image/compress"
	"github.com/basaltos/basalt/image/tree"
)

// fuzzTree turns bytes into a tree: each 4-byte record adds one entry whose
// kind, parent, name, size and attributes come from the record.
func fuzzTree(data []byte) *tree.Tree {
	tr := tree.New(epoch)
	dirs := []string{""}
	var files []string
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+~=,@"
	for i := 0; i+4 <= len(data) && i < 4*200; i += 4 {
		op, a, b, c := data[i], data[i+1], data[i+2], data[i+3]
		name := string([]byte{alphabet[int(a)%len(alphabet)], alphabet[int(b)%len(alphabet)]})
		if c&1 == 1 {
			name += fmt.Sprint(c)
		}
		p := name
		if d := dirs[int(op>>3)%len(dirs)]; d != "" {
			p = d + "/" + name
		}
		if tr.Get(p) != nil {
			continue
		}
		e := tree.Entry{Path: p, Mode: fs.FileMode(uint32(b)<<4|uint32(c)) & tree.PermMask, UID: uint32(a % 5), GID: uint32(c % 3), MTime: epoch + int64(a)*1000}
		if c&2 != 0 {
			e.Mode |= fs.FileMode(c>>5) << 9 & (fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		}
		switch op & 7 {
		case 0, 1:
			e.Type = tree.Dir
		case 2, 3:
			e.Type, e.Size = tree.Regular, int64(b)*int64(c)
			if op&0x30 == 0x30 {
				e.Size *= 8 // up to 520 KB: several blocks
			}
			seed := uint64(a % 4) // few seeds: duplicates happen
			e.Open = genOpener(seed, e.Size)
			files = append(files, p)
		case 4:
			if len(files) == 0 {
				continue
			}
			e.Type, e.Link = tree.Regular, files[int(b)%len(files)]
		case 5:
			e.Type, e.Target = tree.Symlink, name+"/../"+name
		case 6:
			e.Type, e.Major, e.Minor = []tree.Type{tree.CharDev, tree.BlockDev}[c&1], uint32(a), uint32(b)
		case 7:
			e.Type = []tree.Type{tree.FIFO, tree.Socket}[c&1]
		}
		if a&0x40 != 0 {
			e.Xattrs = map[string][]byte{"user.k" + name: bytes.Repeat([]byte{b}, int(c))}
		}
		if tr.Add(e) != nil { // "." and ".." are not names
			continue
		}
		if e.Type == tree.Dir {
			dirs = append(dirs, p)
		}
	}
	return tr
}

func FuzzWrite(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 1, 2, 3, 2, 9, 9, 200, 10, 4, 4, 4, 5, 6, 7, 8})
	f.Add(bytes.Repeat([]byte{2, 7, 255, 255, 0, 3, 3, 3, 12, 200, 1, 1}, 40))
	f.Add(bytes.Repeat([]byte{1, 66, 2, 9, 14, 66, 3, 1, 22, 9, 9, 9, 7, 0, 0, 1}, 30))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr := fuzzTree(data)
		img := filepath.Join(t.TempDir(), "img")
		// Coverage instrumentation makes the codecs very slow; the layout
		// is what is fuzzed, so mostly store blocks uncompressed.
		opt := Options{BlockSize: 4096, Workers: 3, Compression: compress.None}
		if len(data)%4 == 1 {
			opt.Compression, opt.Level = compress.Gzip, 1
		}
		if _, err := WriteFile(img, tr, opt); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(img); err != nil {
			t.Fatal(err)
		}
		checkImage(t, tr, img, false)
	})
}
