// Package imgfile opens a basalt disk image on the host, as a file or as
// the block device of a flashed card, for the verbs that read or change
// one (config add and show, inspect, flash): its partitions by their
// contract names on both tables, the boot FAT and each slot's squashfs
// root.
//
// GPT partitions carry their names; MBR has none (Pi boards), so on an
// MBR disk whose first partition is the FAT labelled contract.BootFSLabel
// the partitions are named by position (contract.MBRPartitions), as the
// device names them (initsys/blockdev).
package imgfile

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	dsquashfs "github.com/diskfs/go-diskfs/filesystem/squashfs"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/image/disk"
	"github.com/basaltos/basalt/image/fat"
	"github.com/basaltos/basalt/internal/errclass"
)

// Image is an opened basalt disk image.
type Image struct {
	File   *os.File
	Layout disk.Layout
}

// Open opens the image at path read-only and reads its partition table.
// Errors are errclass.Invalid: not an image.
func Open(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, errclass.Invalid(err)
	}
	l, err := Layout(path)
	if err != nil {
		f.Close()
		return nil, errclass.Invalid(fmt.Errorf("%s: not a disk image: %w", path, err))
	}
	return &Image{File: f, Layout: l}, nil
}

// Close closes the image file.
func (im *Image) Close() error { return im.File.Close() }

// Layout reads the partition table of the image or device at path, with
// the partitions of a basalt MBR disk named by position.
func Layout(path string) (disk.Layout, error) {
	l, err := disk.Read(path)
	if err != nil || l.Scheme != disk.MBR || len(l.Partitions) == 0 {
		return l, err
	}
	f, err := os.Open(path)
	if err != nil {
		return l, err
	}
	defer f.Close()
	p := l.Partitions[0]
	if boot, err := fat.Open(f, p.Start, p.Size); err == nil && boot.Label() == contract.BootFSLabel {
		for i := range l.Partitions {
			if i < len(contract.MBRPartitions) {
				l.Partitions[i].Name = contract.MBRPartitions[i]
			}
		}
	}
	return l, nil
}

// BootPartition returns the boot partition of the image or device at path.
func BootPartition(path string) (disk.Partition, error) {
	l, err := Layout(path)
	if err != nil {
		return disk.Partition{}, err
	}
	return part(l, path, contract.PartBoot)
}

func part(l disk.Layout, name, label string) (disk.Partition, error) {
	for _, p := range l.Partitions {
		if p.Name == label {
			return p, nil
		}
	}
	return disk.Partition{}, errclass.Invalid(fmt.Errorf("%s: no partition %q", name, label))
}

// Part returns the partition named name (a contract.Part* name).
func (im *Image) Part(name string) (disk.Partition, error) {
	return part(im.Layout, im.File.Name(), name)
}

// BootFS opens the FAT boot partition.
func (im *Image) BootFS() (*fat.FS, error) {
	bp, err := im.Part(contract.PartBoot)
	if err != nil {
		return nil, err
	}
	boot, err := fat.Open(im.File, bp.Start, bp.Size)
	if err != nil {
		return nil, fmt.Errorf("boot partition: %w", err)
	}
	return boot, nil
}

// SlotFS opens the squashfs root of slot (nil, nil when the slot is empty).
func (im *Image) SlotFS(slot contract.Slot) (*dsquashfs.FileSystem, error) {
	p, err := im.Part(slot.PartLabel())
	if err != nil {
		return nil, err
	}
	magic := make([]byte, 4)
	if _, err := im.File.ReadAt(magic, p.Start); err != nil {
		return nil, err
	}
	if string(magic) != "hsqs" {
		return nil, nil
	}
	fs, err := dsquashfs.Read(file.New(im.File, true), p.Size, p.Start, 0)
	if err != nil {
		return nil, fmt.Errorf("slot %s: %w", slot, err)
	}
	return fs, nil
}

// ReadSlotFile returns a file of a slot's root (nil, nil when the slot is
// empty or the file absent).
func (im *Image) ReadSlotFile(slot contract.Slot, name string) ([]byte, error) {
	fsys, err := im.SlotFS(slot)
	if err != nil || fsys == nil {
		return nil, err
	}
	p := FSPath(name)
	if !Exists(fsys, p) {
		return nil, nil
	}
	return fs.ReadFile(fsys, p)
}

// FSPath turns a root path ("/etc") into the io/fs form the squashfs
// reader wants ("etc"; "." for the root).
func FSPath(p string) string {
	if p = strings.TrimPrefix(path.Clean("/"+p), "/"); p == "" {
		return "."
	}
	return p
}

// Exists reports whether p is in fsys, looking it up in its parent's
// listing: go-diskfs's squashfs reader reports a missing directory on the
// way with an error that is not fs.ErrNotExist.
func Exists(fsys fs.ReadDirFS, p string) bool {
	ents, err := fsys.ReadDir(path.Dir(p))
	if err != nil {
		return false
	}
	for _, e := range ents {
		if e.Name() == path.Base(p) {
			return true
		}
	}
	return false
}
