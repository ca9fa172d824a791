// Package disk lays out and writes whole-disk images: a GPT (through
// go-diskfs partition/gpt, which writes exactly the GUIDs it is given) or an
// MBR table, and each partition's content written by a caller-supplied
// function straight into that partition's window of a sparse file.
//
// Nothing is random: the disk GUID and partition GUIDs come from the layout
// (see DeriveGUID), and the file is written to a temporary name in the output
// directory and renamed into place only when every partition was written.
package disk

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// SectorSize is the logical sector size of every image basalt writes.
const SectorSize = 512

// Align is the partition alignment: every partition starts on a MiB boundary.
const Align = 1 << 20

// Scheme is the partition-table type.
type Scheme int

const (
	GPT Scheme = iota
	MBR
)

func (s Scheme) String() string {
	if s == MBR {
		return "mbr"
	}
	return "gpt"
}

// ParseScheme returns the Scheme a board's table: names, "gpt" or "mbr".
func ParseScheme(name string) (Scheme, error) {
	switch name {
	case "gpt":
		return GPT, nil
	case "mbr":
		return MBR, nil
	}
	return GPT, fmt.Errorf("partition table %q: want gpt or mbr", name)
}

// tail is the space the table keeps at the end of the disk: GPT's backup
// (32 sectors of entries plus the header); MBR keeps none.
func (s Scheme) tail() int64 {
	if s == GPT {
		return 33 * SectorSize
	}
	return 0
}

func alignUp(n int64) int64 { return (n + Align - 1) / Align * Align }

// MinSize is the smallest disk, a whole number of MiB, that holds
// partitions of these sizes in this order on a table of scheme s: the first
// starts at 1 MiB, each next one on the next MiB boundary, and the table's
// tail follows the last. It is Resolve's arithmetic for a layout without
// starts or a disk size; spec validation checks sizes with it before a
// build, so the two never disagree about what fits.
func MinSize(s Scheme, sizes ...int64) int64 {
	next, end := int64(Align), int64(Align)
	for _, n := range sizes {
		end = next + n
		next = alignUp(end)
	}
	return alignUp(end + s.tail())
}

// GPT partition type GUIDs (UEFI spec and the Discoverable Partitions
// Specification).
const (
	TypeESP         = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	TypeLinuxFS     = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
	TypeRootX86_64  = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
	TypeRootARM64   = "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"
	TypeRootARM     = "69DAD710-2CE4-4E3C-B16C-21A1D49ABED3"
	TypeRootUnknown = TypeLinuxFS
)

// MBR partition type bytes.
const (
	MBRTypeFAT32LBA = 0x0C
	MBRTypeLinux    = 0x83
)

// RootType returns the discoverable-partitions root type GUID for a GOARCH
// ("amd64", "arm64", "arm"); other architectures get TypeLinuxFS.
func RootType(goarch string) string {
	switch goarch {
	case "amd64":
		return TypeRootX86_64
	case "arm64":
		return TypeRootARM64
	case "arm":
		return TypeRootARM
	}
	return TypeRootUnknown
}

// GPT partition attribute bits.
const (
	AttrRequired    = 1 << 0
	AttrNoBlockIO   = 1 << 1
	AttrLegacyBoot  = 1 << 2
	AttrReadOnly    = 1 << 60 // discoverable partitions: mount read-only
	AttrNoAutomount = 1 << 63
)

// Partition is one entry of a layout.
type Partition struct {
	// Name is the GPT partition name (PARTLABEL); for MBR it only names the
	// partition in errors and for fill.
	Name string
	// Type is the GPT type GUID (GPT only).
	Type string
	// MBRType is the MBR type byte (MBR only), e.g. MBRTypeFAT32LBA.
	MBRType byte
	// Bootable sets the MBR active flag (MBR only).
	Bootable bool
	// GUID is the unique partition GUID (GPT only; required).
	GUID string
	// Attributes are GPT attribute bits (AttrXxx).
	Attributes uint64
	// Size in bytes, a multiple of SectorSize. 0 on the last partition
	// means "up to the end of the disk" (Layout.Size must then be set).
	Size int64
	// Start is the byte offset on the disk; 0 means "next MiB boundary".
	// Resolve fills it in.
	Start int64
}

// Layout describes a disk.
type Layout struct {
	Scheme Scheme
	// Size of the disk in bytes; 0 means "just large enough", rounded up
	// to a MiB.
	Size int64
	// DiskGUID is the GPT disk GUID (required for GPT).
	DiskGUID string
	// DiskID is the MBR disk signature (MBR only; PARTUUID=xxxxxxxx-NN).
	DiskID     uint32
	Partitions []Partition
}

