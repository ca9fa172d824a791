package bundle

import (
	"archive/tar"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Sign returns the signature of manifest bytes with k.
func Sign(manifest []byte, k ed25519.PrivateKey) []byte { return ed25519.Sign(k, manifest) }

// MarshalManifest returns the manifest bytes that get signed.
func MarshalManifest(m Manifest) ([]byte, error) {
	if err := m.Check(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Write writes a bundle: the manifest bytes, sig (nil: unsigned, for
// `basalt bundle sign` later), then each payload's bytes from open(name),
// checked against the manifest's size. Headers are fixed (mode 0644,
// owner 0, mtime = the manifest's epoch) so bundles are reproducible.
func Write(w io.Writer, manifest, sig []byte, open func(p Payload) (io.ReadCloser, error)) error {
	m, err := ParseManifest(manifest)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	mtime := time.Unix(m.Epoch, 0)
	hdr := func(name string, size int64) error {
		return tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: mtime, Format: tar.FormatPAX})
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{ManifestName, manifest}, {SigName, sig}} {
		if err := hdr(f.name, int64(len(f.b))); err != nil {
			return err
		}
		if _, err := tw.Write(f.b); err != nil {
			return err
		}
	}
	for _, p := range m.Payloads {
		if err := hdr(p.Name, p.Size); err != nil {
			return err
		}
		rc, err := open(p)
		if err != nil {
			return fmt.Errorf("payload %s: %w", p.Name, err)
		}
		n, err := io.Copy(tw, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("payload %s: %w", p.Name, err)
		}
		if n != p.Size {
			return fmt.Errorf("payload %s: %d bytes, the manifest says %d", p.Name, n, p.Size)
		}
	}
	return tw.Close()
}

// Resign copies the bundle in r to w with sig as its signature (the
// manifest and payloads unchanged, payload sizes checked by the tar reader).
func Resign(w io.Writer, r io.Reader, sig []byte) error {
	tr := tar.NewReader(r)
	raw, _, err := ReadHead(tr)
	if err != nil {
		return err
	}
	return Write(w, raw, sig, func(p Payload) (io.ReadCloser, error) {
		h, err := tr.Next()
		if err != nil {
			return nil, noEOF(err)
		}
		if h.Name != p.Name {
			return nil, fmt.Errorf("member %q where payload %s belongs", h.Name, p.Name)
		}
		return io.NopCloser(tr), nil
	})
}
