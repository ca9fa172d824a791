// Package datapart grows the data partition to the end of its medium on
// first boot: it rewrites the GPT (backup at the disk end, the partition's
// last LBA, CRCs), tells the kernel with BLKPG, and grows the mounted ext4
// online. Every step decides from the state on disk whether it is needed,
// so a power cut at any point is finished by the next boot.
package datapart

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"
)

const (
	gptSignature = "EFI PART"
	headerSize   = 92
	entryMinSize = 128
)

// Table is a GPT read from a disk: one valid header and its entry array.
type Table struct {
	SectorSize int64
	Header     []byte // headerSize bytes of the copy that was read
	Entries    []byte
	// FromBackup is set when the primary was damaged and the backup used.
	FromBackup bool
}

// Partition is one used GPT entry.
type Partition struct {
	Index    int // 1-based
	Name     string
	FirstLBA uint64
	LastLBA  uint64
}

var le = binary.LittleEndian

// ReadTable reads the primary GPT of a disk of diskSize bytes, or the
// backup in its last sector when the primary is damaged.
func ReadTable(r io.ReaderAt, diskSize, sectorSize int64) (*Table, error) {
	t, perr := readHeaderAt(r, 1, diskSize, sectorSize)
	if perr == nil {
		return t, nil
	}
	t, berr := readHeaderAt(r, diskSize/sectorSize-1, diskSize, sectorSize)
	if berr != nil {
		return nil, fmt.Errorf("no valid GPT: primary: %w; backup: %w", perr, berr)
	}
	t.FromBackup = true
	return t, nil
}

func readHeaderAt(r io.ReaderAt, lba, diskSize, ss int64) (*Table, error) {
	sec := make([]byte, ss)
	if _, err := r.ReadAt(sec, lba*ss); err != nil {
		return nil, fmt.Errorf("read GPT header at LBA %d: %w", lba, err)
	}
	if string(sec[:8]) != gptSignature {
		return nil, fmt.Errorf("LBA %d: no GPT signature", lba)
	}
	hs := int64(le.Uint32(sec[12:]))
	if hs < headerSize || hs > ss {
		return nil, fmt.Errorf("LBA %d: header size %d", lba, hs)
	}
	h := append([]byte(nil), sec[:hs]...)
	want := le.Uint32(h[16:])
	le.PutUint32(h[16:], 0)
	if crc32.ChecksumIEEE(h) != want {
		return nil, fmt.Errorf("LBA %d: header CRC mismatch", lba)
	}
	le.PutUint32(h[16:], want)
	if le.Uint64(h[24:]) != uint64(lba) {
		return nil, fmt.Errorf("LBA %d: header says it is at LBA %d", lba, le.Uint64(h[24:]))
	}
	n, es := int64(le.Uint32(h[80:])), int64(le.Uint32(h[84:]))
	if es < entryMinSize || es%8 != 0 || n == 0 || n*es > 1<<20 {
		return nil, fmt.Errorf("LBA %d: %d entries of %d bytes", lba, n, es)
	}
	elba := int64(le.Uint64(h[72:]))
	if elba <= 0 || elba*ss+n*es > diskSize {
		return nil, fmt.Errorf("LBA %d: entries at LBA %d outside the disk", lba, elba)
	}
	ents := make([]byte, n*es)
	if _, err := r.ReadAt(ents, elba*ss); err != nil {
		return nil, fmt.Errorf("read GPT entries at LBA %d: %w", elba, err)
	}
	if crc32.ChecksumIEEE(ents) != le.Uint32(h[88:]) {
		return nil, fmt.Errorf("LBA %d: entries CRC mismatch", lba)
	}
	return &Table{SectorSize: ss, Header: h, Entries: ents}, nil
}

func (t *Table) entrySize() int { return int(le.Uint32(t.Header[84:])) }

// Partitions returns the used entries.
func (t *Table) Partitions() []Partition {
	var out []Partition
	es := t.entrySize()
	for i := 0; (i+1)*es <= len(t.Entries); i++ {
		e := t.Entries[i*es : (i+1)*es]
		if bytes.Equal(e[:16], make([]byte, 16)) {
			continue
		}
		u := make([]uint16, 36)
		for j := range u {
			u[j] = le.Uint16(e[56+2*j:])
		}
		if k := indexZero(u); k >= 0 {
			u = u[:k]
		}
		out = append(out, Partition{Index: i + 1, Name: string(utf16.Decode(u)), FirstLBA: le.Uint64(e[32:]), LastLBA: le.Uint64(e[40:])})
	}
	return out
}

func indexZero(u []uint16) int {
	for i, v := range u {
		if v == 0 {
			return i
		}
	}
	return -1
}

// Find returns the partition named name.
func (t *Table) Find(name string) (Partition, error) {
	for _, p := range t.Partitions() {
		if p.Name == name {
			return p, nil
		}
	}
	return Partition{}, fmt.Errorf("no GPT partition named %q", name)
}

