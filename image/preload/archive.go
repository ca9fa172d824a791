package preload

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// MaxZstdWindow is the largest zstd window k3s' importer decodes (its
// decoder's memory cap): a .tar.zst made with a larger --long fails on the
// device, so the builder refuses it.
const MaxZstdWindow = 32 << 20

// Extensions k3s imports from its images directory, as archives.
var archiveExts = []string{".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst"}

// CheckArchive checks a local image tarball before it is placed: a name
// k3s imports, a docker-archive (manifest.json) or OCI layout (index.json
// and oci-layout) inside, and for zstd a window k3s can decode.
func CheckArchive(path string) error {
	if archiveExt(path) == "" {
		return fmt.Errorf("%s: k3s imports %s archives; rename it or convert it", path, strings.Join(archiveExts, ", "))
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, done, err := decompress(f, path)
	if err != nil {
		return err
	}
	defer done()
	tr := tar.NewReader(r)
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: not a tar archive: %w", path, err)
		}
		seen[strings.TrimPrefix(h.Name, "./")] = true
		if seen["manifest.json"] || seen["index.json"] && seen["oci-layout"] {
			return nil
		}
	}
	return fmt.Errorf("%s: neither a docker-archive (no manifest.json) nor an OCI image layout (no index.json and oci-layout)", path)
}

// decompress reads an archive as k3s' importer does by the extension of
// its name: gzip, zstd (window at most MaxZstdWindow, checked first, with
// a message that says how to fix it) or plain tar.
func decompress(f *os.File, name string) (io.Reader, func(), error) {
	path := f.Name()
	switch ext := archiveExt(name); ext {
	case ".tar.gz", ".tgz":
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		return zr, func() { zr.Close() }, nil
	case ".tar.zst", ".tzst":
		var hdr [18]byte
		n, _ := io.ReadFull(f, hdr[:])
		w, err := ZstdWindow(hdr[:n])
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		if w > uint64(MaxZstdWindow) {
			return nil, nil, fmt.Errorf("%s: zstd window %d MiB, k3s decodes at most %d MiB: recompress with --long=25 or less", path, w>>20, MaxZstdWindow>>20)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, nil, err
		}
		zr, err := zstd.NewReader(f, zstd.WithDecoderMaxWindow(MaxZstdWindow), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	}
	return f, func() {}, nil
}

// archiveExt is the longest of archiveExts path ends in ("" for none).
func archiveExt(path string) string {
	ext := ""
	for _, e := range archiveExts {
		if strings.HasSuffix(path, e) && len(e) > len(ext) {
			ext = e
		}
	}
	return ext
}

// ZstdWindow returns the window size a zstd frame header declares (RFC
// 8878 3.1.1.1.2; a single-segment frame's window is its content size).
func ZstdWindow(h []byte) (uint64, error) {
	if len(h) < 6 || h[0] != 0x28 || h[1] != 0xb5 || h[2] != 0x2f || h[3] != 0xfd {
		return 0, errors.New("not zstd data")
	}
	fhd := h[4]
	if fhd&0x20 == 0 { // window descriptor follows
		wd := h[5]
		exp, mant := uint64(wd>>3), uint64(wd&7)
		base := uint64(1) << (10 + exp)
		return base + base/8*mant, nil
	}
	// Single segment: the frame content size, after the dictionary id.
	off := 5 + [4]int{0, 1, 2, 4}[fhd&3]
	size := [4]int{1, 2, 4, 8}[fhd>>6]
	if len(h) < off+size {
		return 0, errors.New("short zstd header")
	}
	var v uint64
	for i := size - 1; i >= 0; i-- {
		v = v<<8 | uint64(h[off+i])
	}
	if size == 2 {
		v += 256
	}
	return v, nil
}
