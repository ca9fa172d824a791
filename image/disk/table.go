package disk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf16"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/uuid"
)

// writeTable writes l's partition table to f (l is resolved).
func writeTable(f *os.File, l Layout) error {
	if l.Scheme == MBR {
		_, err := f.WriteAt(mbrBytes(l), 0)
		return err
	}
	t := &gpt.Table{
		LogicalSectorSize:  SectorSize,
		PhysicalSectorSize: SectorSize,
		GUID:               l.DiskGUID,
		ProtectiveMBR:      true,
	}
	for i, p := range l.Partitions {
		t.Partitions = append(t.Partitions, &gpt.Partition{
			Index:      i + 1,
			Start:      uint64(p.Start / SectorSize),
			End:        uint64((p.Start+p.Size)/SectorSize - 1),
			Size:       uint64(p.Size),
			Type:       gpt.Type(strings.ToUpper(p.Type)),
			Name:       p.Name,
			GUID:       strings.ToUpper(p.GUID),
			Attributes: p.Attributes,
		})
	}
	if err := t.Write(f, l.Size); err != nil {
		return fmt.Errorf("write GPT: %w", err)
	}
	return nil
}

// mbrBytes returns sector 0 of an MBR disk: disk signature, four entries
// addressed by LBA (CHS fields set to the "use LBA" maximum), 0x55AA.
func mbrBytes(l Layout) []byte {
	b := make([]byte, SectorSize)
	binary.LittleEndian.PutUint32(b[440:], l.DiskID)
	for i, p := range l.Partitions {
		e := b[446+16*i : 446+16*(i+1)]
		if p.Bootable {
			e[0] = 0x80
		}
		copy(e[1:4], []byte{0xfe, 0xff, 0xff})
		e[4] = p.MBRType
		copy(e[5:8], []byte{0xfe, 0xff, 0xff})
		binary.LittleEndian.PutUint32(e[8:], uint32(p.Start/SectorSize))
		binary.LittleEndian.PutUint32(e[12:], uint32(p.Size/SectorSize))
	}
	b[510], b[511] = 0x55, 0xaa
	return b
}

// Read returns the partition table of the disk image at path. For GPT it
// reads the primary table (go-diskfs falls back to the backup when the
// primary fails its CRC).
func Read(path string) (Layout, error) {
	f, err := os.Open(path)
	if err != nil {
		return Layout{}, err
	}
	defer f.Close()
	// Seek, not Stat: a card's block device has a size but Stat says 0.
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return Layout{}, err
	}
	head := make([]byte, 2*SectorSize)
	if _, err := f.ReadAt(head, 0); err != nil {
		return Layout{}, fmt.Errorf("%s: read partition table: %w", path, err)
	}
	if head[510] != 0x55 || head[511] != 0xaa {
		return Layout{}, fmt.Errorf("%s: no partition table (no 0x55AA signature in sector 0)", path)
	}
	if !bytes.Equal(head[SectorSize:SectorSize+8], []byte("EFI PART")) {
		l, err := parseMBR(head[:SectorSize])
		if err != nil {
			return Layout{}, fmt.Errorf("%s: %w", path, err)
		}
		l.Size = size
		return l, nil
	}
	t, err := gpt.Read(f, SectorSize, SectorSize)
	if err != nil {
		return Layout{}, fmt.Errorf("%s: %w", path, err)
	}
	l := Layout{Scheme: GPT, Size: size, DiskGUID: strings.ToUpper(t.GUID)}
	for _, p := range t.Partitions {
		if p.Type == gpt.Unused {
			continue
		}
		l.Partitions = append(l.Partitions, Partition{
			Name:       p.Name,
			Type:       strings.ToUpper(string(p.Type)),
			GUID:       strings.ToUpper(p.GUID),
			Attributes: p.Attributes,
			Start:      int64(p.Start) * SectorSize,
			Size:       int64(p.End-p.Start+1) * SectorSize,
		})
	}
	return l, nil
}

// parseMBR decodes sector 0 of an MBR disk.
func parseMBR(b []byte) (Layout, error) {
	l := Layout{Scheme: MBR, DiskID: binary.LittleEndian.Uint32(b[440:])}
	for i := 0; i < 4; i++ {
		e := b[446+16*i : 446+16*(i+1)]
		if e[4] == 0 {
			continue
		}
		if e[4] == 0xee {
			return l, fmt.Errorf("protective MBR without a GPT header in sector 1")
		}
		l.Partitions = append(l.Partitions, Partition{
			Name:     fmt.Sprintf("%d", i+1),
			MBRType:  e[4],
			Bootable: e[0]&0x80 != 0,
			Start:    int64(binary.LittleEndian.Uint32(e[8:])) * SectorSize,
			Size:     int64(binary.LittleEndian.Uint32(e[12:])) * SectorSize,
		})
	}
	return l, nil
}

func parseGUID(s string) (uuid.UUID, error) {
	if s == "" {
		return uuid.UUID{}, fmt.Errorf("empty (GUIDs are never generated at random: use DeriveGUID)")
	}
	return uuid.Parse(s)
}

func encodeName(s string) []uint16 { return utf16.Encode([]rune(s)) }
