package cli

import (
	"crypto/ed25519"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/bundle"
	"github.com/basaltos/basalt/contract/config"
	"github.com/basaltos/basalt/image/disk"
	"github.com/basaltos/basalt/image/fat"
	"github.com/basaltos/basalt/image/tree"
	"github.com/basaltos/basalt/internal/errclass"
)

// TestConfigSignAndAdd: config sign writes FILE.sig and config add
// --sign-key writes NAME.sig next to the drop-in; both verify with the
// public key, and a bad key file is refused with exit 2.
func TestConfigSignAndAdd(t *testing.T) {
	dir := t.TempDir()
	k := ed25519.NewKeyFromSeed(make([]byte, 32))
	kb, _ := bundle.MarshalPrivateKey(k)
	keyFile := filepath.Join(dir, "sign.key")
	os.WriteFile(keyFile, kb, 0o600)
	keys := []ed25519.PublicKey{k.Public().(ed25519.PublicKey)}
	site := filepath.Join(dir, "site.yaml")
	data := []byte("#cloud-config\nhostname: site7\n")
	os.WriteFile(site, data, 0o644)

	if code, out, stderr := runCLI("config", "sign", "--key", keyFile, site); code != 0 || !strings.Contains(out, "wrote "+site+".sig") {
		t.Fatalf("sign: code %d\n%s%s", code, out, stderr)
	}
	sig, _ := os.ReadFile(site + config.SigSuffix)
	if err := config.Verify(keys, data, sig); err != nil {
		t.Errorf("config sign's signature: %v", err)
	}
	if code, _, _ := runCLI("config", "sign", "--key", site, site); code != errclass.ExitInvalid {
		t.Errorf("sign with a non-key: code %d, want %d", code, errclass.ExitInvalid)
	}

	img := filepath.Join(dir, "disk.img")
	l := disk.Layout{Scheme: disk.GPT, DiskGUID: disk.DeriveGUID("s", "disk"), Partitions: []disk.Partition{
		{Name: contract.PartBoot, Type: disk.TypeESP, GUID: disk.DeriveGUID("s", "boot"), Size: 40 << 20},
	}}
	var bp disk.Partition
	if err := disk.Write(img, l, func(p disk.Partition, w io.WriterAt) error {
		bp = p
		return fat.Write(w, p.Size, tree.New(0), fat.Options{Label: contract.BootFSLabel, VolumeID: 7, HiddenSectors: uint32(p.Start / disk.SectorSize)})
	}); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := runCLI("config", "add", img, site, "--name", "50-site.yaml", "--sign-key", keyFile); code != 0 {
		t.Fatalf("add: code %d\n%s%s", code, out, stderr)
	}
	f, _ := os.Open(img)
	defer f.Close()
	fs, err := fat.Open(f, bp.Start, bp.Size)
	if err != nil {
		t.Fatal(err)
	}
	got, err1 := fs.ReadFile(contract.BootConfigDir + "/50-site.yaml")
	gsig, err2 := fs.ReadFile(contract.BootConfigDir + "/50-site.yaml" + config.SigSuffix)
	if err1 != nil || err2 != nil || config.Verify(keys, got, gsig) != nil {
		t.Errorf("drop-in %q / signature %q in the image: %v %v", got, gsig, err1, err2)
	}
}
