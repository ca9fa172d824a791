// Package initramfs writes a tree.Tree as the initramfs the Linux kernel
// unpacks at boot: a newc ("070701") cpio archive, optionally compressed.
//
// The archive is reproducible: entries come in tree.Sorted order, inode
// numbers are assigned in that order from 1, and mode, uid, gid and mtime are
// the entries' own. Hard links follow GNU cpio's newc convention, which the
// kernel's unpacker (init/initramfs.c maybe_link) also reads: every member
// of a link group has the same inode number and the group's nlink, and only
// the last one carries the data; all show the linked-to entry's mode, owner
// and mtime, as they are one inode. Directories count 2 + subdirectories
// links.
//
// Zstd is the default compression: Debian 12's 6.1 kernels set
// CONFIG_RD_ZSTD=y (checked in /boot/config-6.1.0-56-cloud-amd64 of
// linux-image-6.1.0-56-cloud-amd64 6.1.192-2, next to CONFIG_RD_GZIP=y).
package initramfs

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"math"

	"github.com/basaltos/basalt/image/compress"
	"github.com/basaltos/basalt/image/tree"
	"github.com/klauspost/compress/zstd"
)

// Write writes t to w as a newc cpio archive compressed with c (zstd,
// gzip or none: the kernel's xz needs options we do not write).
func Write(w io.Writer, t *tree.Tree, c compress.Compression) error {
	switch c {
	case compress.None:
		bw := bufio.NewWriterSize(w, 1<<20)
		if err := writeCpio(bw, t); err != nil {
			return err
		}
		return bw.Flush()
	case compress.Gzip:
		zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
		if err != nil {
			return err
		}
		if err := writeCpio(zw, t); err != nil {
			return err
		}
		return zw.Close()
	case compress.Zstd:
		// One goroutine keeps the output independent of scheduling; the
		// 8 MiB window is far below the kernel unzstd limit (128 MiB).
		zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedBetterCompression),
			zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(8<<20))
		if err != nil {
			return err
		}
		if err := writeCpio(zw, t); err != nil {
			zw.Close()
			return err
		}
		return zw.Close()
	}
	return fmt.Errorf("initramfs: compression %v not supported: want zstd, gzip or none", c)
}

// Unix file type bits of a newc mode.
const (
	sIFSOCK = 0o140000
	sIFLNK  = 0o120000
	sIFREG  = 0o100000
	sIFBLK  = 0o060000
	sIFDIR  = 0o040000
	sIFCHR  = 0o020000
	sIFIFO  = 0o010000
)

var typeBits = map[tree.Type]uint32{
	tree.Regular: sIFREG, tree.Dir: sIFDIR, tree.Symlink: sIFLNK, tree.CharDev: sIFCHR,
	tree.BlockDev: sIFBLK, tree.FIFO: sIFIFO, tree.Socket: sIFSOCK,
}

// header is one newc header's numeric fields, in on-disk order.
type header struct {
	ino, mode, uid, gid, nlink, mtime, size, rmajor, rminor uint32
}

