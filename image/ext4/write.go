package ext4

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"path"
)

// Group descriptor flags.
const bgInodeUninit = 0x1

func (f *fs) write(w io.WriterAt) error {
	gdt := make([]byte, f.gdtBlocks*blockSize)
	var freeBlocks, freeInodes uint64
	for g := uint32(0); g < f.groups; g++ {
		bb := f.bitmap[uint64(g)*blockSize : uint64(g+1)*blockSize]
		free := uint32(blocksPerGroup)
		for _, x := range bb {
			free -= uint32(bits.OnesCount8(x))
		}
		ib := f.inodeBitmap(g)
		freeI, dirs, flags := uint32(inodesPerGroup), uint32(0), uint16(bgInodeUninit)
		if g == 0 {
			freeI, dirs, flags = inodesPerGroup-f.usedInodes(), uint32(len(f.dirs)), 0
		}
		freeBlocks += uint64(free)
		freeInodes += uint64(freeI)
		d := gdt[g*descSize : (g+1)*descSize]
		put64split(d[0x0:], d[0x20:], f.bbitmap[g])
		put64split(d[0x4:], d[0x24:], f.ibitmap[g])
		put64split(d[0x8:], d[0x28:], f.itable[g])
		put32split(d[0xC:], d[0x2C:], free)
		put32split(d[0xE:], d[0x2E:], freeI)
		put32split(d[0x10:], d[0x30:], dirs)
		le.PutUint16(d[0x12:], flags)
		put32split(d[0x18:], d[0x38:], crc32c(f.csumSeed, bb))
		put32split(d[0x1A:], d[0x3A:], crc32c(f.csumSeed, ib[:inodesPerGroup/8]))
		put32split(d[0x1C:], d[0x32:], freeI) // itable_unused: unused inodes are the last ones
		var gb [4]byte
		le.PutUint32(gb[:], g)
		le.PutUint16(d[0x1E:], uint16(crc32c(crc32c(f.csumSeed, gb[:]), d)))

		if err := writeBlock(w, f.bbitmap[g], bb); err != nil {
			return fmt.Errorf("block bitmap of group %d: %w", g, err)
		}
		if err := writeBlock(w, f.ibitmap[g], ib); err != nil {
			return fmt.Errorf("inode bitmap of group %d: %w", g, err)
		}
	}
	for g := uint32(0); g < f.groups; g++ {
		if !hasSuper(g) {
			continue
		}
		start := uint64(g) * blocksPerGroup
		sb := f.superblock(g, freeBlocks, freeInodes)
		off := int64(start) * blockSize
		if g == 0 {
			off = 1024
		}
		if _, err := w.WriteAt(sb, off); err != nil {
			return fmt.Errorf("superblock copy in group %d: %w", g, err)
		}
		if err := writeBlock(w, start+1, gdt); err != nil {
			return fmt.Errorf("group descriptors copy in group %d: %w", g, err)
		}
	}
	if err := f.writeInodes(w); err != nil {
		return err
	}
	for _, d := range f.dirs {
		for i, b := range d.blocks {
			if err := writeBlock(w, b, f.dirBlock(d, i)); err != nil {
				return fmt.Errorf("directory /%s: %w", d.name, err)
			}
		}
	}
	if err := writeBlock(w, f.journal[0].start, f.journalSuper()); err != nil {
		return fmt.Errorf("journal superblock: %w", err)
	}
	return nil
}

func writeBlock(w io.WriterAt, block uint64, b []byte) error {
	_, err := w.WriteAt(b, int64(block)*blockSize)
	return err
}

// put32split stores the low 16 bits of v at lo and the high ones at hi.
func put32split(lo, hi []byte, v uint32) {
	le.PutUint16(lo, uint16(v))
	le.PutUint16(hi, uint16(v>>16))
}

// put64split stores the low 32 bits of v at lo and the high ones at hi.
func put64split(lo, hi []byte, v uint64) {
	le.PutUint32(lo, uint32(v))
	le.PutUint32(hi, uint32(v>>32))
}

// inodeBitmap is group g's inode bitmap block: used inodes set, and the
// bits past inodes_per_group set as the kernel expects.
func (f *fs) inodeBitmap(g uint32) []byte {
	b := make([]byte, blockSize)
	for i := inodesPerGroup / 8; i < blockSize; i++ {
		b[i] = 0xff
	}
	if g == 0 {
		for i := uint32(0); i < f.usedInodes(); i++ {
			b[i/8] |= 1 << (i % 8)
		}
	}
	return b
}

