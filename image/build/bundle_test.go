package build

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/basaltos/basalt/contract/bundle"
	"github.com/basaltos/basalt/image/disk"
)

// TestBuildBundle: --sign-key writes NAME-VERSION-BOARD.bundle, verified by
// the device's reader; its rootfs is the bytes of slot A, and the root
// trusts both keys of update.publicKey (a list: key rotation).
func TestBuildBundle(t *testing.T) {
	dir := t.TempDir()
	k1 := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	k2 := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32))
	for i, k := range []ed25519.PrivateKey{k1, k2} {
		b, _ := bundle.MarshalPublicKey(k.Public().(ed25519.PublicKey))
		os.WriteFile(filepath.Join(dir, []string{"k1.pub", "k2.pub"}[i]), b, 0o644)
	}
	s := writeSpec(t, dir, "update:\n  publicKey: [k1.pub, k2.pub]\n")
	arts, err := Build(context.Background(), s, Options{OutDir: filepath.Join(dir, "out"), Epoch: 1700000000, SignKey: k2})
	if err != nil {
		t.Fatal(err)
	}
	a := arts[0]
	if filepath.Base(a.Bundle) != "basalt-demo-0.1.0-qemu-x86_64.bundle" {
		t.Fatalf("bundle %q", a.Bundle)
	}
	f, err := os.Open(a.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := bundle.Open(f, []ed25519.PublicKey{k1.Public().(ed25519.PublicKey)}); err == nil {
		t.Fatal("bundle signed by k2 verified with k1")
	}
	f.Seek(0, io.SeekStart)
	r, err := bundle.Open(f, []ed25519.PublicKey{k2.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	m := r.Manifest()
	if m.Version != "0.1.0" || m.Board != "qemu-x86_64" || m.Compat != "basalt-demo" || m.Cmdline != "console=ttyS0 basalt.slot=${slot} ro panic=10" {
		t.Errorf("manifest %+v", m)
	}
	l, err := disk.Read(a.Image)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := os.Open(a.Image)
	defer img.Close()
	ps, data := readPayloads(t, r)
	for _, p := range ps {
		b := data[p.Name]
		if p.Name == bundle.RootFS {
			// The payload is squashfs + hash tree, verified by the real tool
			// with the manifest's root hash.
			if p.Verity == nil || p.Verity.HashOffset <= 0 || p.Verity.HashOffset >= p.Size {
				t.Errorf("rootfs verity %+v (size %d)", p.Verity, p.Size)
			} else {
				pf := filepath.Join(t.TempDir(), "rootfs")
				os.WriteFile(pf, b, 0o644)
				run(t, "veritysetup", "verify", fmt.Sprintf("--hash-offset=%d", p.Verity.HashOffset), pf, pf, p.Verity.RootHash)
			}
			slot := make([]byte, len(b))
			img.ReadAt(slot, l.Partitions[1].Start)
			if !bytes.Equal(slot, b) {
				t.Error("rootfs payload differs from slot A's bytes")
			}
		}
	}
	root := extract(t, a.Image, l.Partitions[1])
	keys, err := bundle.ParsePublicKeys([]byte(run(t, "unsquashfs", "-cat", root, bundle.KeysFile)))
	if err != nil || len(keys) != 2 || !keys[1].Equal(k2.Public()) {
		t.Errorf("baked keys %v %v", keys, err)
	}
	// Reproducible: the same build gives the same bundle.
	arts2, err := Build(context.Background(), s, Options{OutDir: filepath.Join(dir, "out2"), Epoch: 1700000000, SignKey: k2})
	if err != nil {
		t.Fatal(err)
	}
	s1, _ := fileSHA(a.Bundle)
	s2, _ := fileSHA(arts2[0].Bundle)
	if s1 != s2 {
		t.Errorf("bundle sha256 %s then %s", s1, s2)
	}
}

// readPayloads reads (and so verifies) every payload of r.
func readPayloads(t *testing.T, r *bundle.Reader) ([]bundle.Payload, map[string][]byte) {
	t.Helper()
	var ps []bundle.Payload
	data := map[string][]byte{}
	for {
		p, pr, err := r.Next()
		if err == io.EOF {
			return ps, data
		}
		if err != nil {
			t.Fatal(err)
		}
		if data[p.Name], err = io.ReadAll(pr); err != nil {
			t.Fatalf("payload %s: %v", p.Name, err)
		}
		ps = append(ps, p)
	}
}
