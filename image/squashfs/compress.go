package squashfs

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/basaltos/basalt/image/compress"
)

// compressor compresses one block; it is safe for concurrent use.
type compressor interface {
	// compress returns src compressed, appended to dst (whose capacity it
	// reuses), or nil when that does not make it smaller (the block is then
	// stored as is).
	compress(dst, src []byte) ([]byte, error)
	id() uint16
	close()
}

// Squashfs compressor ids.
const (
	idGzip = 1
	idXZ   = 4
	idZstd = 6
)

func newCompressor(opt Options) (compressor, error) {
	switch opt.Compression {
	case compress.Zstd:
		// Entropy-coding literals even where no match was found costs
		// no measurable time and keeps blocks without matches (machine
		// code, tables) as small as libzstd makes them: 2.5% on kernel
		// modules at level 3. Squashfs needs no frame checksum.
		enc, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(opt.Level)),
			zstd.WithAllLitEntropyCompression(true),
			zstd.WithEncoderCRC(false),
			zstd.WithEncoderConcurrency(opt.Workers),
			zstd.WithLowerEncoderMem(false))
		if err != nil {
			return nil, fmt.Errorf("squashfs: zstd: %w", err)
		}
		return zstdComp{enc}, nil
	case compress.Gzip:
		return &zlibComp{level: opt.Level}, nil
	case compress.XZ:
		// The kernel preallocates a dictionary of max(block size, 8 KiB)
		// and rejects streams that declare more; it checks CRC32 only.
		return xzComp{xz.WriterConfig{DictCap: max(opt.BlockSize, metaSize), CheckSum: xz.CRC32}}, nil
	case compress.None:
		return noComp{}, nil
	}
	return nil, fmt.Errorf("squashfs: unknown compression %v", opt.Compression)
}

func smaller(out, src []byte) []byte {
	if len(out) >= len(src) {
		return nil
	}
	return out
}

type zstdComp struct{ enc *zstd.Encoder }

func (z zstdComp) compress(dst, src []byte) ([]byte, error) {
	return smaller(z.enc.EncodeAll(src, dst[:0]), src), nil
}
func (zstdComp) id() uint16 { return idZstd }
func (z zstdComp) close()   { z.enc.Close() }

type zlibComp struct {
	level int
	pool  sync.Pool
}

func (z *zlibComp) compress(dst, src []byte) ([]byte, error) {
	buf := bytes.NewBuffer(dst[:0])
	w, _ := z.pool.Get().(*zlib.Writer)
	if w == nil {
		var err error
		if w, err = zlib.NewWriterLevel(buf, z.level); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
	} else {
		w.Reset(buf)
	}
	defer z.pool.Put(w)
	if _, err := w.Write(src); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return smaller(buf.Bytes(), src), nil
}
func (*zlibComp) id() uint16 { return idGzip }
func (*zlibComp) close()     {}

type xzComp struct{ cfg xz.WriterConfig }

func (x xzComp) compress(dst, src []byte) ([]byte, error) {
	buf := bytes.NewBuffer(dst[:0])
	w, err := x.cfg.NewWriter(buf)
	if err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	if _, err := w.Write(src); err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	return smaller(buf.Bytes(), src), nil
}
func (xzComp) id() uint16 { return idXZ }
func (xzComp) close()     {}

// noComp stores everything uncompressed; the superblock still names a codec
// (gzip, as mksquashfs does) and flags every table as uncompressed.
type noComp struct{}

func (noComp) compress(_, _ []byte) ([]byte, error) { return nil, nil }
func (noComp) id() uint16                           { return idGzip }
func (noComp) close()                               {}
