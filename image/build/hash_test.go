package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/basaltos/basalt/image/disk"

	"github.com/google/go-cmp/cmp"
)

// TestHashRange checks that hashing a sparse file through its data extents
// gives the sha256 of its bytes, for ranges starting and ending in holes, in
// data, and across both.
func TestHashRange(t *testing.T) {
	const size = 5<<20 + 1234
	content := make([]byte, size)
	path := filepath.Join(t.TempDir(), "sparse")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	// Data at the start, in the middle (not block aligned) and at the end.
	for _, d := range []struct {
		off int64
		n   int
	}{{0, 10000}, {2<<20 + 7, 300000}, {size - 5000, 5000}} {
		b := bytes.Repeat([]byte{byte(d.off%251 + 1), 0, 0x5a}, d.n/3+1)[:d.n]
		copy(content[d.off:], b)
		if _, err := f.WriteAt(b, d.off); err != nil {
			t.Fatal(err)
		}
	}
	ext, err := disk.DataExtents(f, size)
	if err != nil {
		t.Fatal(err)
	}
	if len(ext) == 0 || ext[0].Start != 0 || ext[len(ext)-1].End != size {
		t.Errorf("extents %v: want data at 0 and at the end (%d)", ext, size)
	}
	t.Logf("data extents: %v", ext)
	all := []disk.Extent{{Start: 0, End: size}} // as when SEEK_DATA is not supported
	for _, r := range []disk.Extent{
		{Start: 0, End: size}, {Start: 0, End: 1}, {Start: 5000, End: 1 << 20}, {Start: 1 << 20, End: 2 << 20}, {Start: 2<<20 + 100, End: 2<<20 + 200},
		{Start: 2 << 20, End: 4 << 20}, {Start: 3 << 20, End: size}, {Start: size - 1, End: size}, {Start: 17, End: 17},
	} {
		want := sha256.Sum256(content[r.Start:r.End])
		for name, e := range map[string][]disk.Extent{"extents": ext, "all data": all} {
			h := sha256.New()
			if err := hashRange(context.Background(), h, f, e, r.Start, r.End, make([]byte, 4096)); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want[:], h.Sum(nil)); diff != "" {
				t.Errorf("%s: range %v: sha256 (-want +got):\n%s", name, r, diff)
			}
		}
	}
}
