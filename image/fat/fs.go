package fat

import (
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"
	"unicode/utf16"
)

// FS is an existing FAT32 filesystem (ours, mkfs.fat's, or anyone's) in a
// byte range of a device. Open checks the boot sector; every structure read
// later is checked too, since images come from untrusted places.
type FS struct {
	dev  io.ReaderAt
	off  int64
	g    geometry
	boot []byte
	fat  []byte // the first FAT, whole
}

// DirEntry is one entry of a directory.
type DirEntry struct {
	// Name is the long name, or the short name when there is none.
	Name string
	// ShortName is the 8.3 name as "NAME.EXT".
	ShortName string
	Dir       bool
	Size      int64
	ModTime   time.Time
}

// Open reads the FAT32 filesystem at offset of dev, of size bytes (the
// partition's size).
func Open(dev io.ReaderAt, offset, size int64) (*FS, error) {
	boot := make([]byte, sectorSize)
	if _, err := dev.ReadAt(boot, offset); err != nil {
		return nil, fmt.Errorf("fat: read boot sector: %w", err)
	}
	bad := func(format string, a ...any) (*FS, error) {
		return nil, fmt.Errorf("fat: %w: %s", ErrNotFAT32, fmt.Sprintf(format, a...))
	}
	if boot[510] != 0x55 || boot[511] != 0xAA {
		return bad("no 0x55AA boot signature")
	}
	if bps := get16(boot[11:]); bps != sectorSize {
		return bad("%d bytes per sector (only 512 is supported)", bps)
	}
	g := geometry{spc: uint32(boot[13]), reserved: uint32(get16(boot[14:])), nfats: uint32(boot[16]),
		fatSize: get32(boot[36:]), total: get32(boot[32:]), rootClus: get32(boot[44:])}
	if g.spc == 0 || g.spc&(g.spc-1) != 0 {
		return bad("%d sectors per cluster", g.spc)
	}
	if g.reserved == 0 || g.nfats == 0 || g.fatSize == 0 || get16(boot[17:]) != 0 || get16(boot[22:]) != 0 || get16(boot[19:]) != 0 {
		return bad("BPB is not a FAT32 BPB (reserved %d, FATs %d, FAT32 size %d)", g.reserved, g.nfats, g.fatSize)
	}
	if int64(g.total)*sectorSize > size {
		return bad("%d sectors do not fit in %d bytes", g.total, size)
	}
	data := int64(g.total) - int64(g.reserved) - int64(g.nfats)*int64(g.fatSize)
	if data <= 0 {
		return bad("no data area")
	}
	clusters := data / int64(g.spc)
	if clusters < minClusters || clusters > maxClusters || (clusters+2)*4 > int64(g.fatSize)*sectorSize {
		return bad("%d clusters with a FAT of %d sectors", clusters, g.fatSize)
	}
	g.clusters = uint32(clusters)
	if g.rootClus < 2 || g.rootClus > g.clusters+1 {
		return bad("root cluster %d out of range", g.rootClus)
	}
	fat := make([]byte, (int64(g.clusters)+2)*4)
	if _, err := dev.ReadAt(fat, offset+g.fatOffset(0)); err != nil {
		return nil, fmt.Errorf("fat: read FAT: %w", err)
	}
	return &FS{dev: dev, off: offset, g: g, boot: boot, fat: fat}, nil
}

func (f *FS) next(c uint32) uint32 { return get32(f.fat[4*c:]) & fatMask }

// chain returns the clusters of the chain starting at first.
func (f *FS) chain(first uint32) ([]uint32, error) {
	var out []uint32
	for c := first; ; {
		if c < 2 || c > f.g.clusters+1 {
			return nil, fmt.Errorf("cluster chain from %d: cluster %d out of range", first, c)
		}
		if len(out) >= int(f.g.clusters) {
			return nil, fmt.Errorf("cluster chain from %d loops", first)
		}
		out = append(out, c)
		n := f.next(c)
		if n >= 0x0FFFFFF8 {
			return out, nil
		}
		c = n
	}
}

// readChain reads the clusters of a chain.
func (f *FS) readChain(ch []uint32) ([]byte, error) {
	cb := f.g.clusterBytes()
	buf := make([]byte, int64(len(ch))*cb)
	for i, c := range ch {
		if _, err := f.dev.ReadAt(buf[int64(i)*cb:int64(i+1)*cb], f.off+f.g.clusterOffset(c)); err != nil {
			return nil, fmt.Errorf("read cluster %d: %w", c, err)
		}
	}
	return buf, nil
}

// slot is a parsed directory entry and where it sits in its directory.
type slot struct {
	DirEntry
	sn      [11]byte
	cluster uint32
	index   int // index of the short entry in the directory
}

