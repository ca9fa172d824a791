package squashfs

import (
	"bufio"
	"fmt"
	"io"
	"sync"

	"github.com/basaltos/basalt/image/compress"
	"github.com/basaltos/basalt/image/tree"
)

// Basic inode types; the extended variant of each is +7.
const (
	typeDir = iota + 1
	typeFile
	typeSymlink
	typeBlockDev
	typeCharDev
	typeFIFO
	typeSocket
	extended = 7
)

// Superblock flags.
const (
	flagNoInodeComp = 0x0001
	flagNoDataComp  = 0x0002
	flagNoFragComp  = 0x0008
	flagAlwaysFrags = 0x0020
	flagDuplicates  = 0x0040
	flagExportable  = 0x0080
	flagNoXattrComp = 0x0100
	flagNoXattrs    = 0x0200
	flagNoIDComp    = 0x0800
	noTable         = 0xFFFFFFFFFFFFFFFF
)

type builder struct {
	opt   Options
	comp  compressor
	tree  *tree.Tree
	l     *plan
	out   *countingWriter
	bufs  sync.Pool
	frags []fragEntry
	stats Stats
}

// countingWriter buffers sequential writes and counts the bytes.
type countingWriter struct {
	ws io.WriteSeeker
	bw *bufio.Writer
	n  int64
}

func newCountingWriter(w io.WriteSeeker) *countingWriter {
	return &countingWriter{ws: w, bw: bufio.NewWriterSize(w, 1<<20)}
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.bw.Write(p)
	c.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("write image: %w", err)
	}
	return n, nil
}

// sb is the superblock's variable part.
type sb struct {
	rootRef, bytesUsed                                   uint64
	idStart, xattrStart, inodeStart, dirStart, fragStart uint64
	exportStart                                          uint64
	flags                                                uint16
}

func (b *builder) write() error {
	if _, err := b.out.Write(make([]byte, superblockSize)); err != nil {
		return err
	}
	if err := b.writeData(); err != nil {
		return err
	}
	s := sb{exportStart: noTable, xattrStart: noTable, flags: flagAlwaysFrags | flagDuplicates}
	if b.opt.Compression == compress.None {
		s.flags |= flagNoInodeComp | flagNoDataComp | flagNoFragComp | flagNoXattrComp | flagNoIDComp
	}
	inodes, dirs, err := b.inodeAndDirTables()
	if err != nil {
		return err
	}
	s.rootRef = b.l.order[len(b.l.order)-1].ref
	s.inodeStart = uint64(b.out.n)
	s.dirStart = s.inodeStart + uint64(len(inodes))
	if err := b.writeAll(inodes, dirs); err != nil {
		return err
	}

	frag := le{}
	for _, f := range b.frags {
		frag = frag.u64(f.start).u32(f.size).u32(0)
	}
	if s.fragStart, err = b.indexedTable(frag); err != nil {
		return err
	}
	if b.opt.ExportTable {
		exp := le{}
		for _, n := range b.l.order {
			exp = exp.u64(n.ref)
		}
		if s.exportStart, err = b.indexedTable(exp); err != nil {
			return err
		}
		s.flags |= flagExportable
	}
	ids := le{}
	for _, id := range b.l.ids {
		ids = ids.u32(id)
	}
	if s.idStart, err = b.indexedTable(ids); err != nil {
		return err
	}
	if len(b.l.xattrs) == 0 {
		s.flags |= flagNoXattrs
	} else if s.xattrStart, err = b.xattrTable(); err != nil {
		return err
	}
	s.bytesUsed = uint64(b.out.n)
	if pad := -b.out.n & (padTo - 1); pad > 0 {
		if _, err := b.out.Write(make([]byte, pad)); err != nil {
			return err
		}
	}
	return b.finish(s)
}

