// Package ext4 writes an empty ext4 filesystem for the basalt-data partition:
// root directory, lost+found, a jbd2 journal and optionally a few
// pre-created directories, deterministically (label, UUID and hash seed come
// from the caller, every time is the epoch) and sparsely: only metadata
// blocks are written, so a 1 GiB filesystem costs well under a MiB of writes.
//
// # The window must read as zeros
//
// Like mke2fs -E lazy_itable_init=1,lazy_journal_init=1, the journal's blocks
// and the unused parts of the inode tables are not written. The caller hands
// in a window that reads as zeros (a fresh sparse file). Even where it does
// not, the filesystem stays consistent: groups report their unused inodes
// (bg_itable_unused, which e2fsck and the kernel trust under metadata_csum)
// and lack EXT4_BG_INODE_ZEROED, so the kernel zeroes the tables itself after
// the first mount; an empty journal (s_start = 0) is never replayed.
//
// # Layout and features, chosen for online growth
//
// The device grows this filesystem online on first boot (EXT4_IOC_RESIZE_FS,
// Linux 6.1) from the image's size to the whole medium, e.g. 64 MiB to 64
// GiB: a factor of 1000 or more. Choices, and why:
//
//   - 4 KiB blocks and 32768 blocks per group whatever the size (mke2fs would
//     pick 1 KiB blocks below 512 MiB, which makes a grown filesystem slow
//     and caps it at 16 TiB with 64bit off).
//   - 8192 inodes per group (one per 16 KiB, mke2fs' default ratio for a
//     full group) even when the image is small: new groups added by an
//     online resize copy s_inodes_per_group, so sizing it for the tiny
//     initial image (as mke2fs does) would leave a grown 64 GiB filesystem
//     with too few inodes for container image layers.
//   - No resize_inode and no meta_bg: Linux's ext4_resize_fs
//     (fs/ext4/resize.c) converts a filesystem that has neither to meta_bg
//     (ext4_convert_meta_bg) on its first online resize, after which new
//     group descriptor blocks live in the new groups and growth is
//     unbounded. With resize_inode the kernel would also convert, but only
//     after using up the reserved GDT blocks, which mke2fs sizes for 1024x
//     growth and which cost space in every backup group; with meta_bg set
//     from the start, offline tools and older kernels are less tested.
//   - 64bit (64-byte descriptors, room beyond 16 TiB), flex_bg (16 groups'
//     bitmaps and inode tables packed at the start of the flex group, which
//     online resize also uses for new groups), sparse_super, extent,
//     huge_file, large_file, dir_nlink, extra_isize (256-byte inodes with
//     32 extra bytes: nanosecond and post-2038 times), filetype, dir_index
//     (hash seed from the caller), ext_attr, has_journal and metadata_csum
//     (crc32c over superblock, descriptors, bitmaps, inodes, directory
//     blocks and extent blocks). These are mke2fs' ext4 defaults on Debian
//     12 minus resize_inode and minus features newer than Linux 6.1 needs
//     (orphan_file, metadata_csum_seed).
//
// TestE2EOnlineGrow (grow_e2e_test.go, -tags e2e) checks the claim: Debian's
// 6.1.0 cloud kernel grows a 64 MiB image online to 16 GiB, converting it to
// meta_bg, and e2fsck -fn finds it clean afterwards.
//
// The journal gets mke2fs' size for the filesystem's size
// (ext2fs_default_journal_size) and is not resized when the filesystem
// grows, as with mke2fs.
package ext4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"path"
	"sort"
	"strings"
)

// Options are the inputs that make the filesystem unique; the caller derives
// them from the spec so that builds are reproducible.
type Options struct {
	Label    string // volume label, at most 16 bytes
	UUID     [16]byte
	HashSeed [16]byte // seed of the directory index hash
	Epoch    int64    // every timestamp, seconds since 1970
	// Dirs are directories to create (mode 0755, root-owned), such as
	// "var" or "etc-upper"; missing parents are created too.
	Dirs []string
}

