package build

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/contract"
	cv "github.com/basaltos/basalt/contract/verity"
	"github.com/basaltos/basalt/image/compress"
	"github.com/basaltos/basalt/image/disk"
	"github.com/basaltos/basalt/image/ext4"
	"github.com/basaltos/basalt/image/fat"
	"github.com/basaltos/basalt/image/initbin"
	"github.com/basaltos/basalt/image/kmod"
	"github.com/basaltos/basalt/image/qcow2"
	"github.com/basaltos/basalt/image/spec"
	"github.com/basaltos/basalt/image/squashfs"
	"github.com/basaltos/basalt/image/tree"
	"github.com/basaltos/basalt/image/verity"
)

// Manifest is NAME-VERSION-BOARD.manifest.json: what the image is and what
// went into it, with sha256 sums users can audit.
type Manifest struct {
	Name       string     `json:"name"`
	Version    string     `json:"version"`
	Board      string     `json:"board"`
	Arch       string     `json:"arch"`
	Kernel     string     `json:"kernel"`
	Epoch      int64      `json:"epoch"`
	Image      FileInfo   `json:"image"`
	Partitions []PartInfo `json:"partitions"`
	Inputs     []Input    `json:"inputs"`
	// Verity describes root-a's hash tree (absent with verity: off).
	Verity *cv.Params `json:"verity,omitempty"`
}