// dir reads the directory starting at cluster c: its raw bytes, chain and
// entries (without "." and ".." and the volume label).
func (f *FS) dir(c uint32) ([]byte, []uint32, []slot, error) {
	ch, err := f.chain(c)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(ch)*int(f.g.clusterBytes()) > 65536*dirEntSize {
		return nil, nil, nil, fmt.Errorf("directory at cluster %d is larger than FAT allows", c)
	}
	raw, err := f.readChain(ch)
	if err != nil {
		return nil, nil, nil, err
	}
	var out []slot
	var lfn []uint16
	lfnSeq, lfnSum := 0, byte(0)
	for i := 0; i*dirEntSize < len(raw); i++ {
		e := raw[i*dirEntSize : (i+1)*dirEntSize]
		if e[0] == 0 {
			break
		}
		if e[0] == 0xE5 {
			lfnSeq = 0
			continue
		}
		if e[11]&0x3F == attrLFN {
			seq := int(e[0] & 0x1F)
			if e[0]&0x40 != 0 {
				lfn, lfnSum = make([]uint16, 13*seq), e[13]
			} else if seq != lfnSeq-1 || e[13] != lfnSum {
				lfn, seq = nil, 0
			}
			lfnSeq = seq
			if seq == 0 || len(lfn) < 13*seq {
				lfnSeq = 0
				continue
			}
			for k, o := range lfnOffsets {
				lfn[(seq-1)*13+k] = get16(e[o:])
			}
			continue
		}
		var sn [11]byte
		copy(sn[:], e[:11])
		long := ""
		if lfnSeq == 1 && lfnChecksum(sn) == lfnSum {
			u := lfn
			if k := indexU16(u, 0); k >= 0 {
				u = u[:k]
			}
			long = string(utf16.Decode(u))
		}
		lfnSeq = 0
		if e[11]&attrVolumeID != 0 || sn == dotName(".") || sn == dotName("..") {
			continue
		}
		short := shortString(sn, e[12])
		if long == "" {
			long = short
		}
		out = append(out, slot{
			DirEntry: DirEntry{Name: long, ShortName: shortString(sn, 0), Dir: e[11]&attrDir != 0,
				Size: int64(get32(e[28:])), ModTime: fromFATTime(get16(e[24:]), get16(e[22:]))},
			sn: sn, cluster: uint32(get16(e[20:]))<<16 | uint32(get16(e[26:])), index: i,
		})
	}
	return raw, ch, out, nil
}

func indexU16(u []uint16, v uint16) int {
	for i, x := range u {
		if x == v {
			return i
		}
	}
	return -1
}

// shortString formats a short name as NAME.EXT; flags bits 0x08 and 0x10
// (Windows NT) ask for a lower-case base and extension.
func shortString(sn [11]byte, flags byte) string {
	base := strings.TrimRight(string(sn[:8]), " ")
	ext := strings.TrimRight(string(sn[8:]), " ")
	if base != "" && base[0] == 0x05 {
		base = "\xE5" + base[1:]
	}
	if flags&0x08 != 0 {
		base = strings.ToLower(base)
	}
	if flags&0x10 != 0 {
		ext = strings.ToLower(ext)
	}
	if ext == "" {
		return base
	}
	return base + "." + ext
}

// walk finds the entry at slash-separated path p. The root has no slot:
// walk returns nil for it.
func (f *FS) walk(p string) (*slot, error) {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil, nil
	}
	c := f.g.rootClus
	var cur *slot
	for _, el := range strings.Split(p, "/") {
		if cur != nil && !cur.Dir {
			return nil, fmt.Errorf("%s: %s is not a directory", p, cur.Name)
		}
		_, _, ents, err := f.dir(c)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		cur = lookup(ents, el)
		if cur == nil {
			return nil, fmt.Errorf("%s: %w", p, errNotExist)
		}
		c = cur.cluster
	}
	return cur, nil
}

// errNotExist is fs.ErrNotExist, so callers can tell a missing file.
var errNotExist = fs.ErrNotExist

func lookup(ents []slot, name string) *slot {
	for i := range ents {
		if strings.EqualFold(ents[i].Name, name) || strings.EqualFold(ents[i].ShortName, name) {
			return &ents[i]
		}
	}
	return nil
}

// Names lists the names in the directory at p (contract/ab's Reader).
func (f *FS) Names(p string) ([]string, error) {
	ents, err := f.ReadDir(p)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ents))
	for i, e := range ents {
		out[i] = e.Name
	}
	return out, nil
}

// ReadDir lists the directory at p ("" or "/" is the root), in on-disk order.
func (f *FS) ReadDir(p string) ([]DirEntry, error) {
	s, err := f.walk(p)
	if err != nil {
		return nil, fmt.Errorf("fat: %w", err)
	}
	c := f.g.rootClus
	if s != nil {
		if !s.Dir {
			return nil, fmt.Errorf("fat: %s: not a directory", p)
		}
		c = s.cluster
	}
	_, _, ents, err := f.dir(c)
	if err != nil {
		return nil, fmt.Errorf("fat: %s: %w", p, err)
	}
	out := make([]DirEntry, len(ents))
	for i, e := range ents {
		out[i] = e.DirEntry
	}
	return out, nil
}

// ReadFile returns the content of the file at p.
func (f *FS) ReadFile(p string) ([]byte, error) {
	s, err := f.walk(p)
	if err != nil {
		return nil, fmt.Errorf("fat: %w", err)
	}
	if s == nil || s.Dir {
		return nil, fmt.Errorf("fat: %s: is a directory", p)
	}
	if s.Size == 0 {
		return []byte{}, nil
	}
	ch, err := f.chain(s.cluster)
	if err != nil {
		return nil, fmt.Errorf("fat: %s: %w", p, err)
	}
	if int64(len(ch))*f.g.clusterBytes() < s.Size {
		return nil, fmt.Errorf("fat: %s: %d bytes in %d clusters", p, s.Size, len(ch))
	}
	b, err := f.readChain(ch)
	if err != nil {
		return nil, fmt.Errorf("fat: %s: %w", p, err)
	}
	return b[:s.Size], nil
}

// Label returns the volume label of the boot sector.
func (f *FS) Label() string { return strings.TrimRight(string(f.boot[71:82]), " ") }

// VolumeID returns the volume serial number.
func (f *FS) VolumeID() uint32 { return get32(f.boot[67:]) }