func (b *builder) writeAll(parts ...[]byte) error {
	for _, p := range parts {
		if _, err := b.out.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// indexedTable writes a table of fixed-size entries as metadata blocks
// followed by the list of their positions, and returns the list's offset.
func (b *builder) indexedTable(entries []byte) (uint64, error) {
	m := newMeta(b.comp)
	m.write(entries)
	blocks, err := m.finish()
	if err != nil {
		return 0, err
	}
	start := uint64(b.out.n)
	index := le{}
	for _, s := range m.starts {
		index = index.u64(start + uint64(s))
	}
	return start + uint64(len(blocks)), b.writeAll(blocks, index)
}

// xattrTable writes the key/value blocks, the id blocks and the id table
// header with its index, which must end the image.
func (b *builder) xattrTable() (uint64, error) {
	kv := newMeta(b.comp)
	ids := le{}
	for _, s := range b.l.xattrs {
		ids = ids.u64(kv.ref()).u32(uint32(s.count)).u32(uint32(len(s.kv)))
		kv.write(s.kv)
	}
	kvBlocks, err := kv.finish()
	if err != nil {
		return 0, err
	}
	kvStart := uint64(b.out.n)
	if err := b.writeAll(kvBlocks); err != nil {
		return 0, err
	}
	m := newMeta(b.comp)
	m.write(ids)
	idBlocks, err := m.finish()
	if err != nil {
		return 0, err
	}
	idStart := uint64(b.out.n)
	hdr := le{}.u64(kvStart).u32(uint32(len(b.l.xattrs))).u32(0)
	for _, s := range m.starts {
		hdr = hdr.u64(idStart + uint64(s))
	}
	return idStart + uint64(len(idBlocks)), b.writeAll(idBlocks, hdr)
}

// finish writes the superblock at offset 0 and leaves w at the image end.
func (b *builder) finish(s sb) error {
	if err := b.out.bw.Flush(); err != nil {
		return fmt.Errorf("write image: %w", err)
	}
	blockLog := uint16(0)
	for 1<<blockLog < b.opt.BlockSize {
		blockLog++
	}
	sup := le{}.u32(0x73717368).u32(uint32(len(b.l.order))).u32(uint32(b.tree.Epoch)).
		u32(uint32(b.opt.BlockSize)).u32(uint32(len(b.frags))).
		u16(b.comp.id()).u16(blockLog).u16(s.flags).u16(uint16(len(b.l.ids))).u16(4).u16(0).
		u64(s.rootRef).u64(s.bytesUsed).u64(s.idStart).u64(s.xattrStart).u64(s.inodeStart).
		u64(s.dirStart).u64(s.fragStart).u64(s.exportStart)
	if _, err := b.out.ws.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("seek image: %w", err)
	}
	if _, err := b.out.ws.Write(sup); err != nil {
		return fmt.Errorf("write superblock: %w", err)
	}
	if _, err := b.out.ws.Seek(b.out.n, io.SeekStart); err != nil {
		return fmt.Errorf("seek image: %w", err)
	}
	b.stats.Inodes = len(b.l.order)
	b.stats.BytesUsed = int64(s.bytesUsed)
	b.stats.Size = b.out.n
	return nil
}

// inodeAndDirTables writes every inode in plan order, each directory's
// listing just before its inode.
func (b *builder) inodeAndDirTables() (inodes, dirs []byte, err error) {
	im, dm := newMeta(b.comp), newMeta(b.comp)
	for _, n := range b.l.order {
		var ino le
		if n.e.Type == tree.Dir {
			ino = b.dirInode(dm, n)
		} else {
			ino = b.inode(n)
		}
		n.ref = im.ref()
		im.write(ino)
	}
	if inodes, err = im.finish(); err != nil {
		return nil, nil, err
	}
	dirs, err = dm.finish()
	return inodes, dirs, err
}

func (b *builder) header(n *node, typ uint16) le {
	e := n.e
	return le{}.u16(typ).u16(uint16(tree.UnixPerm(e.Mode))).u16(b.l.idIdx[e.UID]).u16(b.l.idIdx[e.GID]).
		u32(uint32(e.MTime)).u32(n.ino)
}

var basicType = map[tree.Type]uint16{
	tree.Dir: typeDir, tree.Regular: typeFile, tree.Symlink: typeSymlink,
	tree.BlockDev: typeBlockDev, tree.CharDev: typeCharDev, tree.FIFO: typeFIFO, tree.Socket: typeSocket,
}

// inode encodes a non-directory inode, extended only where needed.
func (b *builder) inode(n *node) le {
	e, ext := n.e, n.xattr != noXattr
	typ := basicType[e.Type]
	switch e.Type {
	case tree.Regular:
		r := n.rec.stored()
		if ext || n.nlink > 1 || r.start > 0xFFFFFFFF || n.rec.size > 0xFFFFFFFF || r.sparse > 0 {
			out := b.header(n, typ+extended).u64(r.start).u64(uint64(n.rec.size)).u64(r.sparse).
				u32(n.nlink).u32(r.frag).u32(r.fragOff).u32(n.xattr)
			return appendBlocks(out, r.blocks)
		}
		out := b.header(n, typ).u32(uint32(r.start)).u32(r.frag).u32(r.fragOff).u32(uint32(n.rec.size))
		return appendBlocks(out, r.blocks)
	case tree.Symlink:
		if ext {
			typ += extended
		}
		out := b.header(n, typ).u32(n.nlink).u32(uint32(len(e.Target)))
		return xattrSuffix(append(out, e.Target...), ext, n.xattr)
	case tree.CharDev, tree.BlockDev:
		if ext {
			typ += extended
		}
		dev := e.Minor&0xFF | e.Major<<8 | (e.Minor&^0xFF)<<12
		return xattrSuffix(b.header(n, typ).u32(n.nlink).u32(dev), ext, n.xattr)
	default: // FIFO, Socket
		if ext {
			typ += extended
		}
		return xattrSuffix(b.header(n, typ).u32(n.nlink), ext, n.xattr)
	}
}

func appendBlocks(out le, blocks []uint32) le {
	for _, s := range blocks {
		out = out.u32(s)
	}
	return out
}

func xattrSuffix(out le, ext bool, x uint32) le {
	if ext {
		return out.u32(x)
	}
	return out
}

// dirInode writes n's listing to dm and returns its inode. Entries are
// grouped under headers that share an inode block and a base inode number
// (at most 256 each); a new header also starts in each new directory
// metadata block, and those headers are indexed for fast lookup.
func (b *builder) dirInode(dm *metaWriter, n *node) le {
	type index struct {
		off   uint32
		start uint32
		name  string
	}
	startRef, startU := dm.ref(), dm.ulen
	var idx []index
	lastIdxBlock := startU / metaSize
	for i := 0; i < len(n.kids); {
		first := n.kids[i].n
		blk, base := uint32(first.ref>>16), first.ino
		hdrU := dm.ulen
		j := i + 1
		u := hdrU + 12 + 8 + int64(len(n.kids[i].name))
		for ; j < len(n.kids) && j-i < 256; j++ {
			k := n.kids[j].n
			d := int64(k.ino) - int64(base)
			if uint32(k.ref>>16) != blk || d < -32768 || d > 32767 || u/metaSize != hdrU/metaSize {
				break
			}
			u += 8 + int64(len(n.kids[j].name))
		}
		if i > 0 && hdrU/metaSize != lastIdxBlock {
			idx = append(idx, index{uint32(hdrU - startU), uint32(dm.ref() >> 16), n.kids[i].name})
			lastIdxBlock = hdrU / metaSize
		}
		dm.write(le{}.u32(uint32(j - i - 1)).u32(blk).u32(base))
		for _, k := range n.kids[i:j] {
			typ := basicType[k.n.e.Type]
			d := int16(int64(k.n.ino) - int64(base))
			ent := le{}.u16(uint16(k.n.ref)).u16(uint16(d)).u16(typ).u16(uint16(len(k.name) - 1))
			dm.write(append(ent, k.name...))
		}
		i = j
	}
	size := uint64(dm.ulen-startU) + 3
	block, offset := uint32(startRef>>16), uint16(startRef)
	if len(idx) == 0 && size <= 0xFFFF && n.xattr == noXattr {
		return b.header(n, typeDir).u32(block).u32(n.nlink).u16(uint16(size)).u16(offset).u32(n.parent)
	}
	out := b.header(n, typeDir+extended).u32(n.nlink).u32(uint32(size)).u32(block).u32(n.parent).
		u16(uint16(len(idx))).u16(offset).u32(n.xattr)
	for _, x := range idx {
		out = out.u32(x.off).u32(x.start).u32(uint32(len(x.name) - 1))
		out = append(out, x.name...)
	}
	return out
}
