package squashfs

import (
	"fmt"
	"sort"
	"strings"

	"github.com/basaltos/basalt/image/tree"
)

// node is one inode. Hard links share the node of their target.
type node struct {
	e      *tree.Entry // metadata and content (a hard link's target)
	ino    uint32      // inode number, 1-based, in write order
	nlink  uint32
	kids   []dirent // a directory's entries, sorted by name
	parent uint32   // a directory's parent inode number
	rec    *fileRec // a regular file's data placement
	xattr  uint32   // index into the xattr id table, or noXattr
	ref    uint64   // inode reference, known once written
}

type dirent struct {
	name string
	n    *node
}

// plan is the inode order: children before their directory, the root last,
// so every directory entry's inode reference is known when the directory is
// written. Regular files' data follows the same order, except that files
// smaller than a block come last, grouped by extension (see fileOrder).
type plan struct {
	order  []*node
	files  []*node // regular files with content, in order
	ids    []uint32
	idIdx  map[uint32]uint16
	xattrs []xattrSet
}

type xattrSet struct {
	kv    []byte // encoded key/value pairs
	count int
}

const (
	noXattr = 0xFFFFFFFF
	noFrag  = 0xFFFFFFFF
)

var xattrPrefixes = []struct {
	prefix string
	typ    uint16
}{{"user.", 0}, {"trusted.", 1}, {"security.", 2}}

// layout orders t's entries into inodes and validates what the format
// cannot hold, naming the path.
func layout(t *tree.Tree) (*plan, error) {
	sorted := t.Sorted()
	kids := map[string][]*tree.Entry{}
	links := map[string]uint32{}
	for _, e := range sorted[1:] {
		kids[tree.Parent(e.Path)] = append(kids[tree.Parent(e.Path)], e)
		if e.Type == tree.Regular && e.Link != "" {
			links[e.Link]++
		}
	}
	p := &plan{idIdx: map[uint32]uint16{}}
	files := map[string]*node{}
	xattrIDs := map[string]uint32{}
	var err error
	add := func(n *node) {
		if err == nil {
			err = p.check(n.e)
		}
		if err == nil {
			n.xattr, err = p.addXattrs(n.e, xattrIDs)
		}
		p.order = append(p.order, n)
		n.ino = uint32(len(p.order))
		p.ids = append(p.ids, n.e.UID, n.e.GID)
	}
	var visit func(d *tree.Entry) *node
	visit = func(d *tree.Entry) *node {
		n := &node{e: d, nlink: 2}
		var subdirs []*node
		for _, c := range kids[d.Path] {
			var cn *node
			switch {
			case c.Type == tree.Dir:
				cn = visit(c)
				subdirs = append(subdirs, cn)
				n.nlink++
			case c.Type == tree.Regular:
				target := c.Path
				if c.Link != "" {
					target = c.Link
				}
				if cn = files[target]; cn == nil {
					te := t.Get(target)
					cn = &node{e: te, nlink: 1 + links[target], rec: &fileRec{size: te.Size, frag: noFrag}}
					files[target] = cn
					add(cn)
					if te.Size > 0 {
						p.files = append(p.files, cn)
					}
				}
			default:
				cn = &node{e: c, nlink: 1}
				add(cn)
			}
			n.kids = append(n.kids, dirent{c.Name(), cn})
		}
		add(n)
		for _, s := range subdirs {
			s.parent = n.ino
		}
		return n
	}
	root := visit(sorted[0])
	root.parent = uint32(len(p.order)) + 1 // as mksquashfs: one past the last inode
	if err != nil {
		return nil, err
	}
	sort.Slice(p.ids, func(i, j int) bool { return p.ids[i] < p.ids[j] })
	uniq := p.ids[:0]
	for i, id := range p.ids {
		if i == 0 || id != p.ids[i-1] {
			p.idIdx[id] = uint16(len(uniq))
			uniq = append(uniq, id)
		}
	}
	p.ids = uniq
	if len(p.ids) > 1<<16 {
		return nil, fmt.Errorf("%d distinct uids/gids: squashfs holds at most 65536", len(p.ids))
	}
	return p, nil
}

// check rejects what squashfs cannot represent.
func (p *plan) check(e *tree.Entry) error {
	name := e.Name()
	if e.Path != "" && (name == "" || len(name) > 256 || strings.ContainsAny(name, "/\x00")) {
		return fmt.Errorf("%q: invalid name", e.Path)
	}
	if e.MTime < 0 || e.MTime > 1<<32-1 {
		return fmt.Errorf("%s: mtime %d does not fit squashfs's unsigned 32-bit time", e.Path, e.MTime)
	}
	if e.Mode&^tree.PermMask != 0 {
		return fmt.Errorf("%s: mode %v has bits outside permissions/setuid/setgid/sticky", e.Path, e.Mode)
	}
	switch e.Type {
	case tree.Symlink:
		if e.Target == "" || len(e.Target) > 4095 || strings.IndexByte(e.Target, 0) >= 0 {
			return fmt.Errorf("%s: symlink target of %d bytes: want 1-4095 bytes without NUL", e.Path, len(e.Target))
		}
	case tree.CharDev, tree.BlockDev:
		if e.Major > 0xFFF || e.Minor > 0xFFFFF {
			return fmt.Errorf("%s: device %d:%d: major must be < 4096, minor < 1048576", e.Path, e.Major, e.Minor)
		}
	case tree.Regular:
		if e.Size < 0 || (e.Size > 0 && e.Open == nil) {
			return fmt.Errorf("%s: regular file of %d bytes without content", e.Path, e.Size)
		}
	}
	return nil
}

// addXattrs returns the xattr id of e's attributes, adding the set to the
// table unless an identical set is already there.
func (p *plan) addXattrs(e *tree.Entry, ids map[string]uint32) (uint32, error) {
	if len(e.Xattrs) == 0 {
		return noXattr, nil
	}
	names := make([]string, 0, len(e.Xattrs))
	for k := range e.Xattrs {
		names = append(names, k)
	}
	sort.Strings(names)
	var kv le
	for _, k := range names {
		typ, short, ok := uint16(0), "", false
		for _, px := range xattrPrefixes {
			if s, found := strings.CutPrefix(k, px.prefix); found && s != "" {
				typ, short, ok = px.typ, s, true
			}
		}
		if !ok || len(short) > 0xFFFF {
			return 0, fmt.Errorf("%s: xattr %q: squashfs holds only user.*, trusted.* and security.* names", e.Path, k)
		}
		v := e.Xattrs[k]
		kv = kv.u16(typ).u16(uint16(len(short)))
		kv = append(kv, short...)
		kv = kv.u32(uint32(len(v)))
		kv = append(kv, v...)
	}
	if id, ok := ids[string(kv)]; ok {
		return id, nil
	}
	id := uint32(len(p.xattrs))
	ids[string(kv)] = id
	p.xattrs = append(p.xattrs, xattrSet{kv: kv, count: len(names)})
	return id, nil
}
