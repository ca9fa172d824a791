package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/image/cache"
	"github.com/basaltos/basalt/image/disk"
)

// zeros feeds holes to hashes; never written.
var zeros = make([]byte, disk.Align)

// hashRange writes bytes [off, end) of f to h: data extents (ext, from
// disk.DataExtents) are read with buf, holes are fed from zeros without reading.
// It stops when ctx is done (checked once per chunk: an image is GiBs).
func hashRange(ctx context.Context, h hash.Hash, f *os.File, ext []disk.Extent, off, end int64, buf []byte) error {
	// The first extent that ends after off.
	i := sort.Search(len(ext), func(i int) bool { return ext[i].End > off })
	for off < end {
		if err := ctx.Err(); err != nil {
			return err
		}
		if i < len(ext) && ext[i].Start <= off {
			n := min(int64(len(buf)), ext[i].End-off, end-off)
			if _, err := f.ReadAt(buf[:n], off); err != nil {
				return fmt.Errorf("%s: read at %d: %w", f.Name(), off, err)
			}
			h.Write(buf[:n])
			off += n
			if off == ext[i].End {
				i++
			}
			continue
		}
		hole := end
		if i < len(ext) {
			hole = min(hole, ext[i].Start)
		}
		n := min(int64(len(zeros)), hole-off)
		h.Write(zeros[:n])
		off += n
	}
	return nil
}

// hashImage returns the sha256 of every partition and of the whole image.
func hashImage(ctx context.Context, path string, l disk.Layout, rootContent int64) ([]PartInfo, FileInfo, error) {
	parts := make([]PartInfo, len(l.Partitions))
	for i, p := range l.Partitions {
		parts[i] = PartInfo{Number: i + 1, Name: p.Name, Type: p.Type, GUID: p.GUID, Start: p.Start, Size: p.Size}
		if p.Name == contract.PartRootA {
			parts[i].Content = rootContent
		}
	}
	img, err := hashParts(ctx, path, parts)
	return parts, img, err
}

// hashParts sets the SHA256 of parts (byte ranges of the image at path) and
// returns the whole image's size and sha256. Holes are hashed as zeros
// without being read; the whole-image hash and each partition's run
// concurrently.
func hashParts(ctx context.Context, path string, parts []PartInfo) (FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileInfo{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return FileInfo{}, err
	}
	ext, err := disk.DataExtents(f, fi.Size())
	if err != nil {
		return FileInfo{}, err
	}
	sums := make([]string, len(parts)+1) // partitions, then the image
	errs := make([]error, len(sums))
	var wg sync.WaitGroup
	for i := range sums {
		off, size := int64(0), fi.Size()
		if i < len(parts) {
			off, size = parts[i].Start, parts[i].Size
		}
		wg.Go(func() {
			h := sha256.New()
			errs[i] = hashRange(ctx, h, f, ext, off, off+size, make([]byte, disk.Align))
			sums[i] = hex.EncodeToString(h.Sum(nil))
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return FileInfo{}, err // not once per partition
	}
	if err := errors.Join(errs...); err != nil {
		return FileInfo{}, err
	}
	for i := range parts {
		parts[i].SHA256 = sums[i]
	}
	return FileInfo{Size: fi.Size(), SHA256: sums[len(parts)]}, nil
}

// ManifestPath is the manifest next to a raw image NAME.img:
// NAME.manifest.json.
func ManifestPath(img string) string {
	return strings.TrimSuffix(img, filepath.Ext(img)) + ".manifest.json"
}

// Rehash updates the sha256 of the image and of its partitions in the
// manifest next to the raw image img, after a change such as a drop-in
// written by `basalt config add`. It reports false when img has no
// manifest (a card's device node, a renamed file).
func Rehash(ctx context.Context, img string) (bool, error) {
	mp := ManifestPath(img)
	data, err := os.ReadFile(mp)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return false, fmt.Errorf("%s: %w", mp, err)
	}
	if m.Image.File != filepath.Base(img) || m.Image.Format != Raw {
		return false, nil // the manifest is another file's
	}
	fi, err := hashParts(ctx, img, m.Partitions)
	if err != nil {
		return false, err
	}
	m.Image.Size, m.Image.SHA256 = fi.Size, fi.SHA256
	return true, writeManifest(mp, m)
}

// writeManifest writes m as indented JSON to path.
func writeManifest(path string, m Manifest) error {
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(mj, '\n'), 0o644)
}

// fileSHA returns the sha256 (hex) of a host file.
func fileSHA(path string) (string, error) { return cache.FileSHA(path) }
