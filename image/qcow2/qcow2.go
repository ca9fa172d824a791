// Package qcow2 converts a raw disk image to qcow2 (version 3, 64 KiB
// clusters, 16-bit refcounts, no compression, no backing file) in pure Go.
//
// Only guest clusters holding a non-zero byte are allocated; holes of a
// sparse input are skipped without being read (SEEK_DATA/SEEK_HOLE). The
// output is a function of the input bytes alone: data clusters in guest
// order right after the header, then the L2 tables, the L1 table, and the
// refcount blocks and table; the header is written last.
package qcow2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

const (
	clusterBits = 16
	clusterSize = 1 << clusterBits
	l2Entries   = clusterSize / 8
	// refcountOrder 4: 16-bit refcounts, 32768 per refcount block.
	refcountOrder    = 4
	refcountsPerBlk  = clusterSize * 8 / (1 << refcountOrder)
	headerLength     = 104
	oflagCopied      = 1 << 63 // refcount is exactly one
	maxVirtualSize   = 1 << 50
	readChunkCluster = 32 // clusters read at a time (2 MiB)
)

// Convert writes the qcow2 image of the raw image at src to dst (temporary
// file in dst's directory, renamed at the end; removed on error).
func Convert(dst, src string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("qcow2: %w", err)
	}
	defer in.Close()
	out, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return fmt.Errorf("qcow2: %w", err)
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(out.Name())
		}
	}()
	if err := write(out, in); err != nil {
		return fmt.Errorf("qcow2: %s -> %s: %w", src, dst, err)
	}
	if err := out.Chmod(0o644); err != nil {
		return fmt.Errorf("qcow2: %w", err)
	}
	if err := out.Sync(); err != nil {
		return fmt.Errorf("qcow2: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("qcow2: %w", err)
	}
	if err := os.Rename(out.Name(), dst); err != nil {
		return fmt.Errorf("qcow2: %w", err)
	}
	return nil
}

// write converts in to qcow2 into out.
func write(out io.WriterAt, in *os.File) error {
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if size <= 0 || size > maxVirtualSize {
		return fmt.Errorf("raw image of %d bytes: size must be in (0, 1 PiB]", size)
	}
	guestClusters := (size + clusterSize - 1) / clusterSize
	l1Size := (guestClusters + l2Entries - 1) / l2Entries

	// Data clusters, in guest order, from host cluster 1 on.
	next := int64(clusterSize) // host offset of the next free cluster
	l2 := map[int64][]uint64{} // L1 index -> L2 table
	var l1Order []int64        // L1 indices in allocation order
	buf := make([]byte, readChunkCluster*clusterSize)
	zero := make([]byte, clusterSize)
	err = dataRanges(in, size, func(start, end int64) error {
		for off := start; off < end; off += int64(len(buf)) {
			n := min(int64(len(buf)), end-off)
			chunk := buf[:n]
			if _, err := in.ReadAt(chunk, off); err != nil && !(errors.Is(err, io.EOF) && off+n >= size) {
				return fmt.Errorf("read at %d: %w", off, err)
			}
			for c := int64(0); c < n; c += clusterSize {
				cl := chunk[c:min(c+clusterSize, n)]
				if bytes.Equal(cl, zero[:len(cl)]) {
					continue
				}
				if len(cl) < clusterSize { // the last, partial guest cluster
					cl = append(append([]byte(nil), cl...), zero[len(cl):]...)
				}
				if _, err := out.WriteAt(cl, next); err != nil {
					return err
				}
				g := (off + c) / clusterSize
				t, ok := l2[g/l2Entries]
				if !ok {
					t = make([]uint64, l2Entries)
					l2[g/l2Entries] = t
					l1Order = append(l1Order, g/l2Entries)
				}
				t[g%l2Entries] = uint64(next) | oflagCopied
				next += clusterSize
			}
		}
		return nil
	})
	if err != nil {
		return err
	}

	// L2 tables in L1 order, then the L1 table.
	l1 := make([]byte, roundUp(l1Size*8))
	for _, i := range l1Order {
		b := make([]byte, clusterSize)
		for k, e := range l2[i] {
			binary.BigEndian.PutUint64(b[8*k:], e)
		}
		if _, err := out.WriteAt(b, next); err != nil {
			return err
		}
		binary.BigEndian.PutUint64(l1[8*i:], uint64(next)|oflagCopied)
		next += clusterSize
	}
	l1Offset := next
	if _, err := out.WriteAt(l1, l1Offset); err != nil {
		return err
	}
	next += int64(len(l1))

	// Refcount blocks and table, which count themselves.
	used := next / clusterSize
	var blocks, tableClusters int64
	for {
		total := used + blocks + tableClusters
		b := (total + refcountsPerBlk - 1) / refcountsPerBlk
		tc := roundUp(b*8) / clusterSize
		if b == blocks && tc == tableClusters {
			break
		}
		blocks, tableClusters = b, tc
	}
	total := used + blocks + tableClusters
	refBlocks := make([]byte, blocks*clusterSize)
	for c := int64(0); c < total; c++ {
		binary.BigEndian.PutUint16(refBlocks[2*c:], 1)
	}
	refTable := make([]byte, tableClusters*clusterSize)
	for i := int64(0); i < blocks; i++ {
		binary.BigEndian.PutUint64(refTable[8*i:], uint64(next+i*clusterSize))
	}
	if _, err := out.WriteAt(refBlocks, next); err != nil {
		return err
	}
	refTableOffset := next + blocks*clusterSize
	if _, err := out.WriteAt(refTable, refTableOffset); err != nil {
		return err
	}

	h := make([]byte, clusterSize)
	copy(h, "QFI\xfb")
	be := binary.BigEndian
	be.PutUint32(h[4:], 3)
	be.PutUint32(h[20:], clusterBits)
	be.PutUint64(h[24:], uint64((size+511)/512*512)) // QEMU counts whole sectors
	be.PutUint32(h[36:], uint32(l1Size))
	be.PutUint64(h[40:], uint64(l1Offset))
	be.PutUint64(h[48:], uint64(refTableOffset))
	be.PutUint32(h[56:], uint32(tableClusters))
	be.PutUint32(h[96:], refcountOrder)
	be.PutUint32(h[100:], headerLength)
	// h[104:112] stays zero: the end-of-extensions marker.
	_, err = out.WriteAt(h, 0)
	return err
}

func roundUp(n int64) int64 { return (n + clusterSize - 1) / clusterSize * clusterSize }

// dataRanges calls fn for each data range of f, cluster-aligned, in order;
// where the filesystem cannot report holes the whole file is one range.
func dataRanges(f *os.File, size int64, fn func(start, end int64) error) error {
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		start, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return nil // only a hole is left
		}
		if err != nil {
			return fn(off, size)
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil {
			end = size
		}
		start = start / clusterSize * clusterSize
		end = min(roundUp(end), size)
		if start < off {
			start = off
		}
		if err := fn(start, end); err != nil {
			return err
		}
		off = end
	}
	return nil
}
