package devconfig

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
)

// SeedLabel is the NoCloud volume label (cloud-init accepts either case).
const SeedLabel = "CIDATA"

// Probe reads a filesystem's type ("vfat" or "iso9660") and volume label
// from a block device or image, blkid-style: the FAT boot sector's BPB
// label, or the ISO 9660 primary volume descriptor's volume identifier.
// It returns "", "" for other content.
func Probe(r io.ReaderAt) (fstype, label string, err error) {
	bs := make([]byte, 512)
	if _, err := r.ReadAt(bs, 0); err != nil && err != io.EOF {
		return "", "", fmt.Errorf("read boot sector: %w", err)
	}
	if bs[510] == 0x55 && bs[511] == 0xaa {
		switch {
		case string(bs[82:87]) == "FAT32":
			return "vfat", trimLabel(bs[71:82]), nil
		case string(bs[54:59]) == "FAT12" || string(bs[54:59]) == "FAT16":
			return "vfat", trimLabel(bs[43:54]), nil
		}
	}
	pvd := make([]byte, 72)
	if _, err := r.ReadAt(pvd, 16*2048); err == nil && pvd[0] == 1 && string(pvd[1:6]) == "CD001" {
		return "iso9660", trimLabel(pvd[40:72]), nil
	}
	return "", "", nil
}

func trimLabel(b []byte) string {
	s := string(bytes.TrimRight(b, " \x00"))
	if s == "NO NAME" {
		return ""
	}
	return s
}

// FindSeed returns the first of the block devices devs (paths, in the
// order to try) whose label is CIDATA or cidata, and its filesystem type.
// It returns "" when there is none.
func FindSeed(devs []string) (dev, fstype string) {
	for _, p := range devs {
		f, err := os.Open(p)
		if err != nil {
			continue // gone, or not readable: not ours
		}
		t, l, err := Probe(f)
		f.Close()
		if err == nil && t != "" && strings.EqualFold(l, SeedLabel) {
			return p, t
		}
	}
	return "", ""
}
