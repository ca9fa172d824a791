// Package verity is the on-disk dm-verity format both sides share: the
// superblock `veritysetup format` writes in front of a hash tree, the tree's
// geometry, and the device-mapper table that opens it. The builder
// (image/verity) writes trees with it; stage 1 reads the superblock and
// opens the slot with the table.
//
// basalt uses one profile only: format version 1, sha256, 4096-byte data
// and hash blocks, and the hash area right after the data in the same
// partition (veritysetup --hash-offset=DATA_BYTES DEV DEV).
package verity

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

const (
	// BlockSize is the data and hash block size.
	BlockSize = 4096
	// Algorithm is the hash algorithm, as dm-verity and veritysetup name it.
	Algorithm = "sha256"
	// DigestSize is the size of one sha256 digest in the tree.
	DigestSize = 32
	// HashType is the format version (1: salt hashed before each block).
	HashType = 1
	// SuperblockSize is the size of the on-disk superblock; it takes a
	// whole hash block, the tree starts in the next one.
	SuperblockSize = 512
	// MaxSalt is the largest salt the superblock can hold.
	MaxSalt = 256

	signature = "verity\x00\x00"
	version   = 1
	// hashPerBlockBits: 4096 / 32 = 128 = 2^7 digests per hash block.
	hashPerBlockBits = 7
	maxLevels        = 63
)

// Superblock is the 512-byte header veritysetup writes at the hash offset
// (cryptsetup lib/verity/verity.c, struct verity_sb; little endian).
type Superblock struct {
	HashType      uint32
	UUID          [16]byte
	Algorithm     string
	DataBlockSize uint32
	HashBlockSize uint32
	DataBlocks    uint64
	Salt          []byte
}

// New returns the superblock of basalt's profile for dataBlocks blocks.
func New(dataBlocks uint64, salt []byte, uuid [16]byte) Superblock {
	return Superblock{HashType: HashType, UUID: uuid, Algorithm: Algorithm,
		DataBlockSize: BlockSize, HashBlockSize: BlockSize, DataBlocks: dataBlocks, Salt: salt}
}

// Marshal returns the superblock's 512 bytes.
func (s Superblock) Marshal() ([]byte, error) {
	if len(s.Salt) > MaxSalt {
		return nil, fmt.Errorf("verity salt of %d bytes: at most %d", len(s.Salt), MaxSalt)
	}
	if len(s.Algorithm) >= 32 {
		return nil, fmt.Errorf("verity algorithm %q: name too long", s.Algorithm)
	}
	b := make([]byte, SuperblockSize)
	copy(b[0:8], signature)
	le := binary.LittleEndian
	le.PutUint32(b[8:], version)
	le.PutUint32(b[12:], s.HashType)
	copy(b[16:32], s.UUID[:])
	copy(b[32:64], s.Algorithm)
	le.PutUint32(b[64:], s.DataBlockSize)
	le.PutUint32(b[68:], s.HashBlockSize)
	le.PutUint64(b[72:], s.DataBlocks)
	le.PutUint16(b[80:], uint16(len(s.Salt)))
	// 82..88 padding, 88..344 salt, 344..512 padding.
	copy(b[88:88+MaxSalt], s.Salt)
	return b, nil
}

// ErrNoSuperblock means the bytes do not start with a verity signature:
// no hash tree was written there (an empty slot, or verity off).
var ErrNoSuperblock = errors.New("no verity superblock (signature \"verity\" missing)")

// Parse reads a superblock from the first SuperblockSize bytes of b. It
// accepts only what basalt's profile writes, and says which field differs.
func Parse(b []byte) (Superblock, error) {
	if len(b) < SuperblockSize {
		return Superblock{}, fmt.Errorf("verity superblock: %d bytes, want %d", len(b), SuperblockSize)
	}
	if string(b[0:8]) != signature {
		return Superblock{}, ErrNoSuperblock
	}
	le := binary.LittleEndian
	if v := le.Uint32(b[8:]); v != version {
		return Superblock{}, fmt.Errorf("verity superblock version %d, want %d", v, version)
	}
	s := Superblock{
		HashType:      le.Uint32(b[12:]),
		DataBlockSize: le.Uint32(b[64:]),
		HashBlockSize: le.Uint32(b[68:]),
		DataBlocks:    le.Uint64(b[72:]),
	}
	copy(s.UUID[:], b[16:32])
	alg := b[32:64]
	if i := bytes.IndexByte(alg, 0); i >= 0 {
		alg = alg[:i]
	}
	s.Algorithm = string(alg)
	n := int(le.Uint16(b[80:]))
	if n > MaxSalt {
		return Superblock{}, fmt.Errorf("verity superblock: salt size %d, at most %d", n, MaxSalt)
	}
	s.Salt = bytes.Clone(b[88 : 88+n])
	if err := s.check(); err != nil {
		return Superblock{}, err
	}
	return s, nil
}

