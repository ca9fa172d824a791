package bundle

import (
	"archive/tar"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"unsafe"
)

// ReadHead reads the first two members of a bundle: the manifest bytes and
// the signature, without checking either (Open checks; `basalt bundle
// inspect` shows unsigned bundles too). At most MaxManifest bytes of
// manifest are read.
func ReadHead(tr *tar.Reader) (manifest, sig []byte, err error) {
	manifest, err = member(tr, ManifestName, MaxManifest)
	if err != nil {
		return nil, nil, err
	}
	sig, err = member(tr, SigName, ed25519.SignatureSize)
	return manifest, sig, err
}

func member(tr *tar.Reader, name string, limit int64) ([]byte, error) {
	h, err := tr.Next()
	if err != nil {
		return nil, fmt.Errorf("bundle: reading %s: %w", name, noEOF(err))
	}
	if h.Name != name || h.Typeflag != tar.TypeReg {
		return nil, fmt.Errorf("bundle: member %q where %s belongs (is this a basalt bundle?)", h.Name, name)
	}
	if h.Size > limit || h.Size < 0 {
		return nil, fmt.Errorf("bundle: %s is %d bytes, at most %d allowed", name, h.Size, limit)
	}
	b := make([]byte, h.Size)
	if _, err := io.ReadFull(tr, b); err != nil {
		return nil, fmt.Errorf("bundle: reading %s: %w", name, noEOF(err))
	}
	return b, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Verify checks sig over manifest with each key; it returns the index of
// the key that verified, or an error wrapping ErrSignature.
func Verify(manifest, sig []byte, keys []ed25519.PublicKey) (int, error) {
	if len(sig) == 0 {
		return -1, fmt.Errorf("bundle: %w: the bundle is not signed (basalt bundle sign)", ErrSignature)
	}
	if len(sig) != ed25519.SignatureSize {
		return -1, fmt.Errorf("bundle: %w: %s is %d bytes, want %d", ErrSignature, SigName, len(sig), ed25519.SignatureSize)
	}
	for i, k := range keys {
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, manifest, sig) {
			return i, nil
		}
	}
	return -1, fmt.Errorf("bundle: %w with any of the %d trusted keys (bad signature or unknown key)", ErrSignature, len(keys))
}

// Reader reads a verified bundle's payloads in order.
type Reader struct {
	tr   *tar.Reader
	m    Manifest
	raw  []byte
	next int
	cur  *payloadReader
}

// Open reads the manifest and its signature from r and verifies the
// signature with keys before it parses the manifest; no payload byte is
// read before that. The manifest is then checked strictly.
func Open(r io.Reader, keys []ed25519.PublicKey) (*Reader, error) {
	tr := tar.NewReader(r)
	raw, sig, err := ReadHead(tr)
	if err != nil {
		return nil, err
	}
	if _, err := Verify(raw, sig, keys); err != nil {
		return nil, err
	}
	m, err := ParseManifest(raw)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return &Reader{tr: tr, m: m, raw: raw}, nil
}

// Manifest returns the verified manifest.
func (r *Reader) Manifest() Manifest { return r.m }

// RawManifest returns the manifest's signed bytes.
func (r *Reader) RawManifest() []byte { return r.raw }

// ErrHash is returned at the end of a payload whose sha256 or size does
// not match the manifest.
var ErrHash = errors.New("payload does not match the signed manifest")

// Next returns the next payload and a reader of its bytes; io.EOF after
// the last. The payload reader returns an error wrapping ErrHash instead
// of its final io.EOF when the content's sha256 differs from the
// manifest's, so a consumer that reads to io.EOF has verified bytes.
// A previous payload not read to its end is read (and checked) first.
func (r *Reader) Next() (Payload, io.Reader, error) {
	if r.cur != nil {
		if _, err := io.Copy(io.Discard, r.cur); err != nil {
			return Payload{}, nil, err
		}
		r.cur = nil
	}
	if r.next >= len(r.m.Payloads) {
		return Payload{}, nil, io.EOF
	}
	p := r.m.Payloads[r.next]
	r.next++
	h, err := r.tr.Next()
	if err != nil {
		return p, nil, fmt.Errorf("bundle: payload %s: %w", p.Name, noEOF(err))
	}
	if h.Name != p.Name || h.Typeflag != tar.TypeReg {
		return p, nil, fmt.Errorf("bundle: member %q where payload %s belongs: %w", h.Name, p.Name, ErrHash)
	}
	if h.Size != p.Size {
		return p, nil, fmt.Errorf("bundle: payload %s is %d bytes, the manifest says %d: %w", p.Name, h.Size, p.Size, ErrHash)
	}
	r.cur = &payloadReader{r: r.tr, p: p, h: sha256.New()}
	return p, r.cur, nil
}

// payloadReader hashes what it returns while the caller goes on: each
// Read hands its bytes to a goroutine that hashes them and reads the next
// bytes from the tar meanwhile, so a consumer that writes what it read
// (the device's slot writer) reads, hashes and writes in parallel. The
// hashing of a Read's bytes is finished before the next Read returns, and
// before a Read whose buffer overlaps them reads into it; a caller must
// not change the bytes it got until its next Read (the io.Reader
// convention of the consumers here: they write them, or drop them).
type payloadReader struct {
	r       io.Reader
	p       Payload
	h       hash.Hash
	n       int64
	done    error
	pending []byte        // bytes being hashed
	hashed  chan struct{} // closed when pending is hashed
}

// wait waits for the pending bytes to be hashed.
func (pr *payloadReader) wait() {
	if pr.hashed != nil {
		<-pr.hashed
		pr.pending, pr.hashed = nil, nil
	}
}

func (pr *payloadReader) Read(b []byte) (int, error) {
	if pr.done != nil {
		return 0, pr.done
	}
	if overlaps(b, pr.pending) {
		pr.wait()
	}
	n, err := pr.r.Read(b)
	pr.wait()
	pr.n += int64(n)
	if n > 0 && err == nil {
		pr.pending, pr.hashed = b[:n], make(chan struct{})
		go func(b []byte, done chan struct{}) {
			pr.h.Write(b)
			close(done)
		}(pr.pending, pr.hashed)
		return n, nil
	}
	pr.h.Write(b[:n])
	if err == io.EOF {
		switch sum := hex.EncodeToString(pr.h.Sum(nil)); {
		case pr.n != pr.p.Size:
			err = fmt.Errorf("bundle: payload %s: %d bytes, want %d: %w", pr.p.Name, pr.n, pr.p.Size, ErrHash)
		case sum != pr.p.SHA256:
			err = fmt.Errorf("bundle: payload %s: sha256 %s, the manifest says %s: %w", pr.p.Name, sum, pr.p.SHA256, ErrHash)
		}
		pr.done = err
	} else if err != nil {
		err = fmt.Errorf("bundle: payload %s: %w", pr.p.Name, noEOF(err))
		pr.done = err
	}
	return n, err
}

// overlaps reports whether a and b share memory.
func overlaps(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	a0, b0 := uintptr(unsafe.Pointer(unsafe.SliceData(a))), uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return a0 < b0+uintptr(len(b)) && b0 < a0+uintptr(len(a))
}
