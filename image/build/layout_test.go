package build

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/image/disk"
	"github.com/basaltos/basalt/image/spec"
)

// fakeMBRBoard is qemu-armv7 with an MBR table, standing in for the
// Raspberry Pi boards until they land.
func fakeMBRBoard(t *testing.T) *boards.Board {
	b, err := boards.Get("qemu-armv7")
	if err != nil {
		t.Fatal(err)
	}
	c := *b
	c.Name, c.Table = "fake-mbr-armv7", "mbr"
	return &c
}

// TestDiskLayoutMBR: a board whose table is mbr gets an MBR disk that
// sfdisk --verify accepts: four primary partitions, FAT32 (LBA) boot
// marked active, Linux roots and data, and a disk signature derived from
// the spec (the same bytes twice).
func TestDiskLayoutMBR(t *testing.T) {
	s := spec.Default(t.TempDir())
	s.Disk.Total = spec.Size(600 << 20)
	b := fakeMBRBoard(t)
	var sums []string
	var slot int64
	for i := 0; i < 2; i++ {
		l, err := diskLayout(s, b, 40<<20)
		if err != nil {
			t.Fatal(err)
		}
		slot = l.Partitions[1].Size
		img := filepath.Join(t.TempDir(), "mbr.img")
		if err := disk.Write(img, l, func(disk.Partition, io.WriterAt) error { return nil }); err != nil {
			t.Fatal(err)
		}
		run(t, "sfdisk", "--verify", img)
		dump := run(t, "sfdisk", "--dump", img)
		for _, want := range []string{"label: dos", fmt.Sprintf("label-id: 0x%08x", disk.DeriveDiskID(seed(s, b))),
			"mbr.img1 : start=        2048, size=      524288, type=c, bootable", "type=83"} {
			if !strings.Contains(dump, want) {
				t.Errorf("sfdisk --dump lacks %q:\n%s", want, dump)
			}
		}
		if n := strings.Count(dump, "type=83"); n != 3 {
			t.Errorf("%d Linux partitions, want 3:\n%s", n, dump)
		}
		data, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, fmt.Sprintf("%x", sha256.Sum256(data)))
	}
	if sums[0] != sums[1] {
		t.Errorf("two MBR layouts of one spec differ: %s", sums)
	}
	s.Disk.Total = spec.Size(disk.MinSize(disk.MBR, int64(s.Disk.Boot), slot, slot, int64(s.Disk.Data)) - 1<<20)
	if _, err := diskLayout(s, b, 40<<20); err == nil || !strings.Contains(err.Error(), "cannot hold") {
		t.Errorf("a disk 1 MiB too small: %v", err)
	}
}
