package disk

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Extent is a byte range [Start, End) of a file.
type Extent struct{ Start, End int64 }

// DataExtents returns the ranges of f (size bytes) that may hold data, in
// order, from SEEK_DATA/SEEK_HOLE: everything else is a hole and reads as
// zeros. Where the file system cannot tell, the whole file is one extent.
func DataExtents(f *os.File, size int64) ([]Extent, error) {
	var ext []Extent
	for off := int64(0); off < size; {
		start, err := f.Seek(off, unix.SEEK_DATA)
		if errors.Is(err, syscall.ENXIO) { // no data after off
			break
		}
		if errors.Is(err, syscall.EINVAL) && off == 0 { // not supported
			return []Extent{{0, size}}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: seek data at %d: %w", f.Name(), off, err)
		}
		end, err := f.Seek(start, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("%s: seek hole at %d: %w", f.Name(), start, err)
		}
		end = min(end, size)
		if start >= end {
			break
		}
		ext = append(ext, Extent{start, end})
		off = end
	}
	return ext, nil
}