func (f *fs) superblock(group uint32, freeBlocks, freeInodes uint64) []byte {
	s := make([]byte, 1024)
	t := f.opt.Epoch
	le.PutUint32(s[0x00:], f.groups*inodesPerGroup)
	put64split(s[0x04:], s[0x150:], f.blocks)
	put64split(s[0x08:], s[0x154:], f.blocks/20) // 5% reserved for root, as mke2fs
	put64split(s[0x0C:], s[0x158:], freeBlocks)
	le.PutUint32(s[0x10:], uint32(freeInodes))
	le.PutUint32(s[0x18:], 2) // 1024 << 2
	le.PutUint32(s[0x1C:], 2)
	le.PutUint32(s[0x20:], blocksPerGroup)
	le.PutUint32(s[0x24:], blocksPerGroup)
	le.PutUint32(s[0x28:], inodesPerGroup)
	le.PutUint32(s[0x30:], uint32(t)) // s_wtime
	s[0x274] = byte(t >> 32)
	le.PutUint16(s[0x36:], 0xFFFF) // s_max_mnt_count -1: no forced checks
	le.PutUint16(s[0x38:], 0xEF53)
	le.PutUint16(s[0x3A:], 1)         // clean
	le.PutUint16(s[0x3C:], 1)         // errors: continue
	le.PutUint32(s[0x40:], uint32(t)) // s_lastcheck
	s[0x277] = byte(t >> 32)
	le.PutUint32(s[0x4C:], 1) // dynamic revision
	le.PutUint32(s[0x54:], firstIno)
	le.PutUint16(s[0x58:], inodeSize)
	le.PutUint16(s[0x5A:], uint16(group))
	le.PutUint32(s[0x5C:], compatHasJournal|compatExtAttr|compatDirIndex)
	le.PutUint32(s[0x60:], incompatFiletype|incompatExtents|incompat64bit|incompatFlexBG)
	le.PutUint32(s[0x64:], roCompatSparseSuper|roCompatLargeFile|roCompatHugeFile|
		roCompatDirNlink|roCompatExtraIsize|roCompatMetadataCsum)
	copy(s[0x68:0x78], f.opt.UUID[:])
	copy(s[0x78:0x88], f.opt.Label)
	le.PutUint32(s[0xE0:], journalIno)
	copy(s[0xEC:0xFC], f.opt.HashSeed[:])
	s[0xFC] = 1 // half_md4, as mke2fs
	s[0xFD] = 1 // s_jnl_blocks holds a copy of the journal inode's i_block
	le.PutUint16(s[0xFE:], descSize)
	le.PutUint32(s[0x100:], 0x000C)    // default mount options: user_xattr, acl
	le.PutUint32(s[0x108:], uint32(t)) // s_mkfs_time
	s[0x276] = byte(t >> 32)
	jb := f.journalIblock()
	copy(s[0x10C:0x148], jb[:])
	le.PutUint32(s[0x14C:], uint32(f.jblocks*blockSize)) // i_size; i_size_high is 0
	le.PutUint16(s[0x15C:], extraIsize)
	le.PutUint16(s[0x15E:], extraIsize)
	le.PutUint32(s[0x160:], 0x1) // signed directory hash, as mke2fs on x86
	s[0x174] = 4                 // log2 of flexSize
	s[0x175] = 1                 // crc32c
	le.PutUint32(s[0x3FC:], crc32c(^uint32(0), s[:0x3FC]))
	return s
}

// journalIblock is the journal inode's i_block: the extent tree root.
func (f *fs) journalIblock() [60]byte {
	var b [60]byte
	if f.jindex == 0 {
		putExtentHeader(b[:], len(f.journal), 4, 0)
		for i, e := range f.journal {
			putExtent(b[12+12*i:], e)
		}
		return b
	}
	putExtentHeader(b[:], 1, 4, 1)
	le.PutUint32(b[12:], 0)
	le.PutUint32(b[16:], uint32(f.jindex))
	le.PutUint16(b[20:], uint16(f.jindex>>32))
	return b
}

func putExtentHeader(b []byte, entries, max, depth int) {
	le.PutUint16(b[0:], 0xF30A)
	le.PutUint16(b[2:], uint16(entries))
	le.PutUint16(b[4:], uint16(max))
	le.PutUint16(b[6:], uint16(depth))
}

func putExtent(b []byte, e extent) {
	le.PutUint32(b[0:], e.logical)
	le.PutUint16(b[4:], e.length)
	le.PutUint16(b[6:], uint16(e.start>>32))
	le.PutUint32(b[8:], uint32(e.start))
}

// inodeSeed is the crc32c seed of inode ino's checksums (generation 0).
func (f *fs) inodeSeed(ino uint32) uint32 {
	var b [4]byte
	le.PutUint32(b[:], ino)
	c := crc32c(f.csumSeed, b[:])
	le.PutUint32(b[:], 0)
	return crc32c(c, b[:])
}

