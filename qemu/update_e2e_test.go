//go:build e2e

package qemu_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/bundle"
	"github.com/basaltos/basalt/image/build"
	"github.com/basaltos/basalt/image/spec"
	"github.com/basaltos/basalt/internal/testutil"
	"github.com/basaltos/basalt/qemu"
)

// updateDeadline bounds one update scenario (several boots under TCG).
const updateDeadline = 20 * time.Minute

// updateKey signs the test bundles (fixed seed: a test key, never a real one).
var updateKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{42}, 32))

// channelPort is the guest side of the forward to `basalt serve`.
const channelPort = 8080

// updateSpec builds version v of a small image for board, trusting
// updateKey, polling the channel on the host (guestfwd) with one trial
// boot and a 20 s health gate; extra YAML is appended (services).
func updateSpec(t *testing.T, dir, board, v, extra string) *spec.Spec {
	t.Helper()
	b, err := boards.Get(board)
	if err != nil {
		t.Fatal(err)
	}
	k := testKernel(t, b.Arch)
	pub, _ := bundle.MarshalPublicKey(updateKey.Public().(ed25519.PublicKey))
	os.WriteFile(filepath.Join(dir, "update.pub"), pub, 0o644)
	y := fmt.Sprintf(`apiVersion: basalt.dev/v1alpha1
kind: Image
name: upd
version: %s
boards: [%s]
kernel:
  %s: {vmlinuz: %s/vmlinuz, modules: %s/lib/modules}
update:
  publicKey: update.pub
config:
  update: {channel: "http://%s:%d/stable", interval: 1m, tries: 1, health_timeout: 20s}
`, v, board, board, k, k, qemu.GuestHost, channelPort)
	if efi, ok := sdBoot[board]; ok {
		abs, _ := filepath.Abs(efi)
		testutil.NeedFile(t, abs, "make testdata (scripts/testkernel.sh unpacks systemd-boot-efi of the arch)")
		y += fmt.Sprintf("bootloader:\n  %s: {file: %s}\n", board, abs)
	}
	p := filepath.Join(dir, "basalt.yaml")
	os.WriteFile(p, []byte(y+extra), 0o644)
	s, _, err := spec.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// buildVersion builds version v and returns the image and the signed bundle.
func buildVersion(t *testing.T, board, v, extra string) (img, bun string) {
	t.Helper()
	dir := t.TempDir()
	s := updateSpec(t, dir, board, v, extra)
	arts, err := build.Build(context.Background(), s, build.Options{OutDir: filepath.Join(dir, "out"), Offline: true, CacheDir: filepath.Join(dir, "cache"), SignKey: updateKey})
	if err != nil {
		t.Fatal(err)
	}
	return arts[0].Image, arts[0].Bundle
}

// channel is `basalt serve` on the host, serving dir/stable.
type channel struct {
	dir  string
	port int
}

func serveChannel(t *testing.T) *channel {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "basalt")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/basalt").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	c := &channel{dir: t.TempDir(), port: port}
	os.MkdirAll(filepath.Join(c.dir, "stable"), 0o755)
	cmd := exec.Command(bin, "serve", c.dir, "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	if !sc.Scan() || !strings.Contains(sc.Text(), "serving") {
		t.Fatalf("basalt serve: %q", sc.Text())
	}
	go io.Copy(io.Discard, out)
	return c
}

// publish makes bun the only bundle of the channel.
func (c *channel) publish(t *testing.T, bun string) {
	t.Helper()
	d := filepath.Join(c.dir, "stable")
	old, _ := filepath.Glob(filepath.Join(d, "*.bundle"))
	for _, o := range old {
		os.Remove(o)
	}
	b, err := os.ReadFile(bun)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(d, filepath.Base(bun)), b, 0o644)
}