const (
	blockSize      = 4096
	blocksPerGroup = 8 * blockSize
	inodeSize      = 256
	inodesPerGroup = 8192
	itableBlocks   = inodesPerGroup * inodeSize / blockSize
	descSize       = 64
	flexSize       = 16
	firstIno       = 11 // lost+found; 1-10 are reserved
	rootIno        = 2
	journalIno     = 8
	extraIsize     = 32
	// MinSize is the smallest filesystem Write makes: room for the
	// smallest journal mke2fs creates (1024 blocks) and the metadata.
	MinSize = 8 << 20
)

// Feature bits (see the package doc for why these).
const (
	compatHasJournal = 0x4
	compatExtAttr    = 0x8
	compatDirIndex   = 0x20

	incompatFiletype = 0x2
	incompatExtents  = 0x40
	incompat64bit    = 0x80
	incompatFlexBG   = 0x200

	roCompatSparseSuper  = 0x1
	roCompatLargeFile    = 0x2
	roCompatHugeFile     = 0x8
	roCompatDirNlink     = 0x20
	roCompatExtraIsize   = 0x40
	roCompatMetadataCsum = 0x400
)

var le = binary.LittleEndian

// castagnoli is crc32c; ext4 uses it without the usual pre/post inversion.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc32c(seed uint32, b []byte) uint32 { return ^crc32.Update(^seed, castagnoli, b) }

// dir is a directory to write: its inode, parent inode, block and entries.
type dir struct {
	name     string // path, "" for the root
	ino      uint32
	parent   uint32
	mode     uint16
	blocks   []uint64 // data blocks (lost+found has 4, the others 1)
	children []*dir
}

// fs is the filesystem being laid out.
type fs struct {
	opt       Options
	blocks    uint64 // total blocks
	groups    uint32
	gdtBlocks uint64
	bitmap    []byte // block bitmaps of every group, one block each
	next      uint64 // allocation cursor
	csumSeed  uint32
	jblocks   uint64
	journal   []extent
	jindex    uint64 // extent leaf block of the journal, 0 if none
	dirs      []*dir
	bbitmap   []uint64 // block bitmap block of each group
	ibitmap   []uint64
	itable    []uint64
}

type extent struct {
	logical uint32
	start   uint64
	length  uint16
}

// Write writes an ext4 filesystem of size bytes (rounded down to 4 KiB) into
// the window [0, size) of w, which must read as zeros (see the package doc).
func Write(w io.WriterAt, size int64, opt Options) error {
	f, err := layout(size, opt)
	if err != nil {
		return err
	}
	if err := f.write(w); err != nil {
		return fmt.Errorf("ext4: %w", err)
	}
	return nil
}

