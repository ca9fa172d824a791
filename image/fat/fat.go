// Package fat writes and edits FAT32 filesystems in pure Go, for the boot
// partition.
//
// Write lays a whole *tree.Tree out as a fresh FAT32 filesystem: every file
// and directory contiguous, in the tree's sorted order, with deterministic
// 8.3 short names next to VFAT long names, timestamps from the entries'
// MTime (FAT local time taken as UTC), the volume ID and label given by the
// caller, a clean (not dirty) FAT, an FSInfo sector and a backup boot sector
// at sector 6. Open reads an existing FAT32 filesystem (ours or mkfs.fat's)
// and AddFile creates or replaces one file in it.
//
// go-diskfs v1.9.4's fat32 package only formats an empty filesystem (no
// files, no directories, volume ID random or zero), so it is not used here.
package fat

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"
)

const (
	sectorSize = 512
	dirEntSize = 32
	// minClusters is the least number of clusters of a FAT32 filesystem
	// (fewer and every driver reads it as FAT16).
	minClusters = 65525
	// maxClusters keeps cluster numbers below the reserved 0x0FFFFFF7.
	maxClusters = 0x0FFFFFF5
	eoc         = 0x0FFFFFFF
	badCluster  = 0x0FFFFFF7
	fatMask     = 0x0FFFFFFF

	attrReadOnly = 0x01
	attrVolumeID = 0x08
	attrDir      = 0x10
	attrArchive  = 0x20
	attrLFN      = 0x0F

	reservedSectors = 32
	backupBootSect  = 6
	fsInfoSect      = 1
)

// ErrNotFAT32 is returned (wrapped) when bytes do not hold a FAT32 filesystem.
var ErrNotFAT32 = errors.New("not a FAT32 filesystem")

// ClusterSize returns the cluster size in bytes mkfs.fat (dosfstools 4.2)
// picks for a FAT32 filesystem of size bytes: 512 up to 260 MiB (a 256 MiB
// boot partition gets 512-byte clusters, ~520,000 of them), 4 KiB up to
// 8 GiB, 8 KiB up to 16 GiB, 16 KiB up to 32 GiB, then 32 KiB.
func ClusterSize(size int64) int64 {
	const mib, gib = 1 << 20, 1 << 30
	switch {
	case size <= 260*mib:
		return 512
	case size <= 8*gib:
		return 4096
	case size <= 16*gib:
		return 8192
	case size <= 32*gib:
		return 16384
	}
	return 32768
}

// geometry is the layout of a FAT32 filesystem, in sectors.
type geometry struct {
	spc      uint32 // sectors per cluster
	reserved uint32
	nfats    uint32
	fatSize  uint32 // sectors per FAT
	total    uint32 // sectors
	rootClus uint32
	clusters uint32 // data clusters (numbered 2..clusters+1)
}

func (g geometry) clusterBytes() int64 { return int64(g.spc) * sectorSize }
func (g geometry) fatOffset(i uint32) int64 {
	return int64(g.reserved+i*g.fatSize) * sectorSize
}
func (g geometry) dataOffset() int64 { return int64(g.reserved+g.nfats*g.fatSize) * sectorSize }
func (g geometry) clusterOffset(c uint32) int64 {
	return g.dataOffset() + int64(c-2)*g.clusterBytes()
}

// newGeometry computes the layout of a FAT32 of size bytes with mkfs.fat's
// cluster size: 32 reserved sectors (more if needed so that the data area
// starts on a cluster boundary), two FATs.
func newGeometry(size int64) (geometry, error) {
	total := size / sectorSize
	if total > 0xFFFFFFFF {
		return geometry{}, fmt.Errorf("size %d exceeds the FAT32 maximum of 2 TiB", size)
	}
	g := geometry{spc: uint32(ClusterSize(size) / sectorSize), reserved: reservedSectors, nfats: 2, total: uint32(total), rootClus: 2}
	// The smallest FAT that covers the clusters left after the FATs, as
	// mkfs.fat computes it: fat*512 >= ((total-reserved-2*fat)/spc+2)*4.
	spc := int64(g.spc)
	avail := int64(g.total) - reservedSectors
	if avail <= 0 {
		return geometry{}, fmt.Errorf("size %d bytes is too small for FAT32", size)
	}
	g.fatSize = uint32(((avail+2*spc)*4 + sectorSize*spc + 8 - 1) / (sectorSize*spc + 8))
	if r := (g.reserved + g.nfats*g.fatSize) % g.spc; r != 0 {
		g.reserved += g.spc - r // start the data area on a cluster boundary
	}
	data := int64(g.total) - int64(g.reserved) - int64(g.nfats)*int64(g.fatSize)
	if data > 0 {
		g.clusters = uint32(min(data/spc, maxClusters+1))
	}
	if g.clusters < minClusters {
		return geometry{}, fmt.Errorf("size %d bytes gives %d clusters of %d bytes; FAT32 needs at least %d (about %d MiB)", size, g.clusters, g.clusterBytes(), minClusters, (minClusters*g.clusterBytes())>>20+1)
	}
	if g.clusters > maxClusters {
		return geometry{}, fmt.Errorf("size %d bytes gives too many clusters for FAT32", size)
	}
	return g, nil
}

