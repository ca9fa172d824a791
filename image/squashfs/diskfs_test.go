package squashfs

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	dsquash "github.com/diskfs/go-diskfs/filesystem/squashfs"
	"github.com/google/go-cmp/cmp"

	"github.com/basaltos/basalt/image/compress"
	"github.com/basaltos/basalt/image/tree"
)

// TestDiskfsReadsImage checks that go-diskfs's squashfs reader (what
// `basalt inspect` can use) lists our images and reads their content.
func TestDiskfsReadsImage(t *testing.T) {
	for _, c := range []compress.Compression{compress.Zstd, compress.Gzip, compress.XZ} {
		t.Run(c.String(), func(t *testing.T) {
			tr := everyType(t)
			img := writeImage(t, tr, Options{Compression: c})
			f, err := os.Open(img)
			must(t, err)
			defer f.Close()
			fi, err := f.Stat()
			must(t, err)
			fsys, err := dsquash.Read(file.New(f, true), fi.Size(), 0, 0)
			must(t, err)
			want, got := map[string]string{}, map[string]string{}
			for _, e := range tr.Sorted()[1:] {
				want[e.Path] = e.Type.String()
				if e.Type == tree.Regular {
					target := e
					if e.Link != "" {
						target = tr.Get(e.Link)
					}
					want[e.Path] = entrySum(t, target)
				}
			}
			var walk func(dir string)
			walk = func(dir string) {
				ents, err := fsys.ReadDir(dir)
				must(t, err)
				for _, de := range ents {
					p := path.Join(dir, de.Name()) // io/fs paths: "." is the root
					info, err := de.Info()
					if err != nil {
						got[p] = "Info: " + err.Error()
						continue
					}
					switch m := info.Mode(); {
					case m.IsDir():
						got[p] = "dir"
						walk(p)
					case m.IsRegular():
						r, err := fsys.OpenFile(p, os.O_RDONLY)
						must(t, err)
						h := sha256.New()
						_, err = io.Copy(h, r)
						must(t, err)
						got[p] = fmt.Sprintf("%x", h.Sum(nil))
					default:
						got[p] = typeOf(m)
					}
				}
			}
			walk(".")
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("go-diskfs read (-want +got):\n%s", d)
			}
		})
	}
}

func typeOf(m os.FileMode) string {
	switch {
	case m&os.ModeSymlink != 0:
		return "symlink"
	case m&os.ModeCharDevice != 0:
		return "chardev"
	case m&os.ModeDevice != 0:
		return "blockdev"
	case m&os.ModeNamedPipe != 0:
		return "fifo"
	case m&os.ModeSocket != 0:
		return "socket"
	}
	return m.String()
}