func layout(size int64, opt Options) (*fs, error) {
	if size < MinSize {
		return nil, fmt.Errorf("ext4: size %d bytes, at least %d (8 MiB) needed", size, MinSize)
	}
	if len(opt.Label) > 16 {
		return nil, fmt.Errorf("ext4: label %q longer than 16 bytes", opt.Label)
	}
	if opt.Epoch < 0 || opt.Epoch >= 1<<34 {
		return nil, fmt.Errorf("ext4: epoch %d outside what ext4 stores (0 to 2^34-1)", opt.Epoch)
	}
	f := &fs{opt: opt, blocks: uint64(size) / blockSize}
	if f.blocks >= 1<<32 {
		return nil, fmt.Errorf("ext4: size %d bytes: more than 2^32 blocks is not supported", size)
	}
	f.groups = uint32((f.blocks + blocksPerGroup - 1) / blocksPerGroup)
	// A last group too small for its own metadata is dropped, as mke2fs does.
	if last := f.blocks - uint64(f.groups-1)*blocksPerGroup; f.groups > 1 && last < f.minGroupBlocks(f.groups-1) {
		f.groups--
		f.blocks = uint64(f.groups) * blocksPerGroup
	}
	f.gdtBlocks = (uint64(f.groups)*descSize + blockSize - 1) / blockSize
	f.csumSeed = crc32c(^uint32(0), opt.UUID[:])
	f.bitmap = make([]byte, uint64(f.groups)*blockSize)
	for b := f.blocks; b < uint64(f.groups)*blocksPerGroup; b++ {
		f.mark(b) // padding past the end of the last group
	}

	// Superblock and descriptor copies, then each flex group's bitmaps and
	// inode tables at the start of its first group.
	for g := uint32(0); g < f.groups; g++ {
		if hasSuper(g) {
			for b := uint64(0); b < 1+f.gdtBlocks; b++ {
				f.mark(uint64(g)*blocksPerGroup + b)
			}
		}
	}
	f.bbitmap = make([]uint64, f.groups)
	f.ibitmap = make([]uint64, f.groups)
	f.itable = make([]uint64, f.groups)
	for first := uint32(0); first < f.groups; first += flexSize {
		n := min(flexSize, f.groups-first)
		start := uint64(first) * blocksPerGroup
		if hasSuper(first) {
			start += 1 + f.gdtBlocks
		}
		for i := uint32(0); i < n; i++ {
			f.bbitmap[first+i] = start + uint64(i)
			f.ibitmap[first+i] = start + uint64(n+i)
			f.itable[first+i] = start + uint64(2*n) + uint64(i)*itableBlocks
		}
		for b := start; b < start+uint64(2*n)+uint64(n)*itableBlocks; b++ {
			f.mark(b)
		}
	}

	f.jblocks = journalBlocks(f.blocks)
	if err := f.allocJournal(); err != nil {
		return nil, err
	}
	if err := f.mkdirs(); err != nil {
		return nil, err
	}
	return f, nil
}

// minGroupBlocks is the size below which group g cannot usefully exist: its
// superblock copy, its flex group's metadata if it starts one, and 64 blocks.
func (f *fs) minGroupBlocks(g uint32) uint64 {
	n := uint64(64)
	if hasSuper(g) {
		n += 1 + (uint64(g+1)*descSize+blockSize-1)/blockSize
	}
	if g%flexSize == 0 {
		n += 2 + itableBlocks
	}
	return n
}

// hasSuper reports whether group g holds a superblock copy (sparse_super:
// groups 0, 1 and powers of 3, 5 and 7).
func hasSuper(g uint32) bool {
	if g <= 1 {
		return true
	}
	for _, p := range []uint32{3, 5, 7} {
		n := p
		for n < g {
			n *= p
		}
		if n == g {
			return true
		}
	}
	return false
}

// journalBlocks is ext2fs_default_journal_size for 4 KiB blocks.
func journalBlocks(blocks uint64) uint64 {
	switch {
	case blocks < 32768:
		return 1024
	case blocks < 256*1024:
		return 4096
	case blocks < 512*1024:
		return 8192
	case blocks < 4096*1024:
		return 16384
	case blocks < 8192*1024:
		return 32768
	case blocks < 16384*1024:
		return 65536
	case blocks < 32768*1024:
		return 131072
	}
	return 262144
}

func (f *fs) mark(b uint64)      { f.bitmap[b/8] |= 1 << (b % 8) }
func (f *fs) used(b uint64) bool { return f.bitmap[b/8]&(1<<(b%8)) != 0 }

// alloc returns the next free block after the cursor.
func (f *fs) alloc() (uint64, error) {
	for ; f.next < f.blocks; f.next++ {
		if !f.used(f.next) {
			f.mark(f.next)
			return f.next, nil
		}
	}
	return 0, errors.New("ext4: filesystem too small for its metadata")
}

