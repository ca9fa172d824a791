package imgfile

import (
	"io"
	"path/filepath"
	"testing"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/image/disk"
	"github.com/basaltos/basalt/image/fat"
	"github.com/basaltos/basalt/image/tree"
)

// mbrDisk writes a four-partition MBR disk whose first partition is a
// FAT labelled label.
func mbrDisk(t *testing.T, label string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "card.img")
	l := disk.Layout{Scheme: disk.MBR, DiskID: 0x1c874ae7, Partitions: []disk.Partition{
		{Name: "1", MBRType: disk.MBRTypeFAT32LBA, Bootable: true, Size: 40 << 20},
		{Name: "2", MBRType: disk.MBRTypeLinux, Size: 1 << 20},
		{Name: "3", MBRType: disk.MBRTypeLinux, Size: 1 << 20},
		{Name: "4", MBRType: disk.MBRTypeLinux, Size: 1 << 20},
	}}
	t0 := tree.New(0)
	if err := t0.AddBytes("config.txt", 0o644, []byte("os_prefix=a/\n")); err != nil {
		t.Fatal(err)
	}
	err := disk.Write(p, l, func(part disk.Partition, w io.WriterAt) error {
		if part.Name == "1" {
			return fat.Write(w, part.Size, t0, fat.Options{Label: label, HiddenSectors: uint32(part.Start / disk.SectorSize)})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A basalt MBR disk (partition 1 is the FAT labelled BASALT) has its
// partitions named by position; any other MBR disk keeps numbers.
func TestMBRNames(t *testing.T) {
	im, err := Open(mbrDisk(t, contract.BootFSLabel))
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	for i, want := range contract.MBRPartitions {
		if got := im.Layout.Partitions[i].Name; got != want {
			t.Errorf("partition %d: %q, want %q", i+1, got, want)
		}
	}
	boot, err := im.BootFS()
	if err != nil {
		t.Fatal(err)
	}
	if b, err := boot.ReadFile("config.txt"); err != nil || string(b) != "os_prefix=a/\n" {
		t.Errorf("config.txt: %q, %v", b, err)
	}
	if fsys, err := im.SlotFS(contract.SlotB); fsys != nil || err != nil {
		t.Errorf("empty slot b: %v, %v", fsys, err)
	}

	other := mbrDisk(t, "CAMERA")
	if _, err := BootPartition(other); err == nil {
		t.Error("a camera card has a basalt boot partition")
	}
}
