package build

import (
	"fmt"
	"os"
	"path"
	"path/filepath"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/ab"
	cv "github.com/basaltos/basalt/contract/verity"
	"github.com/basaltos/basalt/image/debian"
	"github.com/basaltos/basalt/image/secureboot"
	"github.com/basaltos/basalt/image/spec"
)

// signedBoot is what a Secure Boot image (spec secureBoot) needs: systemd's
// EFI stub, the db signer, and the enrollment files for systemd-boot.
type signedBoot struct {
	stub   []byte
	signer *secureboot.Signer
	enroll []bootFile // loader/keys/auto/*.auth; none with key+cert
}

// resolveSecureBoot reads the stub (the spec's file, or the board's
// package from debs) and the keys of s.SecureBoot.
func resolveSecureBoot(s *spec.Spec, b *boards.Board, debs map[string]debian.Fetched, r *resolved) error {
	sb := s.SecureBoot
	if b.EFIStub == nil {
		return invalidf("%s: board %s has no EFI stub: Secure Boot needs a UEFI board", s.Where(".secureBoot"), b.Name)
	}
	out := &signedBoot{}
	var err error
	if sb.Stub != "" {
		p := s.Resolve(sb.Stub)
		sum, err := checkSHA(p, "", s.Where(".secureBoot.stub"), s.Where(".secureBoot.stub"))
		if err != nil {
			return err
		}
		if out.stub, err = os.ReadFile(p); err != nil {
			return invalidf("%s: %v", s.Where(".secureBoot.stub"), err)
		}
		r.list = append(r.list, Input{Name: "efi-stub", Kind: "file", Source: p, SHA256: sum})
	} else if out.stub, err = readDebFile(debs[b.EFIStub.Package].Path, b.EFIStub.From); err != nil {
		return err
	}
	key, cert, where := sb.Key, sb.Cert, s.Where(".secureBoot.key")
	if sb.Dir != "" {
		dir := s.Resolve(sb.Dir)
		key, cert, where = filepath.Join(dir, secureboot.DBKeyFile), filepath.Join(dir, secureboot.DBCertFile), s.Where(".secureBoot.dir")
		for _, n := range secureboot.AuthFiles {
			data, err := os.ReadFile(filepath.Join(dir, n))
			if err != nil {
				return invalidf("%s: %v", where, err)
			}
			out.enroll = append(out.enroll, bootFile{To: ab.BLSKeysDir + "/" + n, Data: data})
		}
	}
	if out.signer, err = secureboot.LoadSigner(s.Resolve(key), s.Resolve(cert)); err != nil {
		return invalidf("%s: %v", where, err)
	}
	r.sb = out
	return nil
}

// osRelease is the UKI's .osrel: who this kernel belongs to (systemd-boot
// shows PRETTY_NAME; the fields are os-release(5) ones).
func osRelease(s *spec.Spec) string {
	return fmt.Sprintf("ID=basalt\nNAME=%s\nVERSION_ID=%s\nPRETTY_NAME=\"%s %s\"\n", s.Name, s.Version, s.Name, s.Version)
}

// slotUKI is slot's signed unified kernel image: the stub, the kernel,
// initrd, and the slot's whole command line (its verity root hash too, so
// the signature covers the root).
func slotUKI(s *spec.Spec, b *boards.Board, r *resolved, initrd string, vp *cv.Params, slot contract.Slot) ([]byte, error) {
	kernel, err := os.ReadFile(r.kernel.Vmlinuz)
	if err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	rd, err := os.ReadFile(initrd)
	if err != nil {
		return nil, err
	}
	e := ab.Entry{Slot: slot, Cmdline: cmdline(b, ab.SlotPlaceholder), Args: slotArgs(vp)}
	uki, err := secureboot.UKI(r.sb.stub, osRelease(s), e.CommandLine(), rd, kernel)
	if err != nil {
		return nil, err
	}
	return secureboot.Sign(uki, r.sb.signer)
}

// bootFiles returns the bootloader's files signed, and the enrollment keys.
func (sb *signedBoot) bootFiles(boot []bootFile) ([]bootFile, error) {
	var out []bootFile
	for _, f := range boot {
		signed, err := secureboot.Sign(f.Data, sb.signer)
		if err != nil {
			return nil, fmt.Errorf("sign %s: %w", path.Base(f.To), err)
		}
		out = append(out, bootFile{To: f.To, Data: signed})
	}
	return append(out, sb.enroll...), nil
}
