package update

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/basaltos/basalt/contract/ab"
	"github.com/basaltos/basalt/contract/bundle"
)

// FuzzApply feeds arbitrary bundle bytes to Apply on a fake device: it
// never panics, never writes a slot or the boot partition unless the
// bundle's head verified with the trusted key (no fuzzed input carries a
// valid signature: the seeds are a signed bundle with a byte changed, an
// unsigned one, and one signed by an unknown key), and arms slot b only
// for a bundle whose every payload matched.
func FuzzApply(f *testing.F) {
	good, _ := os.ReadFile(makeBundle(f, "1.1.0", nil, key))
	for _, at := range []int{0, 100, 600, 1100, len(good) / 2, len(good) - 1} {
		b := append([]byte(nil), good...)
		b[at] ^= 1
		f.Add(b)
	}
	unsigned, _ := os.ReadFile(makeBundle(f, "1.1.0", nil, nil))
	f.Add(unsigned)
	other, _ := os.ReadFile(makeBundle(f, "1.1.0", nil, ed25519.NewKeyFromSeed(make([]byte, 32))))
	f.Add(other)
	f.Fuzz(func(t *testing.T, b []byte) {
		d := newFake(t, ab.BLSName)
		before := d.snapshot(t)
		p := filepath.Join(t.TempDir(), "fuzz.bundle")
		os.WriteFile(p, b, 0o644)
		_, err := d.u.Apply(context.Background(), p, Options{})
		_, verr := bundle.Open(bytes.NewReader(b), d.u.d.Keys)
		if err == nil {
			// Only a bundle whose manifest the trusted key signed (a change
			// in the tar's padding, say) may be applied.
			if verr != nil {
				t.Fatalf("applied a bundle that does not verify: %v", verr)
			}
			return
		}
		if st := d.u.Status(); strings.Contains(st.AB, "trial") {
			t.Fatalf("slot armed after a failed apply: %+v", st)
		}
		if verr == nil {
			return // signed: slot b may hold a streamed rootfs, unarmed
		}
		after := d.snapshot(t)
		for k, v := range before {
			if after[k] != v {
				t.Fatalf("%s written before a signature check", k)
			}
		}
		if len(after) != len(before) {
			t.Fatalf("files %d -> %d", len(before), len(after))
		}
	})
}