// bootDisk boots img (written in place: reboots and power cuts keep its
// state) with the channel reachable at GuestHost:channelPort.
func bootDisk(ctx context.Context, t *testing.T, board, img string, c *channel) *qemu.Machine {
	t.Helper()
	b, _ := boards.Get(board)
	testutil.NeedTool(t, b.QEMU.Binary)
	m, err := qemu.Start(ctx, qemu.Config{Board: b, Image: img, Format: qemu.Raw,
		Net: qemu.Net{User: true, ToHost: []qemu.ToHost{{GuestPort: channelPort, HostPort: c.port}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Kill(); m.Wait() })
	return m
}

func stop(m *qemu.Machine) { m.Kill(); m.Wait() }

// TestE2EUpdate: v1 boots, pulls v2 from `basalt serve` over the QEMU user
// network, reboots into slot b on trial, passes the health gate and
// commits; the next boot is still b, with v1's data (its machine id).
func TestE2EUpdate(t *testing.T) {
	for _, board := range []string{"qemu-x86_64", "qemu-armv7"} {
		t.Run(board, func(t *testing.T) {
			img, _ := buildVersion(t, board, "1.0.0", "")
			_, v2 := buildVersion(t, board, "1.1.0", "")
			c := serveChannel(t)
			c.publish(t, v2)
			ctx, cancel := context.WithTimeout(context.Background(), updateDeadline)
			defer cancel()
			m := bootDisk(ctx, t, board, img, c)
			expect(ctx, t, m, contract.RootMountedMarker(contract.SlotA))
			id := expect(ctx, t, m, "basalt: new machine id")
			expect(ctx, t, m, "basalt: update: channel offers upd 1.1.0")
			expect(ctx, t, m, "basalt: update: slot b armed for trial: upd 1.1.0, 1 tries")
			expect(ctx, t, m, contract.RootMountedMarker(contract.SlotB))
			expect(ctx, t, m, "basalt: update: slot b (1.1.0) booted on trial")
			expect(ctx, t, m, "basalt: update: committed 1.1.0 in slot b: health gate passed")
			log := m.Log()
			stop(m)
			if strings.Count(log, "basalt: new machine id") != 1 {
				t.Errorf("slot b made a new machine id: data of v1 lost (v1: %s)", id)
			}
			m = bootDisk(ctx, t, board, img, c)
			expect(ctx, t, m, contract.RootMountedMarker(contract.SlotB))
			expect(ctx, t, m, contract.MarkerReady)
			if strings.Contains(m.Log(), "new machine id") {
				t.Errorf("the next boot made a new machine id")
			}
			t.Logf("%s: v1 -> v2 committed, next boot on b", board)
		})
	}
}

// TestE2EUpdateHealthGateFails is a negative twin: v3's service crashes,
// its trial boot fails the health gate and reboots, the loader returns to
// slot a, which says which version failed and why.
func TestE2EUpdateHealthGateFails(t *testing.T) {
	board := "qemu-x86_64"
	img, _ := buildVersion(t, board, "1.0.0", "")
	_, v3 := buildVersion(t, board, "1.2.0", "services:\n  - {name: crasher, path: /sbin/basalt-init, args: [no-such-command], restart: always}\n")
	c := serveChannel(t)
	c.publish(t, v3)
	ctx, cancel := context.WithTimeout(context.Background(), updateDeadline)
	defer cancel()
	m := bootDisk(ctx, t, board, img, c)
	expect(ctx, t, m, "basalt: update: slot b armed for trial: upd 1.2.0")
	expect(ctx, t, m, contract.RootMountedMarker(contract.SlotB))
	expect(ctx, t, m, "basalt: update: health gate did not pass within 20s: service crasher")
	expect(ctx, t, m, contract.RootMountedMarker(contract.SlotA))
	line := expect(ctx, t, m, "basalt: update: rolled back from 1.2.0 (slot b): health gate did not pass within 20s: service crasher")
	t.Logf("%s", line)
	// The channel still offers 1.2.0: slot a does not retry it by itself.
	if strings.Count(m.Log(), "armed for trial") != 1 {
		t.Errorf("retried the failed version")
	}
}

// TestE2EUpdateKernelPanics is the other negative twin: v3's initrd is
// garbage (re-signed, so it passes every check), its kernel panics, reboots
// (panic=10) and the loader returns to slot a, which says so.
func TestE2EUpdateKernelPanics(t *testing.T) {
	board := "qemu-x86_64"
	img, _ := buildVersion(t, board, "1.0.0", "")
	_, v3 := buildVersion(t, board, "1.2.1", "")
	broken := breakInitrd(t, v3)
	c := serveChannel(t)
	c.publish(t, broken)
	ctx, cancel := context.WithTimeout(context.Background(), updateDeadline)
	defer cancel()
	m := bootDisk(ctx, t, board, img, c)
	expect(ctx, t, m, "basalt: update: slot b armed for trial: upd 1.2.1")
	expect(ctx, t, m, "Kernel panic")
	expect(ctx, t, m, contract.RootMountedMarker(contract.SlotA))
	line := expect(ctx, t, m, "basalt: update: rolled back from 1.2.1 (slot b): slot b never passed its health gate and left no reason")
	t.Logf("%s", line)
}

// breakInitrd rewrites a bundle with a garbage initrd, re-hashed and
// re-signed with the test key.
func breakInitrd(t *testing.T, src string) string {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := bundle.Open(f, []ed25519.PublicKey{updateKey.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	m := r.Manifest()
	data := map[string][]byte{}
	for {
		p, pr, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(pr)
		data[p.Name] = b
	}
	data[bundle.Initrd] = bytes.Repeat([]byte("not an initramfs "), 4096)
	for i, p := range m.Payloads {
		if p.Name == bundle.Initrd {
			s := sha256.Sum256(data[p.Name])
			m.Payloads[i].Size, m.Payloads[i].SHA256 = int64(len(data[p.Name])), hex.EncodeToString(s[:])
		}
	}
	raw, err := bundle.MarshalManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(src))
	w, _ := os.Create(out)
	defer w.Close()
	if err := bundle.Write(w, raw, bundle.Sign(raw, updateKey), func(p bundle.Payload) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data[p.Name])), nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}