// ErrNotLast says the partition to grow is not the last one on the disk.
var ErrNotLast = errors.New("partition is not the last on the disk")

// Plan computes the table that makes partition name end at the disk's last
// usable LBA, with the backup GPT in the disk's last sectors. It returns
// the grown partition and whether anything differs from t.
func (t *Table) Plan(diskSize int64, name string) (Partition, bool, error) {
	p, err := t.Find(name)
	if err != nil {
		return p, false, err
	}
	for _, q := range t.Partitions() {
		if q.LastLBA > p.LastLBA {
			return p, false, fmt.Errorf("grow %s: %w (%s ends later)", name, ErrNotLast, q.Name)
		}
	}
	lastLBA := uint64(diskSize/t.SectorSize) - 1
	entSectors := (uint64(len(t.Entries)) + uint64(t.SectorSize) - 1) / uint64(t.SectorSize)
	lastUsable := lastLBA - entSectors - 1
	if lastUsable < p.LastLBA {
		return p, false, fmt.Errorf("grow %s: disk of %d bytes is smaller than the table (partition ends at LBA %d)", name, diskSize, p.LastLBA)
	}
	changed := t.FromBackup || le.Uint64(t.Header[32:]) != lastLBA || le.Uint64(t.Header[48:]) != lastUsable || p.LastLBA != lastUsable
	le.PutUint64(t.Header[32:], lastLBA)
	le.PutUint64(t.Header[48:], lastUsable)
	es := t.entrySize()
	le.PutUint64(t.Entries[(p.Index-1)*es+40:], lastUsable)
	p.LastLBA = lastUsable
	le.PutUint32(t.Header[88:], crc32.ChecksumIEEE(t.Entries))
	return p, changed, nil
}

// Write writes t in crash-safe order: the backup (entries, then header) at
// the disk end, sync, then the primary (entries, then header), sync, then
// the protective MBR's size. Until the primary header is written, the old
// primary stays valid; a cut after it leaves both copies valid.
func (t *Table) Write(w readerWriterAt, sync func() error, diskSize int64) error {
	ss := t.SectorSize
	lastLBA := diskSize/ss - 1
	entSectors := (int64(len(t.Entries)) + ss - 1) / ss
	primaryEntries := int64(le.Uint64(t.Header[72:]))
	if primaryEntries == lastLBA-entSectors { // read from the backup: primary entries follow LBA 1
		primaryEntries = 2
	}
	write := func(what string, b []byte, off int64) error {
		if _, err := w.WriteAt(b, off); err != nil {
			return fmt.Errorf("write %s: %w", what, err)
		}
		return nil
	}
	backup := t.header(lastLBA, 1, lastLBA-entSectors)
	primary := t.header(1, lastLBA, primaryEntries)
	steps := []struct {
		what string
		b    []byte
		off  int64
	}{
		{"backup GPT entries", t.Entries, (lastLBA - entSectors) * ss},
		{"backup GPT header", backup, lastLBA * ss},
		{"", nil, 0},
		{"primary GPT entries", t.Entries, primaryEntries * ss},
		{"primary GPT header", primary, ss},
		{"", nil, 0},
	}
	for _, s := range steps {
		if s.b == nil {
			if err := sync(); err != nil {
				return fmt.Errorf("sync GPT: %w", err)
			}
			continue
		}
		if err := write(s.what, s.b, s.off); err != nil {
			return err
		}
	}
	return fixProtectiveMBR(w, lastLBA)
}

// readerWriterAt is a disk.
type readerWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

// header returns a sector-sized header for a copy at myLBA.
func (t *Table) header(myLBA, altLBA, entriesLBA int64) []byte {
	h := make([]byte, t.SectorSize)
	copy(h, t.Header)
	le.PutUint64(h[24:], uint64(myLBA))
	le.PutUint64(h[32:], uint64(altLBA))
	le.PutUint64(h[72:], uint64(entriesLBA))
	hs := le.Uint32(h[12:])
	le.PutUint32(h[16:], 0)
	le.PutUint32(h[16:], crc32.ChecksumIEEE(h[:hs]))
	return h
}

// fixProtectiveMBR sets the 0xEE entry's size to cover the whole disk.
func fixProtectiveMBR(w readerWriterAt, lastLBA int64) error {
	mbr := make([]byte, 512)
	if _, err := w.ReadAt(mbr, 0); err != nil {
		return fmt.Errorf("read protective MBR: %w", err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xAA {
		return nil
	}
	for i := 0; i < 4; i++ {
		e := mbr[446+16*i : 446+16*(i+1)]
		if e[4] != 0xEE {
			continue
		}
		size := uint32(min(lastLBA, 0xFFFFFFFF))
		if le.Uint32(e[12:]) == size {
			return nil
		}
		le.PutUint32(e[12:], size)
		if _, err := w.WriteAt(e, int64(446+16*i)); err != nil {
			return fmt.Errorf("write protective MBR: %w", err)
		}
	}
	return nil
}
