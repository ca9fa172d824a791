package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

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
	ext, err := dataExtents(f, size)
	if err != nil {
		t.Fatal(err)
	}
	if len(ext) == 0 || ext[0].start != 0 || ext[len(ext)-1].end != size {
		t.Errorf("extents %v: want data at 0 and at the end (%d)", ext, size)
	}
	t.Logf("data extents: %v", ext)
	all := []extent{{0, size}} // as when SEEK_DATA is not supported
	for _, r := range []extent{
		{0, size}, {0, 1}, {5000, 1 << 20}, {1 << 20, 2 << 20}, {2<<20 + 100, 2<<20 + 200},
		{2 << 20, 4 << 20}, {3 << 20, size}, {size - 1, size}, {17, 17},
	} {
		want := sha256.Sum256(content[r.start:r.end])
		for name, e := range map[string][]extent{"extents": ext, "all data": all} {
			h := sha256.New()
			if err := hashRange(context.Background(), h, f, e, r.start, r.end, make([]byte, 4096)); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want[:], h.Sum(nil)); diff != "" {
				t.Errorf("%s: range %v: sha256 (-want +got):\n%s", name, r, diff)
			}
		}
	}
}
