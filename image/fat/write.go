package fat

import (
	"fmt"
	"io"
	"strings"

	"github.com/basaltos/basalt/image/tree"
)

// Options are the identity of a new filesystem.
type Options struct {
	// Label is the volume label (at most 11 characters, stored upper-case),
	// e.g. contract.BootFSLabel. Empty means "NO NAME".
	Label string
	// VolumeID is the volume serial number (derive it from the spec).
	VolumeID uint32
	// HiddenSectors is the partition's first LBA on its disk (BPB field;
	// 0 for a filesystem that is not inside a partition table).
	HiddenSectors uint32
}

// node is a tree entry placed in the filesystem.
type node struct {
	e        *tree.Entry
	content  *tree.Entry // e itself, or the target of a hard link
	parent   *node
	children []*node
	sn       [11]byte
	lfn      []byte
	first    uint32 // first cluster, 0 for an empty file
	clusters uint32
	entries  int // directory: number of 32-byte entries
}

// Write writes t as a new FAT32 filesystem of size bytes to w at offset 0
// (pass a window of the partition). Regular files and directories are
// supported; symlinks and device nodes are errors naming the path. Hard
// links become copies. Only metadata and file content are written: w must
// read as zeros elsewhere (a fresh sparse file, as disk.Write provides).
func Write(w io.WriterAt, size int64, t *tree.Tree, opt Options) error {
	g, err := newGeometry(size)
	if err != nil {
		return fmt.Errorf("fat: %w", err)
	}
	label, err := labelBytes(opt.Label)
	if err != nil {
		return fmt.Errorf("fat: %w", err)
	}
	if err := t.Check(); err != nil {
		return fmt.Errorf("fat: %w", err)
	}
	root, order, err := plan(t)
	if err != nil {
		return fmt.Errorf("fat: %w", err)
	}

	// Allocate every directory and file contiguously, in sorted order.
	cb := g.clusterBytes()
	next := uint32(2)
	for _, n := range order {
		var bytes int64
		if n.e.Type == tree.Dir {
			bytes = max(int64(n.entries)*dirEntSize, 1)
		} else {
			bytes = n.content.Size
		}
		n.clusters = uint32((bytes + cb - 1) / cb)
		if int64(next-2)+int64(n.clusters) > int64(g.clusters) {
			return fmt.Errorf("fat: %s: does not fit: the filesystem of %d bytes holds %d clusters of %d bytes", n.e.Path, size, g.clusters, cb)
		}
		if n.clusters > 0 {
			n.first = next
			next += n.clusters
		}
	}

	// The FAT: one contiguous chain per directory and file.
	fat := make([]byte, int64(g.fatSize)*sectorSize)
	le32(fat[0:], 0x0FFFFFF8)
	le32(fat[4:], eoc)
	for _, n := range order {
		for c := n.first; c < n.first+n.clusters; c++ {
			v := c + 1
			if c == n.first+n.clusters-1 {
				v = eoc
			}
			le32(fat[4*c:], v)
		}
	}
	for i := range g.nfats {
		if _, err := w.WriteAt(fat, g.fatOffset(i)); err != nil {
			return fmt.Errorf("fat: write FAT %d: %w", i+1, err)
		}
	}

	boot := bootSector(g, opt, label)
	info := fsInfo(g.clusters-(next-2), next)
	for _, base := range []int64{0, backupBootSect} {
		if _, err := w.WriteAt(boot, base*sectorSize); err != nil {
			return fmt.Errorf("fat: write boot sector: %w", err)
		}
		if _, err := w.WriteAt(info, (base+fsInfoSect)*sectorSize); err != nil {
			return fmt.Errorf("fat: write FSInfo: %w", err)
		}
	}

	for _, n := range order {
		if n.e.Type == tree.Dir {
			if err := writeDir(w, g, n, root, label); err != nil {
				return fmt.Errorf("fat: %s/: %w", n.e.Path, err)
			}
		} else if n.first != 0 {
			if err := writeContent(w, g.clusterOffset(n.first), n.content); err != nil {
				return fmt.Errorf("fat: %s: %w", n.e.Path, err)
			}
		}
	}
	return nil
}

