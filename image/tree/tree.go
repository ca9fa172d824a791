// Package tree is the builder's in-memory file tree: every artifact that holds
// files (squashfs root, initramfs, boot partition) is first assembled as a
// Tree, then written in sorted order with normalised metadata.
package tree

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
)

// Type is the kind of a tree entry.
type Type uint8

const (
	Regular Type = iota
	Dir
	Symlink
	CharDev
	BlockDev
	FIFO
	Socket
)

func (t Type) String() string {
	switch t {
	case Regular:
		return "file"
	case Dir:
		return "dir"
	case Symlink:
		return "symlink"
	case CharDev:
		return "chardev"
	case BlockDev:
		return "blockdev"
	case FIFO:
		return "fifo"
	case Socket:
		return "socket"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// PermMask is the part of fs.FileMode an entry keeps: permission bits plus
// setuid, setgid and sticky.
const PermMask = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// UnixPerm returns the bits of PermMask in Unix encoding (07777), as
// squashfs inodes and cpio headers store them.
func UnixPerm(m fs.FileMode) uint32 {
	p := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}

// Entry is one node of the tree.
type Entry struct {
	// Path is slash-separated and relative to the root ("" is the root
	// itself, "etc/hosts" a file in /etc).
	Path string
	Type Type
	// Mode holds only the bits of PermMask.
	Mode     fs.FileMode
	UID, GID uint32
	// MTime is in seconds since the Unix epoch.
	MTime int64

	// Size is the length of a regular file's content; Open must yield
	// exactly Size bytes (writers check and fail naming the path).
	Size int64
	Open func() (io.ReadCloser, error)
	// Link, for a regular file, names the path of another regular file this
	// entry is a hard link to (it then has no content of its own).
	Link string

	// Target is a symlink's target.
	Target string
	// Major and Minor number a device node.
	Major, Minor uint32
	// Xattrs are extended attributes, e.g. "security.capability".
	Xattrs map[string][]byte
}

// Name returns the last element of the entry's path ("" for the root).
func (e *Entry) Name() string { return e.Path[strings.LastIndexByte(e.Path, '/')+1:] }

// Parent returns the path of the directory holding p ("" for top-level entries).
func Parent(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

// Tree is a set of entries keyed by path, with the epoch used for entries
// whose mtime is not given.
type Tree struct {
	Epoch   int64
	entries map[string]*Entry
}

// New returns a tree holding only its root directory (mode 0755, root-owned).
func New(epoch int64) *Tree {
	t := &Tree{Epoch: epoch, entries: map[string]*Entry{}}
	t.entries[""] = &Entry{Path: "", Type: Dir, Mode: 0o755, MTime: epoch}
	return t
}

// Clean validates p as a tree path and returns it in canonical form: no
// leading slash, no "." or ".." elements, no empty elements, no NUL.
func Clean(p string) (string, error) {
	if strings.IndexByte(p, 0) >= 0 {
		return "", fmt.Errorf("path %q: contains NUL", p)
	}
	p = strings.TrimPrefix(p, "/")
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return "", nil
	}
	for _, el := range strings.Split(p, "/") {
		switch el {
		case "":
			return "", fmt.Errorf("path %q: empty element", p)
		case ".", "..":
			return "", fmt.Errorf("path %q: %q escapes or aliases the tree", p, el)
		}
		if len(el) > 255 {
			return "", fmt.Errorf("path %q: element longer than 255 bytes", p)
		}
	}
	return p, nil
}

// Add inserts e, replacing an entry at the same path, and creates missing
// parent directories (mode 0755, root-owned, epoch mtime). Replacing a
// directory keeps its children.
func (t *Tree) Add(e Entry) error {
	p, err := Clean(e.Path)
	if err != nil {
		return err
	}
	e.Path = p
	if e.Mode&^PermMask != 0 {
		return fmt.Errorf("%s: mode %v has bits outside permissions/setuid/setgid/sticky", p, e.Mode)
	}
	switch e.Type {
	case Regular:
		if e.Link != "" {
			l, err := Clean(e.Link)
			if err != nil {
				return fmt.Errorf("%s: hard link: %w", p, err)
			}
			e.Link = l
		} else if e.Size < 0 {
			return fmt.Errorf("%s: negative size", p)
		} else if e.Open == nil && e.Size > 0 {
			return fmt.Errorf("%s: regular file of %d bytes without content", p, e.Size)
		}
	case Symlink:
		if e.Target == "" {
			return fmt.Errorf("%s: symlink with empty target", p)
		}
	case Dir, CharDev, BlockDev, FIFO, Socket:
	default:
		return fmt.Errorf("%s: unknown type %d", p, e.Type)
	}
	if p == "" && e.Type != Dir {
		return fmt.Errorf("root must be a directory")
	}
	if p != "" {
		if err := t.mkdirAll(Parent(p)); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	if old, ok := t.entries[p]; ok && old.Type == Dir && e.Type != Dir {
		if len(t.Children(p)) > 0 {
			return fmt.Errorf("%s: cannot replace a non-empty directory with a %s", p, e.Type)
		}
	}
	t.entries[p] = &e
	return nil
}

func (t *Tree) mkdirAll(dir string) error {
	if e, ok := t.entries[dir]; ok {
		if e.Type != Dir {
			return fmt.Errorf("parent %q is a %s, not a directory", dir, e.Type)
		}
		return nil
	}
	if err := t.mkdirAll(Parent(dir)); err != nil {
		return err
	}
	t.entries[dir] = &Entry{Path: dir, Type: Dir, Mode: 0o755, MTime: t.Epoch}
	return nil
}

// Mkdir adds a directory with the given mode (root-owned, epoch mtime).
func (t *Tree) Mkdir(p string, mode fs.FileMode) error {
	return t.Add(Entry{Path: p, Type: Dir, Mode: mode, MTime: t.Epoch})
}

// AddBytes adds a root-owned regular file with the given content.
func (t *Tree) AddBytes(p string, mode fs.FileMode, data []byte) error {
	return t.Add(Entry{Path: p, Type: Regular, Mode: mode, MTime: t.Epoch, Size: int64(len(data)), Open: BytesOpener(data)})
}

// AddSymlink adds a root-owned symlink.
func (t *Tree) AddSymlink(p, target string) error {
	return t.Add(Entry{Path: p, Type: Symlink, Mode: 0o777, MTime: t.Epoch, Target: target})
}

// AddHostFile adds the regular file at hostPath, read when written, keeping
// its permission bits; owner root and epoch mtime unless changed later.
func (t *Tree) AddHostFile(p, hostPath string, mode fs.FileMode) error {
	fi, err := os.Stat(hostPath)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", hostPath)
	}
	return t.Add(Entry{Path: p, Type: Regular, Mode: mode, MTime: t.Epoch, Size: fi.Size(), Open: FileOpener(hostPath)})
}

// Get returns the entry at p, or nil.
func (t *Tree) Get(p string) *Entry {
	p, err := Clean(p)
	if err != nil {
		return nil
	}
	return t.entries[p]
}

// Remove deletes p and everything below it.
func (t *Tree) Remove(p string) {
	p, err := Clean(p)
	if err != nil || p == "" {
		return
	}
	for k := range t.entries {
		if k == p || strings.HasPrefix(k, p+"/") {
			delete(t.entries, k)
		}
	}
}

// Len returns the number of entries, the root included.
func (t *Tree) Len() int { return len(t.entries) }

// Children returns the direct children of dir, sorted by name (byte order).
func (t *Tree) Children(dir string) []*Entry {
	var out []*Entry
	for p, e := range t.entries {
		if p != "" && Parent(p) == dir {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Sorted returns every entry, parents before children and siblings in byte
// order of their names: the order writers use, independent of insertion order.
func (t *Tree) Sorted() []*Entry {
	out := make([]*Entry, 0, len(t.entries))
	for _, e := range t.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return less(out[i].Path, out[j].Path) })
	return out
}

// less orders paths element by element so that "a/b" comes before "a-b"
// (a parent's subtree stays contiguous) and "" (the root) comes first.
// It compares bytes without allocating: at the first difference, a path
// whose element ends there ('/') is the smaller.
func less(a, b string) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if ca, cb := a[i], b[i]; ca != cb {
			switch {
			case ca == '/':
				return true
			case cb == '/':
				return false
			}
			return ca < cb
		}
	}
	return len(a) < len(b)
}

// Check verifies the tree's references: every hard link names an existing
// regular file that is not itself a link.
func (t *Tree) Check() error {
	var errs []error
	for _, e := range t.Sorted() {
		if e.Type == Regular && e.Link != "" {
			to, ok := t.entries[e.Link]
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("%s: hard link to missing %q", e.Path, e.Link))
			case to.Type != Regular || to.Link != "":
				errs = append(errs, fmt.Errorf("%s: hard link to %q, which is not a regular file with content", e.Path, e.Link))
			}
		}
	}
	return errors.Join(errs...)
}

// BytesOpener returns an Open function for in-memory content.
func BytesOpener(b []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

// FileOpener returns an Open function that opens a host file when called.
func FileOpener(hostPath string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return os.Open(hostPath) }
}
