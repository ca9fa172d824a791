// Package verity writes dm-verity hash trees: the hash area that
// `veritysetup format --hash-offset=N DEV DEV` writes after N bytes of data
// (superblock, then the tree top level first), byte for byte, in Go. The
// on-disk format is contract/verity; the salt and UUID come from the caller
// (derived from the spec), so the output is reproducible.
package verity

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	cv "github.com/basaltos/basalt/contract/verity"
)

// Tree is the hash area of one data area.
type Tree struct {
	Superblock cv.Superblock
	RootHash   []byte
	// Area is the hash area: the superblock padded to a block, then the
	// levels top first (cv.HashAreaSize bytes).
	Area []byte
}

// Offset returns where the hash area starts: right after the data blocks.
func (t *Tree) Offset() int64 { return int64(t.Superblock.DataBlocks) * cv.BlockSize }

// DataBlocks returns how many blocks a data area of size bytes takes; the
// last one is padded with zeros.
func DataBlocks(size int64) uint64 { return uint64((size + cv.BlockSize - 1) / cv.BlockSize) }

// Build computes the hash area of the first size bytes of data (read as
// zeros past size up to the block boundary). Level 0 is hashed on all cores.
func Build(data io.ReaderAt, size int64, salt []byte, uuid [16]byte) (*Tree, error) {
	if size <= 0 {
		return nil, errors.New("verity: empty data area")
	}
	blocks := DataBlocks(size)
	sb := cv.New(blocks, salt, uuid)
	head, err := sb.Marshal()
	if err != nil {
		return nil, err
	}
	levels := cv.Levels(blocks)
	area := make([]byte, cv.HashAreaSize(blocks))
	copy(area, head)
	// Level i (0 = hashes of the data) lives at start[i] in area; levels
	// are stored top first.
	start := make([]int64, len(levels))
	pos := int64(cv.BlockSize)
	for i := len(levels) - 1; i >= 0; i-- {
		start[i] = pos
		pos += int64(levels[len(levels)-1-i]) * cv.BlockSize
	}
	var top []byte // the block whose hash is the root hash
	if len(levels) == 0 {
		top = make([]byte, cv.BlockSize)
		if _, err := data.ReadAt(top[:size], 0); err != nil && err != io.EOF {
			return nil, fmt.Errorf("verity: read data: %w", err)
		}
	} else {
		if err := hashData(data, size, blocks, salt, area[start[0]:]); err != nil {
			return nil, err
		}
		below, n := area[start[0]:], blocks
		for i := 1; i < len(levels); i++ {
			n = (n + 127) / 128 // blocks of level i-1
			hashBlocks(below[:n*cv.BlockSize], salt, area[start[i]:])
			below = area[start[i]:]
		}
		top = area[start[len(levels)-1] : start[len(levels)-1]+cv.BlockSize]
	}
	root := hashBlock(salt, top)
	return &Tree{Superblock: sb, RootHash: root[:], Area: area}, nil
}

func hashBlock(salt, block []byte) [32]byte {
	h := sha256.New()
	h.Write(salt)
	h.Write(block)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// hashBlocks writes the digest of each block of src to dst, in order.
func hashBlocks(src, salt, dst []byte) {
	for i := 0; i*cv.BlockSize < len(src); i++ {
		d := hashBlock(salt, src[i*cv.BlockSize:(i+1)*cv.BlockSize])
		copy(dst[i*cv.DigestSize:], d[:])
	}
}

// chunkBlocks is how many data blocks one worker reads at a time (4 MiB).
const chunkBlocks = 1024

// hashData writes the digest of every data block to dst, hashing chunks
// on all cores; each digest's place is fixed, so the order of work does
// not matter.
func hashData(data io.ReaderAt, size int64, blocks uint64, salt, dst []byte) error {
	chunks := (blocks + chunkBlocks - 1) / chunkBlocks
	next := make(chan uint64)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), int(chunks)) {
		wg.Go(func() {
			buf := make([]byte, chunkBlocks*cv.BlockSize)
			for c := range next {
				off := int64(c) * chunkBlocks * cv.BlockSize
				n := min(int64(len(buf)), (int64(blocks)*cv.BlockSize)-off)
				b := buf[:n]
				want := min(n, size-off)
				got, err := data.ReadAt(b[:want], off)
				if err != nil && !(err == io.EOF && int64(got) == want) {
					select {
					case errs <- fmt.Errorf("verity: read data at %d: %w", off, err):
					default:
					}
					continue
				}
				clear(b[want:])
				hashBlocks(b, salt, dst[c*chunkBlocks*cv.DigestSize:])
			}
		})
	}
	for c := range chunks {
		next <- c
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// Verify checks a data area followed by its hash area, as written by
// Build: the superblock parses, the stored tree equals the one the data
// gives, and its root hash is rootHash (when not nil). It returns the
// superblock and the computed root hash.
func Verify(r io.ReaderAt, dataSize int64, rootHash []byte) (cv.Superblock, []byte, error) {
	blocks := DataBlocks(dataSize)
	off := int64(blocks) * cv.BlockSize
	head := make([]byte, cv.SuperblockSize)
	if _, err := r.ReadAt(head, off); err != nil {
		return cv.Superblock{}, nil, fmt.Errorf("verity: read superblock at %d: %w", off, err)
	}
	sb, err := cv.Parse(head)
	if err != nil {
		return cv.Superblock{}, nil, err
	}
	if sb.DataBlocks != blocks {
		return sb, nil, fmt.Errorf("verity superblock: %d data blocks, the slot's data has %d", sb.DataBlocks, blocks)
	}
	t, err := Build(r, off, sb.Salt, sb.UUID)
	if err != nil {
		return sb, nil, err
	}
	stored := make([]byte, len(t.Area))
	if _, err := r.ReadAt(stored, off); err != nil {
		return sb, t.RootHash, fmt.Errorf("verity: read hash area: %w", err)
	}
	if !bytes.Equal(stored, t.Area) {
		return sb, t.RootHash, errors.New("verity: the stored hash tree does not match the data")
	}
	if rootHash != nil && !bytes.Equal(rootHash, t.RootHash) {
		return sb, t.RootHash, fmt.Errorf("verity: root hash %x, want %x", t.RootHash, rootHash)
	}
	return sb, t.RootHash, nil
}