// FileInfo describes the image file.
type FileInfo struct {
	File   string `json:"file"`
	Format Format `json:"format"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// PartInfo describes one partition of the (raw) image.
type PartInfo struct {
	Number int    `json:"number"`
	Name   string `json:"name"`
	Type   string `json:"type"`
	GUID   string `json:"guid"`
	Start  int64  `json:"start"`
	Size   int64  `json:"size"`
	// Content is the size of what was written (squashfs bytes of a root).
	Content int64  `json:"content,omitempty"`
	SHA256  string `json:"sha256"`
}

// rootSquashfs are the root slot's squashfs options: zstd at level 3
// (klauspost/compress's default encoder), 128 KiB blocks. Measured on the
// cloud-amd64 kernel's modules (docs/spec.md): level 3 writes in 1.6 s what
// level 15 (mksquashfs's default) writes in 9.3 s, for 8 % more bytes.
var rootSquashfs = squashfs.Options{Compression: compress.Zstd, Level: 3, BlockSize: 128 << 10}

// ImageName returns the base name of a board's image: NAME-VERSION-BOARD.
func ImageName(s *spec.Spec, board string) string {
	return s.Name + "-" + s.Version + "-" + board
}

// buildBoard builds one board's image and manifest into dir.
func buildBoard(ctx context.Context, s *spec.Spec, o Options, b *boards.Board, in *inputs, dir string) (Artifact, error) {
	st := &stepper{ctx: ctx, board: b.Name, fn: o.Step, begin: o.Begin}
	work := filepath.Join(dir, b.Name+".work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return Artifact{}, err
	}
	defer os.RemoveAll(work)

	var r *resolved
	if err := st.do("resolve inputs", func() (err error) { r, err = in.resolve(b); return err }); err != nil {
		return Artifact{}, err
	}
	if err := st.do("orchestrator", func() error {
		var list []Input
		var err error
		r.k3s, list, err = in.k3s(b)
		r.list = append(r.list, list...)
		return err
	}); err != nil {
		return Artifact{}, err
	}
	if r.k3s != nil && len(r.k3s.images) > 0 {
		if err := st.do("containerd seed", func() (err error) { r.k3s.seed, err = in.containerdSeed(r.k3s.images); return err }); err != nil {
			return Artifact{}, err
		}
	}
	initBin, err := initbin.Get(b.Arch)
	if err != nil {
		return Artifact{}, err
	}
	initSum := sha256.Sum256(initBin)
	r.list = append(r.list, Input{Name: "basalt-init", Kind: "init", Source: "embedded (" + string(b.Arch) + ")", SHA256: hex.EncodeToString(initSum[:])})

	var ix *kmod.Index
	if err := st.do("kernel modules", func() (err error) { ix, err = kmod.Scan(r.kernel.Modules); return err }); err != nil {
		return Artifact{}, err
	}
	if r.k3s != nil {
		if err := checkK3sModules(ix, r.kernel.Release); err != nil {
			return Artifact{}, err
		}
	}
	initrd := filepath.Join(work, "initrd")
	if err := st.do("initramfs", func() error {
		t, err := initramfsTree(b, r.kernel, ix, initBin, o.Epoch)
		if err != nil {
			return err
		}
		return writeInitramfs(t, initrd)
	}); err != nil {
		return Artifact{}, err
	}

	rootA := filepath.Join(work, "root-a.squashfs")
	var rootSize int64
	if err := st.do("root squashfs", func() error {
		t, ov, err := rootTree(s, b, r, ix, initBin, o.Epoch)
		if err != nil {
			return err
		}
		r.list = append(r.list, ov...)
		if _, err := squashfs.WriteFile(rootA, t, rootSquashfs); err != nil {
			return err
		}
		fi, err := os.Stat(rootA)
		rootSize = fi.Size()
		return err
	}); err != nil {
		return Artifact{}, err
	}
	var vp *cv.Params
	if s.VerityOn() {
		if err := st.do("verity hash tree", func() (err error) { vp, rootSize, err = appendHashTree(rootA, rootSize, seed(s, b)); return err }); err != nil {
			return Artifact{}, err
		}
	}

	var boot *tree.Tree
	if err := st.do("boot partition tree", func() (err error) { boot, err = bootTree(s, b, r, initrd, vp, o.Epoch); return err }); err != nil {
		return Artifact{}, err
	}

	layout, err := diskLayout(s, b, rootSize)
	if err != nil {
		return Artifact{}, err
	}
	name := ImageName(s, b.Name)
	raw := filepath.Join(work, name+".img")
	if err := st.do("disk image", func() error { return writeDisk(raw, layout, s, b, boot, rootA, o.Epoch) }); err != nil {
		return Artifact{}, err
	}
	var bundlePath string
	if o.SignKey != nil || o.Bundle {
		bundlePath = filepath.Join(dir, name+".bundle")
		if err := st.do("update bundle", func() error { return writeBundle(bundlePath, s, b, r, rootA, initrd, vp, o.Epoch, o.SignKey) }); err != nil {
			return Artifact{}, err
		}
	}
	m := Manifest{Name: s.Name, Version: s.Version, Board: b.Name, Arch: string(b.Arch), Kernel: r.kernel.Release, Epoch: o.Epoch, Inputs: r.list, Verity: vp}
	if err := st.do("checksums", func() (err error) { m.Partitions, m.Image, err = hashImage(ctx, raw, layout, rootSize); return err }); err != nil {
		return Artifact{}, err
	}
	img := filepath.Join(dir, name+".img")
	if o.Format == QCOW2 {
		img = filepath.Join(dir, name+".qcow2")
		if err := st.do("qcow2", func() error { return qcow2.Convert(img, raw) }); err != nil {
			return Artifact{}, err
		}
		if m.Image.SHA256, err = fileSHA(img); err != nil {
			return Artifact{}, err
		}
		fi, err := os.Stat(img)
		if err != nil {
			return Artifact{}, err
		}
		m.Image.Size = fi.Size()
	} else if err := os.Rename(raw, img); err != nil {
		return Artifact{}, err
	}
	m.Image.File, m.Image.Format = filepath.Base(img), o.Format
	man := filepath.Join(dir, name+".manifest.json")
	if err := writeManifest(man, m); err != nil {
		return Artifact{}, err
	}
	return Artifact{Board: b.Name, Image: img, Manifest: man, Bundle: bundlePath, Format: o.Format, Size: m.Image.Size, SHA256: m.Image.SHA256}, nil
}

// appendHashTree writes the dm-verity hash area after the squashfs in
// path (size bytes, zero-padded to a block) and returns its parameters and
// the new content size: what a root slot holds. Salt and superblock UUID
// derive from the seed, so two builds give the same bytes, and do not
// depend on the slot, so the same bytes fit either slot.
func appendHashTree(path string, size int64, seed string) (*cv.Params, int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	salt := sha256.Sum256([]byte("basalt-verity-salt\x00" + seed))
	id := sha256.Sum256([]byte("basalt-verity-uuid\x00" + seed))
	var uuid [16]byte
	copy(uuid[:], id[:16])
	uuid[6] = uuid[6]&0x0f | 0x40
	uuid[8] = uuid[8]&0x3f | 0x80
	t, err := verity.Build(f, size, salt[:], uuid)
	if err != nil {
		return nil, 0, err
	}
	if _, err := f.WriteAt(t.Area, t.Offset()); err != nil {
		return nil, 0, fmt.Errorf("verity: write hash area: %w", err)
	}
	p := cv.ParamsOf(t.Superblock, t.RootHash)
	return &p, t.Offset() + int64(len(t.Area)), f.Close()
}

// seed is what every GUID and volume id of a board's image derives from.
func seed(s *spec.Spec, b *boards.Board) string { return s.Name + "\x00" + s.Version + "\x00" + b.Name }

// diskLayout sizes the four partitions of DESIGN.md.
func diskLayout(s *spec.Spec, b *boards.Board, rootContent int64) (disk.Layout, error) {
	slot := int64(s.Disk.RootSlot)
	if slot == 0 {
		slot = int64(spec.AutoRootSlot(rootContent))
	} else if rootContent > slot {
		return disk.Layout{}, invalidf("root filesystem of %d bytes (%s) does not fit a root slot of %d bytes (%s: %s); raise it or remove it to size automatically",
			rootContent, spec.Size(rootContent), slot, s.Where(".disk.rootSlot"), s.Disk.RootSlot)
	}
	l, err := partitions(s, b, slot)
	if err != nil {
		return l, err
	}
	if s.Disk.Total != 0 {
		sizes := []int64{int64(s.Disk.Boot), slot, slot, int64(s.Disk.Data)}
		if need := disk.MinSize(l.Scheme, sizes...); int64(s.Disk.Total) < need {
			return l, invalidf("%s: %s cannot hold boot %s + 2 x root slot %s + data %s + %s of tables (%s)", s.Where(".disk.total"), s.Disk.Total,
				s.Disk.Boot, spec.Size(slot), s.Disk.Data, spec.Size(need-sizes[0]-2*slot-sizes[3]), spec.Size(need))
		}
		l.Partitions[3].Size = 0 // the rest of the disk: at least .disk.data, by MinSize
	}
	res, err := l.Resolve()
	if err != nil {
		return l, err
	}
	return res, nil
}

// partitions are DESIGN.md's four on the board's table, sizes from the
// spec (the data partition's may grow to the disk's end). GPT names them
// (PARTLABEL) and gives each a GUID; MBR (the Pi firmware reads only MBR)
// has type bytes, the boot FAT first and active, and a disk signature
// (PARTUUID=SIGNATURE-02 is root a): all derived from the spec and the
// board, never random. On MBR the device finds the partitions by position
// (contract.MBRPartitions).
func partitions(s *spec.Spec, b *boards.Board, slot int64) (disk.Layout, error) {
	scheme, err := disk.ParseScheme(b.Table)
	if err != nil {
		return disk.Layout{}, fmt.Errorf("board %s: %w", b.Name, err)
	}
	goarch, _ := b.Arch.GOARCH()
	sd := seed(s, b)
	l := disk.Layout{Scheme: scheme, Size: int64(s.Disk.Total)}
	sizes := []int64{int64(s.Disk.Boot), slot, slot, int64(s.Disk.Data)}
	for i, name := range []string{contract.PartBoot, contract.PartRootA, contract.PartRootB, contract.PartData} {
		p := disk.Partition{Name: name, Size: sizes[i]}
		if scheme == disk.MBR {
			p.MBRType, p.Bootable = disk.MBRTypeLinux, i == 0
			if i == 0 {
				p.MBRType = disk.MBRTypeFAT32LBA
			}
		} else {
			p.GUID = disk.DeriveGUID(sd, name)
			switch name {
			case contract.PartBoot:
				p.Type = disk.TypeESP
			case contract.PartData:
				p.Type = disk.TypeLinuxFS
			default:
				p.Type, p.Attributes = disk.RootType(goarch), disk.AttrReadOnly
			}
		}
		l.Partitions = append(l.Partitions, p)
	}
	if scheme == disk.MBR {
		l.DiskID = disk.DeriveDiskID(sd)
	} else {
		l.DiskGUID = disk.DeriveGUID(sd, "disk")
	}
	return l, nil
}

// writeDisk writes the sparse image: FAT32 boot, squashfs root A and the
// same bytes in root B (the spare stage 1 falls back to; the first update
// overwrites it), an empty ext4 data filesystem (grown
// to fill the medium by the device on first boot).
func writeDisk(path string, l disk.Layout, s *spec.Spec, b *boards.Board, boot *tree.Tree, rootA string, epoch int64) error {
	volID := sha256.Sum256([]byte("basalt-fat-volume-id\x00" + seed(s, b)))
	return disk.Write(path, l, func(p disk.Partition, w io.WriterAt) error {
		switch p.Name {
		case contract.PartBoot:
			return fat.Write(w, p.Size, boot, fat.Options{
				Label:         contract.BootFSLabel,
				VolumeID:      binary.LittleEndian.Uint32(volID[:4]),
				HiddenSectors: uint32(p.Start / disk.SectorSize),
			})
		case contract.PartRootA, contract.PartRootB:
			f, err := os.Open(rootA)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(io.NewOffsetWriter(w, 0), f)
			return err
		case contract.PartData:
			uuid := sha256.Sum256([]byte("basalt-ext4-uuid\x00" + seed(s, b)))
			hashSeed := sha256.Sum256([]byte("basalt-ext4-hash-seed\x00" + seed(s, b)))
			opt := ext4.Options{Label: contract.DataFSLabel, Epoch: epoch}
			copy(opt.UUID[:], uuid[:16])
			copy(opt.HashSeed[:], hashSeed[:16])
			opt.UUID[6] = opt.UUID[6]&0x0f | 0x40
			opt.UUID[8] = opt.UUID[8]&0x3f | 0x80
			return ext4.Write(w, p.Size, opt)
		}
		return nil
	})
}
