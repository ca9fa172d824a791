// Package squashfs writes a tree.Tree as a squashfs 4.0 image that the Linux
// kernel (6.1 and later) mounts and squashfs-tools reads.
//
// The writer is pure Go and reproducible: the same tree gives the same bytes
// whatever the insertion order, the time or the number of workers. Data
// blocks are compressed in parallel and streamed to the output; only the
// metadata tables (inodes, directories, ids, xattrs) are held in memory.
//
// Supported: regular files of any size (sparse blocks for zero runs, tail-end
// packing into fragments, identical content stored once), directories of any
// size (with a directory index), symlinks, hard links, devices, fifos,
// sockets, uid/gid, setuid/setgid/sticky, mtimes, xattrs in the user.,
// trusted. and security. namespaces, and an optional NFS export table.
package squashfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"github.com/basaltos/basalt/image/compress"
	"github.com/basaltos/basalt/image/tree"
)

// Options tune the image; the zero value gives zstd level 15, 128 KiB blocks,
// one worker per CPU and no export table.
type Options struct {
	// Compression is the codec of data and metadata blocks: zstd, gzip,
	// xz or none (every block stored uncompressed).
	Compression compress.Compression
	// Level is the compression level on the scale of the reference tools:
	// zstd 1-22 (default 15; mapped onto klauspost/compress's four encoder
	// levels with zstd.EncoderLevelFromZstd: 1-2 fastest, 3-5 default, 6-9
	// better, 10-22 best), gzip 1-9 (default 9). Ignored for xz and none.
	Level int
	// BlockSize is the data block size, a power of two from 4 KiB to 1 MiB
	// (default 128 KiB).
	BlockSize int
	// Workers is the number of data blocks compressed at once (default
	// GOMAXPROCS). The output does not depend on it.
	Workers int
	// ExportTable adds the inode lookup table that NFS export needs.
	ExportTable bool
}

// Stats describe a written image.
type Stats struct {
	Inodes       int   // distinct inodes (hard links share one)
	BytesUsed    int64 // superblock bytes_used: the image without padding
	Size         int64 // bytes written, padded to 4 KiB
	DataBytes    int64 // regular-file bytes read from the tree
	DataBlocks   int   // data blocks written (sparse blocks excluded)
	SparseBlocks int   // all-zero blocks stored as holes
	Fragments    int   // fragment blocks holding small files and tails
	Duplicates   int   // files whose content was already stored
}

const (
	defaultBlockSize = 128 << 10
	padTo            = 4096
)

func (o Options) withDefaults() (Options, error) {
	if o.BlockSize == 0 {
		o.BlockSize = defaultBlockSize
	}
	if o.BlockSize < 4096 || o.BlockSize > 1<<20 || o.BlockSize&(o.BlockSize-1) != 0 {
		return o, fmt.Errorf("squashfs: block size %d: want a power of two from 4096 to 1048576", o.BlockSize)
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	switch o.Compression {
	case compress.Zstd:
		if o.Level == 0 {
			o.Level = 15
		}
		if o.Level < 1 || o.Level > 22 {
			return o, fmt.Errorf("squashfs: zstd level %d: want 1-22", o.Level)
		}
	case compress.Gzip:
		if o.Level == 0 {
			o.Level = 9
		}
		if o.Level < 1 || o.Level > 9 {
			return o, fmt.Errorf("squashfs: gzip level %d: want 1-9", o.Level)
		}
	case compress.XZ, compress.None:
	default:
		return o, fmt.Errorf("squashfs: unknown compression %v", o.Compression)
	}
	return o, nil
}

// Write writes t as a squashfs image starting at offset 0 of w, which must
// be seekable because the superblock, written last, goes first. The image
// is padded to a multiple of 4 KiB; w is left positioned at its end. On
// error w holds garbage: use WriteFile for an all-or-nothing file.
func Write(w io.WriteSeeker, t *tree.Tree, opt Options) (Stats, error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return Stats{}, err
	}
	if err := t.Check(); err != nil {
		return Stats{}, fmt.Errorf("squashfs: %w", err)
	}
	if t.Epoch < 0 || t.Epoch > 1<<32-1 {
		return Stats{}, fmt.Errorf("squashfs: epoch %d does not fit squashfs's unsigned 32-bit time", t.Epoch)
	}
	comp, err := newCompressor(opt)
	if err != nil {
		return Stats{}, err
	}
	defer comp.close()
	l, err := layout(t)
	if err != nil {
		return Stats{}, fmt.Errorf("squashfs: %w", err)
	}
	b := &builder{opt: opt, comp: comp, tree: t, l: l, out: newCountingWriter(w)}
	if err := b.write(); err != nil {
		return Stats{}, fmt.Errorf("squashfs: %w", err)
	}
	return b.stats, nil
}

// WriteFile writes t as a squashfs image to path through a temporary file in
// the same directory renamed at the end, so path is either the complete
// image or untouched.
func WriteFile(path string, t *tree.Tree, opt Options) (st Stats, err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return Stats{}, fmt.Errorf("squashfs: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if st, err = Write(f, t, opt); err != nil {
		return Stats{}, fmt.Errorf("%s: %w", path, err)
	}
	if err = f.Chmod(0o644); err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return Stats{}, fmt.Errorf("squashfs: %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return Stats{}, fmt.Errorf("squashfs: %w", err)
	}
	return st, nil
}