// fatTime encodes t (UTC) as FAT date and time, clamped to 1980..2107.
func fatTime(sec int64) (date, tim uint16, tenths uint8) {
	t := time.Unix(sec, 0).UTC()
	switch {
	case t.Year() < 1980:
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	case t.Year() > 2107:
		t = time.Date(2107, 12, 31, 23, 59, 58, 0, time.UTC)
	}
	date = uint16(t.Year()-1980)<<9 | uint16(t.Month())<<5 | uint16(t.Day())
	tim = uint16(t.Hour())<<11 | uint16(t.Minute())<<5 | uint16(t.Second()/2)
	return date, tim, uint8(t.Second()%2) * 100
}

// fromFATTime decodes a FAT date and time as UTC.
func fromFATTime(date, tim uint16) time.Time {
	return time.Date(1980+int(date>>9), time.Month(date>>5&0xf), int(date&0x1f),
		int(tim>>11), int(tim>>5&0x3f), int(tim&0x1f)*2, 0, time.UTC)
}

// checkLongName reports whether name can be a FAT long name.
func checkLongName(name string) error {
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("name %q is not allowed", name)
	}
	if strings.HasSuffix(name, ".") || strings.HasSuffix(name, " ") {
		return fmt.Errorf("name %q ends in a dot or space, which FAT drops", name)
	}
	for _, r := range name {
		if r < 0x20 || strings.ContainsRune(`"*/:<>?\|`, r) || r == 0x7f {
			return fmt.Errorf("name %q: character %q is not allowed in FAT names", name, r)
		}
	}
	if n := len(utf16.Encode([]rune(name))); n > 255 {
		return fmt.Errorf("name %q is %d UTF-16 units long; FAT allows 255", name, n)
	}
	return nil
}

// shortChar maps a rune to a short-name character ('_' for anything not
// allowed), and reports whether the mapping was lossless.
func shortChar(r rune) (byte, bool) {
	switch {
	case r >= 'a' && r <= 'z':
		return byte(r - 'a' + 'A'), false
	case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r < 0x80 && strings.ContainsRune("!#$%&'()-@^_`{}~", r):
		return byte(r), true
	}
	return '_', false
}

// exactShort returns the 8.3 name of name when name is already a valid
// upper-case 8.3 name (no long name needed).
func exactShort(name string) ([11]byte, bool) {
	var sn [11]byte
	base, ext, _ := strings.Cut(name, ".")
	if len(base) == 0 || len(base) > 8 || len(ext) > 3 || strings.Contains(ext, ".") || (strings.Contains(name, ".") && ext == "") {
		return sn, false
	}
	for i := range sn {
		sn[i] = ' '
	}
	for i, part := range []string{base, ext} {
		for j, r := range part {
			c, ok := shortChar(r)
			if !ok {
				return sn, false
			}
			sn[i*8+j] = c
		}
	}
	if sn[0] == 0xE5 {
		return sn, false
	}
	return sn, true
}

// shortBasis returns the upper-case basis (at most 8 characters) and
// extension (at most 3) of the generated short name of a long name, as
// Windows derives it: spaces and leading dots dropped, the extension taken
// after the last dot, other characters mapped to '_'.
func shortBasis(name string) (base, ext string) {
	name = strings.TrimLeft(strings.ReplaceAll(name, " ", ""), ".")
	b, e := name, ""
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		b, e = name[:i], name[i+1:]
	}
	mapRunes := func(s string, n int) string {
		var out []byte
		for _, r := range strings.ReplaceAll(s, ".", "") {
			if len(out) == n {
				break
			}
			c, _ := shortChar(r)
			out = append(out, c)
		}
		return string(out)
	}
	base, ext = mapRunes(b, 8), mapRunes(e, 3)
	if base == "" {
		base = "_"
	}
	return base, ext
}