// plan builds the node tree of t, with short and long names, and returns it
// with its nodes in t.Sorted() order.
func plan(t *tree.Tree) (*node, []*node, error) {
	nodes := map[string]*node{}
	var order []*node
	for _, e := range t.Sorted() {
		n := &node{e: e, content: e}
		switch e.Type {
		case tree.Dir:
		case tree.Regular:
			if e.Link != "" {
				n.content = t.Get(e.Link)
			}
			if n.content.Size > 0xFFFFFFFF {
				return nil, nil, fmt.Errorf("%s: %d bytes, FAT files hold at most 4 GiB - 1", e.Path, n.content.Size)
			}
		default:
			return nil, nil, fmt.Errorf("%s: FAT cannot hold a %s", e.Path, e.Type)
		}
		nodes[e.Path] = n
		order = append(order, n)
		if e.Path != "" {
			p := nodes[tree.Parent(e.Path)]
			n.parent = p
			p.children = append(p.children, n)
		}
	}
	for _, d := range order {
		if d.e.Type != tree.Dir {
			continue
		}
		d.entries = 2 // "." and "..", or the label and the end marker in the root
		namer := shortNamer{}
		seen := map[string]string{}
		// Names that are already 8.3 keep them; the others get ~N tails.
		for _, pass := range []bool{true, false} {
			for _, c := range d.children {
				name := c.e.Name()
				if _, exact := exactShort(name); exact != pass {
					continue
				}
				if err := checkLongName(name); err != nil {
					return nil, nil, fmt.Errorf("%s: %w", c.e.Path, err)
				}
				fold := strings.ToUpper(name)
				if other, dup := seen[fold]; dup {
					return nil, nil, fmt.Errorf("%s and %s differ only in case, which FAT cannot tell apart", other, c.e.Path)
				}
				seen[fold] = c.e.Path
				sn, long, err := namer.name(name)
				if err != nil {
					return nil, nil, fmt.Errorf("%s: %w", c.e.Path, err)
				}
				c.sn = sn
				if long {
					c.lfn = lfnEntries(name, sn)
				}
				d.entries += 1 + len(c.lfn)/dirEntSize
			}
		}
		if d.entries > 65536 {
			return nil, nil, fmt.Errorf("%s/: %d directory entries, FAT allows 65536", d.e.Path, d.entries)
		}
	}
	return nodes[""], order, nil
}

// writeDir writes directory n's clusters.
func writeDir(w io.WriterAt, g geometry, n, root *node, label [11]byte) error {
	buf := make([]byte, int64(n.clusters)*g.clusterBytes())
	off := 0
	put := func(b []byte) { off += copy(buf[off:], b) }
	if n == root {
		put(shortEntry(label, attrVolumeID, 0, 0, n.e.MTime))
	} else {
		parent := n.parent.first
		if n.parent == root {
			parent = 0 // ".." of a top-level directory names the root as 0
		}
		put(shortEntry(dotName("."), attrDir, n.first, 0, n.e.MTime))
		put(shortEntry(dotName(".."), attrDir, parent, 0, n.parent.e.MTime))
	}
	for _, c := range n.children {
		put(c.lfn)
		if c.e.Type == tree.Dir {
			put(shortEntry(c.sn, attrDir|attrFlags(c.e), c.first, 0, c.e.MTime))
		} else {
			put(shortEntry(c.sn, attrArchive|attrFlags(c.e), c.first, uint32(c.content.Size), c.e.MTime))
		}
	}
	_, err := w.WriteAt(buf, g.clusterOffset(n.first))
	return err
}

// attrFlags maps permissions to FAT attributes: no owner write bit means
// read-only.
func attrFlags(e *tree.Entry) byte {
	if e.Mode&0o200 == 0 {
		return attrReadOnly
	}
	return 0
}

// dotName returns the short name "." or "..".
func dotName(s string) [11]byte {
	var sn [11]byte
	copy(sn[:], fmt.Sprintf("%-11s", s))
	return sn
}

// writeContent copies e's content to w at off, checking its length.
func writeContent(w io.WriterAt, off int64, e *tree.Entry) error {
	r, err := e.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	buf := make([]byte, 1<<20)
	n, err := io.CopyBuffer(io.NewOffsetWriter(w, off), io.LimitReader(r, e.Size+1), buf)
	if err != nil {
		return err
	}
	if n != e.Size {
		return fmt.Errorf("content is %d bytes, the tree entry says %d", n, e.Size)
	}
	return nil
}

// bootSector returns the FAT32 boot sector (BPB and extended BPB).
func bootSector(g geometry, opt Options, label [11]byte) []byte {
	b := make([]byte, sectorSize)
	copy(b, []byte{0xEB, 0x58, 0x90})
	copy(b[3:11], "BASALT  ")
	le16(b[11:], sectorSize)
	b[13] = byte(g.spc)
	le16(b[14:], uint16(g.reserved))
	b[16] = byte(g.nfats)
	b[21] = 0xF8      // fixed disk
	le16(b[24:], 63)  // sectors per track (CHS, unused)
	le16(b[26:], 255) // heads (CHS, unused)
	le32(b[28:], opt.HiddenSectors)
	le32(b[32:], g.total)
	le32(b[36:], g.fatSize)
	le32(b[44:], g.rootClus)
	le16(b[48:], fsInfoSect)
	le16(b[50:], backupBootSect)
	b[64] = 0x80 // drive number
	b[66] = 0x29 // extended boot signature: the next three fields are valid
	le32(b[67:], opt.VolumeID)
	copy(b[71:82], label[:])
	copy(b[82:90], "FAT32   ")
	copy(b[90:], []byte{0xF4, 0xEB, 0xFD}) // not bootable: hlt; jmp back
	b[510], b[511] = 0x55, 0xAA
	return b
}

// fsInfo returns the FSInfo sector.
func fsInfo(free, nextFree uint32) []byte {
	b := make([]byte, sectorSize)
	le32(b[0:], 0x41615252)
	le32(b[484:], 0x61417272)
	le32(b[488:], free)
	le32(b[492:], nextFree)
	le32(b[508:], 0xAA550000)
	return b
}
