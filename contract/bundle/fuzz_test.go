package bundle

import (
	"bytes"
	"crypto/ed25519"
	"io"
	"testing"
)

// limitedReader fails the test when more than limit bytes are asked for
// before Open returns: a reader must not read payload bytes (or buffer more
// than the manifest's cap) before the signature check.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += n
	return n, err
}

// FuzzOpen feeds arbitrary bytes to the reader: no panic, bounded reads
// before the signature check, and payload bytes only from bundles whose
// signature verified (any bytes the fuzzer makes verify only by signing,
// which it cannot: so only the seeds reach the payloads).
func FuzzOpen(f *testing.F) {
	k := testKey(1)
	good := makeBundle(f, testManifest(), k)
	f.Add(good)
	f.Add(makeBundle(f, testManifest(), nil))
	f.Add(good[:700])
	f.Add([]byte{})
	pub := []ed25519.PublicKey{k.Public().(ed25519.PublicKey)}
	f.Fuzz(func(t *testing.T, b []byte) {
		cr := &countingReader{r: bytes.NewReader(b)}
		r, err := Open(cr, pub)
		// Two tar headers and blocks, PAX records, the manifest cap and the signature.
		if cr.n > MaxManifest+64<<10 {
			t.Fatalf("read %d bytes before the signature check", cr.n)
		}
		if err != nil {
			return
		}
		total := int64(0)
		for {
			p, pr, err := r.Next()
			if err != nil {
				return
			}
			n, err := io.Copy(io.Discard, pr)
			total += n
			if total > int64(len(b)) {
				t.Fatalf("payload %s: read %d bytes from a %d-byte bundle", p.Name, total, len(b))
			}
			if err != nil {
				return
			}
		}
	})
}
