package datapart

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/basaltos/basalt/contract"
)

// errNoMBR says a disk has no basalt MBR (then it must have a GPT).
var errNoMBR = errors.New("no MBR")

// growMBR grows the MBR entry of the partition named label (by position,
// contract.MBRPartitions) to the end of the disk (size bytes, at most 2 TiB
// of sectors); it must be the last partition. Sector 0 is written in one
// write of one sector, then synced: a power cut leaves the old or the new
// table. A disk with a GPT header in sector 1 is not an MBR disk.
func growMBR(f readerWriterAt, sync func() error, size, sectorSize int64, label string) (bool, Partition, error) {
	b := make([]byte, 2*sectorSize)
	if _, err := f.ReadAt(b, 0); err != nil {
		return false, Partition{}, fmt.Errorf("read MBR: %w", err)
	}
	if b[510] != 0x55 || b[511] != 0xaa || bytes.HasPrefix(b[sectorSize:], []byte("EFI PART")) {
		return false, Partition{}, errNoMBR
	}
	n := -1
	for i, name := range contract.MBRPartitions {
		if name == label {
			n = i
		}
	}
	if n < 0 || b[446+16*n+4] == 0 {
		return false, Partition{}, fmt.Errorf("MBR: no partition %q", label)
	}
	e := b[446+16*n : 446+16*(n+1)]
	start := uint64(le.Uint32(e[8:]))
	end := uint64(size / sectorSize) // exclusive
	if end > 1<<32 {
		end = 1 << 32 // MBR addresses at most 2^32 sectors
	}
	for i := n + 1; i < 4; i++ {
		if b[446+16*i+4] != 0 {
			return false, Partition{}, fmt.Errorf("MBR: partition %d follows %q: it cannot grow", i+1, label)
		}
	}
	p := Partition{Index: n + 1, Name: label, FirstLBA: start, LastLBA: start + uint64(le.Uint32(e[12:])) - 1}
	if p.LastLBA+1 >= end {
		return false, p, nil
	}
	le.PutUint32(e[12:], uint32(end-start))
	if _, err := f.WriteAt(b[:sectorSize], 0); err != nil {
		return false, p, fmt.Errorf("write MBR: %w", err)
	}
	if err := sync(); err != nil {
		return false, p, fmt.Errorf("sync MBR: %w", err)
	}
	p.LastLBA = end - 1
	return true, p, nil
}
