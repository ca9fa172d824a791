package build

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/ab"
	"github.com/basaltos/basalt/contract/bundle"
	cv "github.com/basaltos/basalt/contract/verity"
	"github.com/basaltos/basalt/image/spec"
)

// writeBundle writes the update bundle of one board's build
// (contract/bundle): the slot's root squashfs (with its verity hash tree
// and parameters when vp is not nil), kernel, initrd and device trees, signed with key (nil: unsigned, for `basalt bundle sign`).
// A Secure Boot image's bundle carries each slot's signed UKI in place of
// kernel and initrd (the UKI's signed command line names its slot).
func writeBundle(path string, s *spec.Spec, b *boards.Board, r *resolved, rootA, initrd string, vp *cv.Params, epoch int64, key ed25519.PrivateKey) error {
	files := map[string]string{bundle.RootFS: rootA, bundle.Kernel: r.kernel.Vmlinuz, bundle.Initrd: initrd}
	m := bundle.Manifest{Format: bundle.FormatVersion, Image: s.Name, Version: s.Version, Board: b.Name, Compat: s.Name,
		Cmdline: cmdline(b, ab.SlotPlaceholder), Epoch: epoch}
	if s.Update != nil {
		m.AllowDowngrade = s.Update.AllowDowngrade
	}
	add := func(name, kind, file string) error {
		sum, err := fileSHA(file)
		if err != nil {
			return err
		}
		fi, err := os.Stat(file)
		if err != nil {
			return err
		}
		m.Payloads = append(m.Payloads, bundle.Payload{Name: name, Kind: kind, Size: fi.Size(), SHA256: sum})
		files[name] = file
		return nil
	}
	if err := add(bundle.RootFS, bundle.RootFS, rootA); err != nil {
		return err
	}
	if r.sb != nil {
		for _, slot := range []contract.Slot{contract.SlotA, contract.SlotB} {
			uki, err := slotUKI(s, b, r, initrd, vp, slot)
			if err != nil {
				return fmt.Errorf("unified kernel image of slot %s: %w", slot, err)
			}
			f := filepath.Join(filepath.Dir(rootA), bundle.UKIName(slot)+".efi") // the work dir
			if err := os.WriteFile(f, uki, 0o644); err != nil {
				return err
			}
			defer os.Remove(f)
			if err := add(bundle.UKIName(slot), bundle.UKI, f); err != nil {
				return err
			}
		}
	} else {
		for _, k := range []string{bundle.Kernel, bundle.Initrd} {
			if err := add(k, k, files[k]); err != nil {
				return err
			}
		}
	}
	m.Payloads[0].Verity = vp // the rootfs: squashfs + hash tree
	for _, d := range b.DTBs {
		if err := add(bundle.DTBPrefix+d, bundle.DTB, filepath.Join(r.kernel.DTBs, filepath.FromSlash(d))); err != nil {
			return err
		}
	}
	raw, err := bundle.MarshalManifest(m)
	if err != nil {
		return err
	}
	var sig []byte
	if key != nil {
		sig = bundle.Sign(raw, key)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = bundle.Write(f, raw, sig, func(p bundle.Payload) (io.ReadCloser, error) { return os.Open(files[p.Name]) })
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
