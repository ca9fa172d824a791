package cli

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/ab"
	cv "github.com/basaltos/basalt/contract/verity"
	"github.com/basaltos/basalt/image/disk"
	"github.com/basaltos/basalt/image/fat"
	"github.com/basaltos/basalt/image/secureboot"
	"github.com/basaltos/basalt/image/squashfs"
	"github.com/basaltos/basalt/image/tree"
	"github.com/basaltos/basalt/image/verity"
	"github.com/basaltos/basalt/internal/testutil"
)

// TestInspectVerity: inspect recomputes slot a's tree against the root
// hash in a/args.txt, and says FAILS for a flipped byte.
func TestInspectVerity(t *testing.T) {
	dir := t.TempDir()
	root := tree.New(0)
	root.AddBytes("etc/basalt-release", 0o644, []byte("KERNEL=6.1.0-test\n"))
	big := make([]byte, 600<<10) // incompressible: a tree of 150 blocks, two levels
	r := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	root.AddBytes("big", 0o644, big)
	sqPath := filepath.Join(dir, "root.sqfs")
	if _, err := squashfs.WriteFile(sqPath, root, squashfs.Options{}); err != nil {
		t.Fatal(err)
	}
	sq, err := os.ReadFile(sqPath)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := verity.Build(bytes.NewReader(sq), int64(len(sq)), []byte("salt"), [16]byte{1})
	if err != nil {
		t.Fatal(err)
	}
	slot := make([]byte, tr.Offset()+int64(len(tr.Area)))
	copy(slot, sq)
	copy(slot[tr.Offset():], tr.Area)
	p := cv.ParamsOf(tr.Superblock, tr.RootHash)
	check := func(t *testing.T, uki func(cmdline string) ([]byte, error)) {
		boot := tree.New(0)
		if uki == nil {
			boot.AddBytes("a/"+contract.SlotArgsFile, 0o644, []byte("basalt_args="+p.CmdlineArgs()+"\n"))
			boot.AddBytes(ab.FailureFile, 0o644, []byte("b: stage 1 refused its root: dm-verity found corruption\n"))
		} else {
			signed, err := uki(p.CmdlineArgs())
			if err != nil {
				t.Fatal(err)
			}
			boot.AddBytes("a/"+contract.UKIFile, 0o644, signed)
		}

		img := filepath.Join(t.TempDir(), "disk.img")
		l := disk.Layout{Scheme: disk.GPT, DiskGUID: disk.DeriveGUID("s", "disk"), Partitions: []disk.Partition{
			{Name: contract.PartBoot, Type: disk.TypeESP, GUID: disk.DeriveGUID("s", "boot"), Size: 40 << 20},
			{Name: contract.PartRootA, Type: disk.TypeLinuxFS, GUID: disk.DeriveGUID("s", "a"), Size: 4 << 20},
			{Name: contract.PartRootB, Type: disk.TypeLinuxFS, GUID: disk.DeriveGUID("s", "b"), Size: 4 << 20},
		}}
		var rootStart int64
		if err := disk.Write(img, l, func(p disk.Partition, w io.WriterAt) error {
			switch p.Name {
			case contract.PartBoot:
				return fat.Write(w, p.Size, boot, fat.Options{Label: contract.BootFSLabel, VolumeID: 7, HiddenSectors: uint32(p.Start / disk.SectorSize)})
			case contract.PartRootA:
				rootStart = p.Start
				_, err := w.WriteAt(slot, 0)
				return err
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		code, out, stderr := runCLI("inspect", img)
		if want := "verity: root hash " + p.RootHash + ": verifies"; code != 0 || !strings.Contains(out, want) {
			t.Fatalf("inspect: code %d, want %q in:\n%s%s", code, want, out, stderr)
		}
		f, err := os.OpenFile(img, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte{0xff}, rootStart+tr.Offset()-100); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if want := "slot b failed at boot (" + ab.FailureFile + "): stage 1 refused its root: dm-verity found corruption"; uki == nil && !strings.Contains(out, want) {
			t.Errorf("inspect does not show the failure record (%q):\n%s", want, out)
		}
		if uki != nil && !strings.Contains(out, "uki: a/"+contract.UKIFile+` signed by "CN=basalt inspect test db" (cert sha256 `) {
			t.Errorf("inspect does not say who signed the UKI:\n%s", out)
		}
		if _, out, _ := runCLI("inspect", img); !strings.Contains(out, p.RootHash+": FAILS: verity: the stored hash tree does not match the data") {
			t.Errorf("inspect of a flipped byte:\n%s", out)
		}
	}
	t.Run("args.txt", func(t *testing.T) { check(t, nil) })
	// Secure Boot: the root hash is in the signed UKI's command line.
	t.Run("uki", func(t *testing.T) {
		testutil.NeedFile(t, efiStub, "apt-get install systemd-boot-efi")
		stub, err := os.ReadFile(efiStub)
		if err != nil {
			t.Fatal(err)
		}
		db, err := secureboot.Generate("basalt inspect test db", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		check(t, func(cmdline string) ([]byte, error) {
			u, err := secureboot.UKI(stub, "ID=basalt\n", "basalt.slot=a "+cmdline, []byte("fake initrd"), []byte("fake kernel"))
			if err != nil {
				return nil, err
			}
			return secureboot.Sign(u, db)
		})
	})
}

// efiStub is the host's systemd EFI stub (Debian systemd-boot-efi).
const efiStub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