// inode returns an on-disk inode with every time set to the epoch.
func (f *fs) inode(ino uint32, mode, links uint16, size uint64, nblocks uint64, iblock [60]byte) []byte {
	b := make([]byte, inodeSize)
	t := f.opt.Epoch
	le.PutUint16(b[0x00:], mode)
	le.PutUint32(b[0x04:], uint32(size))
	le.PutUint32(b[0x6C:], uint32(size>>32))
	for _, off := range []int{0x08, 0x0C, 0x10, 0x90} { // atime, ctime, mtime, crtime
		le.PutUint32(b[off:], timeLo(t))
	}
	for _, off := range []int{0x8C, 0x84, 0x88, 0x94} {
		le.PutUint32(b[off:], timeExtra(t))
	}
	le.PutUint16(b[0x1A:], links)
	sectors := nblocks * blockSize / 512
	le.PutUint32(b[0x1C:], uint32(sectors))
	le.PutUint16(b[0x74:], uint16(sectors>>32))
	le.PutUint32(b[0x20:], 0x80000) // EXT4_EXTENTS_FL
	copy(b[0x28:0x64], iblock[:])
	le.PutUint16(b[0x80:], extraIsize)
	c := crc32c(f.inodeSeed(ino), b)
	le.PutUint16(b[0x7C:], uint16(c))
	le.PutUint16(b[0x82:], uint16(c>>16))
	return b
}

// writeInodes writes the used start of group 0's inode table: the root,
// journal and directory inodes (the other reserved ones stay zero).
func (f *fs) writeInodes(w io.WriterAt) error {
	n := (uint64(f.usedInodes())*inodeSize + blockSize - 1) / blockSize
	table := make([]byte, n*blockSize)
	put := func(ino uint32, b []byte) { copy(table[(ino-1)*inodeSize:], b) }

	jblocks := f.jblocks
	if f.jindex != 0 {
		jblocks++
		leaf := make([]byte, blockSize)
		putExtentHeader(leaf, len(f.journal), (blockSize-12)/12, 0)
		for i, e := range f.journal {
			putExtent(leaf[12+12*i:], e)
		}
		tail := 12 + 12*((blockSize-12)/12)
		le.PutUint32(leaf[tail:], crc32c(f.inodeSeed(journalIno), leaf[:tail]))
		if err := writeBlock(w, f.jindex, leaf); err != nil {
			return fmt.Errorf("journal extent leaf: %w", err)
		}
	}
	put(journalIno, f.inode(journalIno, 0o100600, 1, f.jblocks*blockSize, jblocks, f.journalIblock()))
	for _, d := range f.dirs {
		links := 2 + len(d.children) // ".", the entry in the parent, each child's ".."
		var ib [60]byte
		putExtentHeader(ib[:], 1, 4, 0)
		putExtent(ib[12:], extent{start: d.blocks[0], length: uint16(len(d.blocks))})
		n := uint64(len(d.blocks))
		put(d.ino, f.inode(d.ino, d.mode, uint16(links), n*blockSize, n, ib))
	}
	if err := writeBlock(w, f.itable[0], table); err != nil {
		return fmt.Errorf("inode table of group 0: %w", err)
	}
	return nil
}

// dirBlock returns block i of directory d: ".", ".." and the children in
// the first block, an empty entry in the others, and the checksum tail.
func (f *fs) dirBlock(d *dir, i int) []byte {
	b := make([]byte, blockSize)
	end := blockSize - 12
	if i == 0 {
		off := 0
		add := func(ino uint32, name string, last bool) {
			rl := recLen(len(name))
			if last {
				rl = end - off
			}
			le.PutUint32(b[off:], ino)
			le.PutUint16(b[off+4:], uint16(rl))
			b[off+6] = byte(len(name))
			b[off+7] = 2 // directory
			copy(b[off+8:], name)
			off += rl
		}
		add(d.ino, ".", false)
		add(d.parent, "..", len(d.children) == 0)
		for j, c := range d.children {
			add(c.ino, path.Base(c.name), j == len(d.children)-1)
		}
	} else {
		le.PutUint16(b[4:], uint16(end))
	}
	// Tail: a fake entry of inode 0, length 12, type 0xDE, then the crc.
	le.PutUint16(b[end+4:], 12)
	b[end+7] = 0xDE
	le.PutUint32(b[end+8:], crc32c(f.inodeSeed(d.ino), b[:end]))
	return b
}

// journalSuper is the jbd2 v2 superblock of an empty journal, as mke2fs
// writes it (ext2fs_create_journal_superblock).
func (f *fs) journalSuper() []byte {
	b := make([]byte, blockSize)
	be := binary.BigEndian
	be.PutUint32(b[0x0:], 0xC03B3998)
	be.PutUint32(b[0x4:], 4) // superblock v2
	be.PutUint32(b[0xC:], blockSize)
	be.PutUint32(b[0x10:], uint32(f.jblocks))
	be.PutUint32(b[0x14:], 1) // s_first
	be.PutUint32(b[0x18:], 1) // s_sequence
	be.PutUint32(b[0x40:], 1) // s_nr_users
	copy(b[0x30:0x40], f.opt.UUID[:])
	return b
}