func writeCpio(w io.Writer, t *tree.Tree) error {
	if err := t.Check(); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	entries := t.Sorted()
	// Link groups keyed by the path holding the content; subdirectory counts.
	group := map[string][]*tree.Entry{}
	subdirs := map[string]uint32{}
	for _, e := range entries {
		switch {
		case e.Type == tree.Regular && e.Link != "":
			group[e.Link] = append(group[e.Link], e)
		case e.Type == tree.Regular:
			group[e.Path] = append(group[e.Path], e)
		case e.Type == tree.Dir && e.Path != "":
			subdirs[tree.Parent(e.Path)]++
		}
	}
	groupIno := map[string]uint32{}
	written := map[string]int{}
	ino := uint32(0)
	for _, e := range entries {
		if len(e.Xattrs) > 0 {
			return fmt.Errorf("initramfs: %s: newc cpio cannot hold extended attributes", pathName(e))
		}
		if e.MTime < 0 || e.MTime > math.MaxUint32 {
			return fmt.Errorf("initramfs: %s: mtime %d does not fit newc's 32 bits", pathName(e), e.MTime)
		}
		meta := e
		if e.Type == tree.Regular && e.Link != "" {
			meta = t.Get(e.Link) // one inode: the link shows its target's metadata
		}
		h := header{mode: typeBits[e.Type] | tree.UnixPerm(meta.Mode), uid: meta.UID, gid: meta.GID, nlink: 1, mtime: uint32(meta.MTime)}
		var body func(io.Writer) error
		switch e.Type {
		case tree.Dir:
			h.nlink = 2 + subdirs[e.Path]
		case tree.Symlink:
			h.size = uint32(len(e.Target))
			body = func(w io.Writer) error { _, err := io.WriteString(w, e.Target); return err }
		case tree.CharDev, tree.BlockDev:
			h.rmajor, h.rminor = e.Major, e.Minor
		case tree.Regular:
			key := e.Path
			if e.Link != "" {
				key = e.Link
			}
			members := group[key]
			h.nlink = uint32(len(members))
			written[key]++
			if written[key] == len(members) { // last of the group: carries the data
				src := t.Get(key)
				if src.Size > math.MaxUint32 {
					return fmt.Errorf("initramfs: %s: %d bytes, newc holds at most 4 GiB - 1", pathName(e), src.Size)
				}
				h.size = uint32(src.Size)
				body = func(w io.Writer) error { return copyContent(w, src) }
			}
			if i, ok := groupIno[key]; ok {
				h.ino = i
			}
		}
		if h.ino == 0 {
			ino++
			h.ino = ino
			if e.Type == tree.Regular {
				if e.Link != "" {
					groupIno[e.Link] = ino
				} else {
					groupIno[e.Path] = ino
				}
			}
		}
		if err := writeRecord(w, pathName(e), h, body); err != nil {
			return fmt.Errorf("initramfs: %s: %w", pathName(e), err)
		}
	}
	if err := writeRecord(w, "TRAILER!!!", header{nlink: 1}, nil); err != nil {
		return fmt.Errorf("initramfs: trailer: %w", err)
	}
	return nil
}

// pathName is the member name of e: "." for the root, else its tree path.
func pathName(e *tree.Entry) string {
	if e.Path == "" {
		return "."
	}
	return e.Path
}

var zeros [4]byte

// writeRecord writes a header, the NUL-terminated name and the body, each
// padded to 4 bytes as newc requires.
func writeRecord(w io.Writer, name string, h header, body func(io.Writer) error) error {
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		h.ino, h.mode, h.uid, h.gid, h.nlink, h.mtime, h.size, 0, 0, h.rmajor, h.rminor, len(name)+1, 0)
	n := len(hdr) + len(name) + 1
	if _, err := io.WriteString(w, hdr+name+"\x00"); err != nil {
		return err
	}
	if _, err := w.Write(zeros[:(4-n%4)%4]); err != nil {
		return err
	}
	if body == nil {
		return nil
	}
	if err := body(w); err != nil {
		return err
	}
	_, err := w.Write(zeros[:(4-h.size%4)%4])
	return err
}

// copyContent copies exactly e.Size bytes of e's content.
func copyContent(w io.Writer, e *tree.Entry) error {
	if e.Size == 0 {
		return nil
	}
	r, err := e.Open()
	if err != nil {
		return fmt.Errorf("open content of %s: %w", e.Path, err)
	}
	defer r.Close()
	n, err := io.Copy(w, io.LimitReader(r, e.Size))
	if err != nil {
		return fmt.Errorf("read content of %s: %w", e.Path, err)
	}
	if n != e.Size {
		return fmt.Errorf("content of %s: %d bytes, entry says %d", e.Path, n, e.Size)
	}
	var one [1]byte
	if m, _ := r.Read(one[:]); m > 0 {
		return fmt.Errorf("content of %s: longer than the %d bytes the entry says", e.Path, e.Size)
	}
	return nil
}