// allocJournal allocates the journal's blocks as extents of at most 32768
// blocks (the longest initialized extent) and, if they do not fit in the
// inode's 4 extent slots, one extent leaf block.
func (f *fs) allocJournal() error {
	var run *extent
	for i := uint64(0); i < f.jblocks; i++ {
		b, err := f.alloc()
		if err != nil {
			return err
		}
		if run != nil && run.start+uint64(run.length) == b && run.length < 32768 {
			run.length++
			continue
		}
		f.journal = append(f.journal, extent{logical: uint32(i), start: b, length: 1})
		run = &f.journal[len(f.journal)-1]
	}
	if len(f.journal) > 4 {
		if len(f.journal) > (blockSize-12)/12 {
			return errors.New("ext4: journal too fragmented for one extent leaf")
		}
		b, err := f.alloc()
		if err != nil {
			return err
		}
		f.jindex = b
	}
	return nil
}

// mkdirs creates the directory tree: root, lost+found, then opt.Dirs with
// their parents, inode numbers in sorted path order.
func (f *fs) mkdirs() error {
	root := &dir{ino: rootIno, parent: rootIno, mode: 0o40755}
	lf := &dir{name: "lost+found", ino: firstIno, parent: rootIno, mode: 0o40700}
	root.children = []*dir{lf}
	byName := map[string]*dir{"": root, "lost+found": lf}
	var names []string
	for _, d := range f.opt.Dirs {
		c := path.Clean("/" + d)[1:]
		if c == "" || strings.ContainsRune(c, 0) || c != strings.Trim(d, "/") {
			return fmt.Errorf("ext4: directory %q: want a clean relative path such as \"var/lib\"", d)
		}
		for p := c; p != "."; p = path.Dir(p) {
			for _, el := range strings.Split(p, "/") {
				if len(el) > 255 {
					return fmt.Errorf("ext4: directory %q: name longer than 255 bytes", d)
				}
			}
			if p == "lost+found" || strings.HasPrefix(p, "lost+found/") {
				return fmt.Errorf("ext4: directory %q: lost+found is made by the filesystem", d)
			}
			names = append(names, p)
		}
	}
	sort.Strings(names)
	ino := uint32(firstIno)
	for _, n := range names {
		if byName[n] != nil {
			continue
		}
		ino++
		if ino > inodesPerGroup {
			return fmt.Errorf("ext4: %d directories, at most %d", len(names), inodesPerGroup-firstIno)
		}
		parentName := path.Dir(n)
		if parentName == "." {
			parentName = ""
		}
		parent := byName[parentName]
		d := &dir{name: n, ino: ino, parent: parent.ino, mode: 0o40755}
		parent.children = append(parent.children, d)
		byName[n] = d
	}
	f.dirs = []*dir{root, lf}
	for i, n := range names {
		if i == 0 || n != names[i-1] {
			f.dirs = append(f.dirs, byName[n])
		}
	}
	for _, d := range f.dirs {
		nblocks := 1
		if d == lf {
			nblocks = 4 // mke2fs makes lost+found 16 KiB so e2fsck need not grow it
		}
		for range nblocks {
			b, err := f.alloc()
			if err != nil {
				return err
			}
			d.blocks = append(d.blocks, b)
		}
		sort.Slice(d.children, func(i, j int) bool { return d.children[i].name < d.children[j].name })
		if used := 24 + dirRecLen(d.children); used > blockSize-12 {
			return fmt.Errorf("ext4: directory %q: %d entries do not fit one block", "/"+d.name, len(d.children))
		}
	}
	return nil
}

func dirRecLen(children []*dir) int {
	n := 0
	for _, c := range children {
		n += recLen(len(path.Base(c.name)))
	}
	return n
}

func recLen(nameLen int) int { return (8 + nameLen + 3) &^ 3 }

func (f *fs) usedInodes() uint32 { return f.dirs[len(f.dirs)-1].ino }

// timeLo and timeExtra encode t as ext4 inode times: a signed 32-bit base
// plus two epoch bits in the extra field.
func timeLo(t int64) uint32 { return uint32(t) }
func timeExtra(t int64) uint32 {
	return uint32((t-int64(int32(uint32(t))))>>32) & 3
}