// Resolve checks l and returns a copy with every partition's Start and Size
// and the disk Size filled in.
func (l Layout) Resolve() (Layout, error) {
	out := l
	out.Partitions = append([]Partition(nil), l.Partitions...)
	if len(out.Partitions) == 0 {
		return out, errors.New("layout: no partitions")
	}
	maxParts := 128
	if l.Scheme == MBR {
		maxParts = 4
	} else if _, err := parseGUID(l.DiskGUID); err != nil {
		return out, fmt.Errorf("layout: disk GUID: %w", err)
	}
	if len(out.Partitions) > maxParts {
		return out, fmt.Errorf("layout: %d partitions, a %s table holds at most %d", len(out.Partitions), l.Scheme, maxParts)
	}
	tail := l.Scheme.tail()
	next := int64(Align)
	for i := range out.Partitions {
		p := &out.Partitions[i]
		name := fmt.Sprintf("partition %d (%s)", i+1, p.Name)
		if l.Scheme == GPT {
			if _, err := parseGUID(p.Type); err != nil {
				return out, fmt.Errorf("layout: %s: type: %w", name, err)
			}
			if _, err := parseGUID(p.GUID); err != nil {
				return out, fmt.Errorf("layout: %s: GUID: %w", name, err)
			}
			if len(encodeName(p.Name)) > 36 {
				return out, fmt.Errorf("layout: %s: name longer than 36 UTF-16 units", name)
			}
		} else if p.MBRType == 0 {
			return out, fmt.Errorf("layout: %s: MBR type byte is 0 (unused)", name)
		}
		if p.Start == 0 {
			p.Start = next
		}
		if p.Start%Align != 0 || p.Start < next {
			return out, fmt.Errorf("layout: %s: start %d is not a MiB boundary at or after %d", name, p.Start, next)
		}
		if p.Size == 0 {
			if i != len(out.Partitions)-1 || l.Size == 0 {
				return out, fmt.Errorf("layout: %s: size 0 is only allowed on the last partition of a disk with a size", name)
			}
			p.Size = (l.Size - tail - p.Start) / SectorSize * SectorSize
			if p.Size <= 0 {
				return out, fmt.Errorf("layout: %s: no room left on a %d-byte disk", name, l.Size)
			}
		}
		if p.Size < 0 || p.Size%SectorSize != 0 {
			return out, fmt.Errorf("layout: %s: size %d is not a positive multiple of %d", name, p.Size, SectorSize)
		}
		next = alignUp(p.Start + p.Size)
	}
	last := out.Partitions[len(out.Partitions)-1]
	need := last.Start + last.Size + tail
	if out.Size == 0 {
		out.Size = alignUp(need)
	}
	if out.Size < need {
		return out, fmt.Errorf("layout: disk of %d bytes is too small, the partitions need %d", out.Size, need)
	}
	if out.Size%SectorSize != 0 {
		return out, fmt.Errorf("layout: disk size %d is not a multiple of %d", out.Size, SectorSize)
	}
	if l.Scheme == MBR && out.Size/SectorSize > 1<<32 {
		return out, fmt.Errorf("layout: disk of %d bytes is too large for MBR (2 TiB)", out.Size)
	}
	return out, nil
}

// FillFunc writes partition p's content into w, whose offset 0 is the
// partition's first byte. Writing past p.Size is an error.
type FillFunc func(p Partition, w io.WriterAt) error

// Write resolves l and writes the disk image to path: a sparse file of
// l.Size bytes holding the partition table and, for each partition, what
// fill writes (fill may be nil; fill is called in partition order). The
// image appears at path only when everything succeeded.
func Write(path string, l Layout, fill FillFunc) (err error) {
	l, err = l.Resolve()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Truncate(l.Size); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := writeTable(f, l); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if fill != nil {
		for i, p := range l.Partitions {
			w := &Window{w: f, off: p.Start, size: p.Size, name: fmt.Sprintf("partition %d (%s)", i+1, p.Name)}
			if err := fill(p, w); err != nil {
				return fmt.Errorf("%s: partition %d (%s): %w", path, i+1, p.Name, err)
			}
		}
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// ErrOutOfBounds is returned (wrapped) by a Window for I/O past its end.
var ErrOutOfBounds = errors.New("outside the partition")

// Window is an io.WriterAt and io.ReaderAt bounded to one partition: I/O that
// would cross its end fails with ErrOutOfBounds and does nothing.
type Window struct {
	w interface {
		io.WriterAt
		io.ReaderAt
	}
	off, size int64
	name      string
}

// NewWindow returns the window of dev from off for size bytes; name appears
// in its errors.
func NewWindow(dev interface {
	io.WriterAt
	io.ReaderAt
}, off, size int64, name string) *Window {
	return &Window{w: dev, off: off, size: size, name: name}
}

// Size returns the window's length in bytes.
func (w *Window) Size() int64 { return w.size }

func (w *Window) check(n int, off int64) error {
	if off < 0 || off+int64(n) > w.size {
		return fmt.Errorf("%s: %d bytes at offset %d: %w of %d bytes", w.name, n, off, ErrOutOfBounds, w.size)
	}
	return nil
}

// WriteAt writes p at off within the window.
func (w *Window) WriteAt(p []byte, off int64) (int, error) {
	if err := w.check(len(p), off); err != nil {
		return 0, err
	}
	return w.w.WriteAt(p, w.off+off)
}

// ReadAt reads into p from off within the window.
func (w *Window) ReadAt(p []byte, off int64) (int, error) {
	if off >= w.size {
		return 0, io.EOF
	}
	if off < 0 {
		return 0, w.check(len(p), off)
	}
	short := false
	if off+int64(len(p)) > w.size {
		p = p[:w.size-off]
		short = true
	}
	n, err := w.w.ReadAt(p, w.off+off)
	if err == nil && short {
		err = io.EOF
	}
	return n, err
}

// DeriveDiskID returns the MBR disk signature for seed (the partitions'
// PARTUUIDs are SIGNATURE-NN): derived like the GPT GUIDs, never random.
func DeriveDiskID(seed string) uint32 {
	h := sha256.Sum256([]byte("basalt-mbr-disk-id\x00" + seed))
	return binary.LittleEndian.Uint32(h[:4])
}

// DeriveGUID returns a GUID derived from sha256(seed, what), formatted
// upper-case as GPT tools print it and marked RFC 4122 variant, version 4
// (random-looking, as a name-derived v5 would be, but from SHA-256).
func DeriveGUID(seed, what string) string {
	h := sha256.Sum256([]byte("basalt-guid\x00" + seed + "\x00" + what))
	b := h[:16]
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]))
}