// check refuses what basalt does not write: other hash types, algorithms
// or block sizes, and an empty or impossibly large data area.
func (s Superblock) check() error {
	var bad []string
	if s.HashType != HashType {
		bad = append(bad, fmt.Sprintf("hash type %d (want %d)", s.HashType, HashType))
	}
	if s.Algorithm != Algorithm {
		bad = append(bad, fmt.Sprintf("algorithm %q (want %s)", s.Algorithm, Algorithm))
	}
	if s.DataBlockSize != BlockSize || s.HashBlockSize != BlockSize {
		bad = append(bad, fmt.Sprintf("block sizes %d/%d (want %d)", s.DataBlockSize, s.HashBlockSize, BlockSize))
	}
	if s.DataBlocks == 0 || s.DataBlocks > 1<<40 {
		bad = append(bad, fmt.Sprintf("%d data blocks", s.DataBlocks))
	}
	if len(bad) > 0 {
		return fmt.Errorf("verity superblock: %s", strings.Join(bad, ", "))
	}
	return nil
}

// Levels returns, top level first, the number of hash blocks of each tree
// level for dataBlocks data blocks: the order they are stored in
// (cryptsetup hash_levels, the kernel's verity_ctr). No levels for one block.
func Levels(dataBlocks uint64) []uint64 {
	n := 0
	for hashPerBlockBits*n < 64 && (dataBlocks-1)>>(hashPerBlockBits*n) != 0 {
		n++
	}
	out := make([]uint64, n)
	for i := n - 1; i >= 0; i-- {
		shift := uint((i + 1) * hashPerBlockBits)
		out[n-1-i] = (dataBlocks + (1 << shift) - 1) >> shift
	}
	return out
}

// HashAreaSize is the size in bytes of the superblock block plus the hash
// tree for dataBlocks data blocks.
func HashAreaSize(dataBlocks uint64) int64 {
	n := uint64(1) // the superblock's block
	for _, l := range Levels(dataBlocks) {
		n += l
	}
	return int64(n) * BlockSize
}

// Table is the device-mapper "verity" target line for a partition dev
// holding dataBlocks data blocks followed by the hash area (superblock
// first), with the root hash and salt in hex. Sectors are 512 bytes.
// Corruption is reported as EIO (the default): stage 2 reads the target's
// status and decides whether to fall back.
func Table(dev string, dataBlocks uint64, rootHash, salt []byte) (length uint64, params string) {
	hashStart := dataBlocks + 1 // the superblock takes the block at the hash offset
	saltHex := hex.EncodeToString(salt)
	if saltHex == "" {
		saltHex = "-"
	}
	return dataBlocks * (BlockSize / 512), fmt.Sprintf("%d %s %s %d %d %d %d %s %s %s",
		HashType, dev, dev, BlockSize, BlockSize, dataBlocks, hashStart, Algorithm, hex.EncodeToString(rootHash), saltHex)
}

// ParseRootHash decodes a root hash written in hex (from the command line).
func ParseRootHash(s string) ([]byte, error) {
	h, err := hex.DecodeString(s)
	if err != nil || len(h) != DigestSize {
		return nil, fmt.Errorf("verity root hash %q: want %d hex digits", s, 2*DigestSize)
	}
	return h, nil
}

// ParseArgs decodes the values of CmdlineRootHash and CmdlineBlocks.
func ParseArgs(root, blocks string) ([]byte, uint64, error) {
	h, err := ParseRootHash(root)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", CmdlineRootHash, err)
	}
	n, err := strconv.ParseUint(blocks, 10, 64)
	if err != nil || n == 0 {
		return nil, 0, fmt.Errorf("%s=%q: want the number of data blocks the hash tree covers", CmdlineBlocks, blocks)
	}
	return h, n, nil
}

// Kernel command-line keys naming the slot's verity root: stage 1 opens
// the slot through dm-verity when CmdlineRootHash is there.
const (
	CmdlineRootHash = "basalt.verity"
	CmdlineBlocks   = "basalt.verity.blocks"
)

// Params describes a slot payload's verity root (image manifest, update
// bundle manifest): the hash area starts at HashOffset = DataBlocks *
// BlockSize, right after the data.
type Params struct {
	RootHash   string `json:"rootHash"`
	Salt       string `json:"salt"`
	DataBlocks uint64 `json:"dataBlocks"`
	HashOffset int64  `json:"hashOffset"`
	Algorithm  string `json:"algorithm"`
	BlockSize  int    `json:"blockSize"`
}

// ParamsOf returns the Params of a superblock and root hash.
func ParamsOf(s Superblock, rootHash []byte) Params {
	return Params{RootHash: hex.EncodeToString(rootHash), Salt: hex.EncodeToString(s.Salt), DataBlocks: s.DataBlocks,
		HashOffset: int64(s.DataBlocks) * BlockSize, Algorithm: s.Algorithm, BlockSize: int(s.DataBlockSize)}
}

// CmdlineArgs returns the kernel command-line arguments of a verity root.
func (p Params) CmdlineArgs() string {
	return fmt.Sprintf("%s=%s %s=%d", CmdlineRootHash, p.RootHash, CmdlineBlocks, p.DataBlocks)
}

// MapperName is the device-mapper name of the verified root the device
// booted from (/dev/mapper/basalt-root): stage 2 reads its status.
const MapperName = "basalt-root"
