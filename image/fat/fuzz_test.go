package fat

import (
	"io"
	"testing"

	"github.com/basaltos/basalt/image/tree"
)

// overlay reads base with patches laid over it, so that each fuzz input
// costs a few KiB, not a 34 MiB copy.
type overlay struct {
	base    []byte
	patches []patch
}

type patch struct {
	off  int64
	data []byte
}

func (o overlay) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= int64(len(o.base)) {
		return 0, io.EOF
	}
	n := copy(p, o.base[off:])
	for _, pt := range o.patches {
		lo, hi := max(off, pt.off), min(off+int64(n), pt.off+int64(len(pt.data)))
		if lo < hi {
			copy(p[lo-off:hi-off], pt.data[lo-pt.off:hi-pt.off])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (o overlay) WriteAt(p []byte, off int64) (int, error) {
	return copy(o.base[off:], p), nil
}

// FuzzOpen feeds the reader a valid small FAT32 whose boot sector, first
// FAT sector and root directory come from the fuzzer.
func FuzzOpen(f *testing.F) {
	const size = 34 * MiB
	tr := tree.New(epoch)
	tr.AddBytes("dir/a long file name.txt", 0o644, []byte("hello"))
	tr.AddBytes("dir/sub/X.BIN", 0o644, pseudo(1, 3000))
	tr.AddBytes("empty", 0o644, nil)
	base := overlay{base: make([]byte, size)}
	if err := Write(base, size, tr, Options{Label: "FUZZ", VolumeID: 1}); err != nil {
		f.Fatal(err)
	}
	g, err := newGeometry(size)
	if err != nil {
		f.Fatal(err)
	}
	regions := []int64{0, g.fatOffset(0), g.clusterOffset(g.rootClus)}
	seed := make([]byte, 0, 3*512)
	for _, off := range regions {
		seed = append(seed, base.base[off:off+512]...)
	}
	f.Add(seed)
	loop := append([]byte(nil), seed...)
	copy(loop[512+8:], []byte{2, 0, 0, 0}) // root chain points to itself
	f.Add(loop)
	f.Add(seed[:600])
	f.Fuzz(func(t *testing.T, in []byte) {
		o := overlay{base: base.base}
		for i, off := range regions {
			if len(in) > i*512 {
				o.patches = append(o.patches, patch{off, in[i*512 : min(len(in), (i+1)*512)]})
			}
		}
		fsys, err := Open(o, 0, size)
		if err != nil {
			return
		}
		var walk func(dir string, depth int)
		walk = func(dir string, depth int) {
			ents, err := fsys.ReadDir(dir)
			if err != nil || depth > 3 {
				return
			}
			for i, e := range ents {
				if i > 64 {
					return
				}
				p := dir + "/" + e.Name
				if e.Dir {
					walk(p, depth+1)
				} else if e.Size < 1<<20 {
					fsys.ReadFile(p)
				}
			}
		}
		walk("", 0)
	})
}
