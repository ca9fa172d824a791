//go:build e2e

package qemu_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/verity"
	"github.com/basaltos/basalt/image/disk"
)

// TestE2EVerityRuntimeCorruption: a block of the root that is read only
// after boot (a service's program, incompressible so that squashfs stores
// it as is and the test can find it) has one flipped byte. The root mounts
// and the device comes up; the service's exec reads the block, dm-verity
// refuses it, and stage 2 reports the root corrupt on the console (the
// slot is the only one, so it reports instead of rebooting).
func TestE2EVerityRuntimeCorruption(t *testing.T) {
	const board = "qemu-x86_64"
	p, prog := randomFile(t, "rotten", 256<<10, 12, 34)
	img := buildSpecImage(t, board, fmt.Sprintf("overlays:\n  - {from: %s, to: /usr/bin/rotten, mode: \"0755\"}\n"+
		"services:\n  - {name: rotten, path: /usr/bin/rotten, restart: once}\n", p))
	flipAt(t, img, prog[:64])

	ctx, cancel := context.WithTimeout(context.Background(), firmwareDeadline)
	defer cancel()
	m := startImage(ctx, t, board, img, 0)
	expect(ctx, t, m, contract.RootMountedMarker(contract.SlotA))
	expect(ctx, t, m, contract.MarkerReady)
	t.Logf("%s", expect(ctx, t, m, "verity: ROOT CORRUPT: a block of slot a's root did not match its hash tree"))
}

// randomFile writes size incompressible bytes (squashfs stores them as
// they are) from a PCG seeded with s1, s2 to a temporary file name, and
// returns its path and bytes.
func randomFile(t testing.TB, name string, size int, s1, s2 uint64) (string, []byte) {
	t.Helper()
	b := make([]byte, size)
	r := rand.New(rand.NewPCG(s1, s2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p, b
}

// flipAt flips one byte of the first dm-verity block (4 KiB, aligned to the
// partition's start) that begins at or after the first place of root a
// holding pattern (the image is sparse: a raw search of root a's extent).
// Aligned, because the block where the pattern starts also holds the end of
// the file before it, which can be basalt-init's own: a flip there kills
// PID 1 (seen on CI: SIGBUS, "Attempted to kill init!") instead of the
// service.
func flipAt(t *testing.T, img string, pattern []byte) {
	t.Helper()
	l, err := disk.Read(img)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range l.Partitions {
		if p.Name == contract.PartRootA {
			i := bytes.Index(b[p.Start:p.Start+p.Size], pattern)
			if i < 0 {
				t.Fatalf("the service's bytes are not stored as is in %s", contract.PartRootA)
			}
			const block = verity.BlockSize
			flipByte(t, img, (int64(i)+block-1)/block*block+100)
			return
		}
	}
	t.Fatalf("%s has no %s", img, contract.PartRootA)
}