// shortNamer hands out the short names of one directory, deterministically
// given the order of calls.
type shortNamer map[[11]byte]bool

// name returns the short name of long name and whether a long-name entry is
// needed.
func (s shortNamer) name(long string) ([11]byte, bool, error) {
	if sn, ok := exactShort(long); ok && !s[sn] {
		s[sn] = true
		return sn, false, nil
	}
	// A name that is 8.3 but for its case keeps it, without a tail (as
	// Windows does): "vmlinuz" is VMLINUZ, with a long name for the case.
	if sn, ok := exactShort(strings.ToUpper(long)); ok && !s[sn] {
		s[sn] = true
		return sn, true, nil
	}
	base, ext := shortBasis(long)
	for n := 1; n < 1000000; n++ {
		tail := fmt.Sprintf("~%d", n)
		b := base
		if len(b)+len(tail) > 8 {
			b = b[:8-len(tail)]
		}
		var sn [11]byte
		copy(sn[:], fmt.Sprintf("%-8s%-3s", b+tail, ext))
		if !s[sn] {
			s[sn] = true
			return sn, true, nil
		}
	}
	return [11]byte{}, false, fmt.Errorf("%q: no free short name", long)
}

// lfnChecksum is the checksum of a short name stored in its long-name entries.
func lfnChecksum(sn [11]byte) byte {
	var sum byte
	for _, c := range sn {
		sum = (sum>>1 | sum<<7) + c
	}
	return sum
}

// lfnEntries returns the long-name entries of name for short name sn, in
// on-disk order (last part first).
func lfnEntries(name string, sn [11]byte) []byte {
	u := utf16.Encode([]rune(name))
	n := (len(u) + 12) / 13
	out := make([]byte, 0, n*dirEntSize)
	sum := lfnChecksum(sn)
	for i := n; i >= 1; i-- {
		e := make([]byte, dirEntSize)
		e[0] = byte(i)
		if i == n {
			e[0] |= 0x40
		}
		e[11], e[13] = attrLFN, sum
		for k, off := range lfnOffsets {
			j := (i-1)*13 + k
			var c uint16 = 0xFFFF
			if j < len(u) {
				c = u[j]
			} else if j == len(u) {
				c = 0
			}
			e[off], e[off+1] = byte(c), byte(c>>8)
		}
		out = append(out, e...)
	}
	return out
}

// lfnOffsets are the byte offsets of the 13 UTF-16 units of a long-name entry.
var lfnOffsets = [13]int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30}

// shortEntry encodes a short directory entry.
func shortEntry(sn [11]byte, attr byte, cluster uint32, size uint32, mtime int64) []byte {
	e := make([]byte, dirEntSize)
	copy(e, sn[:])
	e[11] = attr
	d, t, tenths := fatTime(mtime)
	e[13] = tenths
	le16(e[14:], t)
	le16(e[16:], d)
	le16(e[18:], d)
	le16(e[20:], uint16(cluster>>16))
	le16(e[22:], t)
	le16(e[24:], d)
	le16(e[26:], uint16(cluster))
	le32(e[28:], size)
	return e
}

// labelBytes returns the 11-byte volume label ("NO NAME" when empty).
func labelBytes(label string) ([11]byte, error) {
	var l [11]byte
	if label == "" {
		label = "NO NAME"
	}
	if len(label) > 11 {
		return l, fmt.Errorf("volume label %q is longer than 11 characters", label)
	}
	copy(l[:], fmt.Sprintf("%-11s", strings.ToUpper(label)))
	for _, c := range l {
		if c < 0x20 || c >= 0x7f || strings.IndexByte(`"*+,./:;<=>?[\]|`, c) >= 0 {
			return l, fmt.Errorf("volume label %q: character %q is not allowed", label, c)
		}
	}
	return l, nil
}

func le16(b []byte, v uint16) { b[0], b[1] = byte(v), byte(v>>8) }
func le32(b []byte, v uint32) { b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24) }
func get16(b []byte) uint16   { return uint16(b[0]) | uint16(b[1])<<8 }
func get32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
