package cli

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	dsquashfs "github.com/diskfs/go-diskfs/filesystem/squashfs"

	"github.com/basaltos/basalt/image/compress"
	"github.com/basaltos/basalt/image/squashfs"
	"github.com/basaltos/basalt/image/tree"
)

// TestSquashfsMode: `inspect --ls` shows /tmp's sticky bit and a setuid
// file's bit, which go-diskfs' Mode() drops.
func TestSquashfsMode(t *testing.T) {
	tr := tree.New(0)
	tr.Mkdir("tmp", 0o777|fs.ModeSticky)
	tr.AddBytes("bin/su", 0o755|fs.ModeSetuid, []byte("x"))
	p := filepath.Join(t.TempDir(), "root.squashfs")
	if _, err := squashfs.WriteFile(p, tr, squashfs.Options{Compression: compress.Gzip}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	sfs, err := dsquashfs.Read(file.New(f, true), st.Size(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]string{"tmp": "dtrwxrwxrwx", "su": "urwxr-xr-x"} {
		parent := "."
		if dir == "su" {
			parent = "bin"
		}
		ents, err := sfs.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range ents {
			if e.Name() != dir {
				continue
			}
			found = true
			fi, _ := e.Info()
			if got := squashfsMode(fi).String(); got != want {
				t.Errorf("%s: mode %s, want %s", dir, got, want)
			}
		}
		if !found {
			t.Errorf("%s not listed in %s", dir, parent)
		}
	}
}
