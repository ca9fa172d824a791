//go:build e2e

package qemu_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/bundle"
	"github.com/basaltos/basalt/image/build"
	"github.com/basaltos/basalt/image/disk"
	"github.com/basaltos/basalt/image/spec"
	"github.com/basaltos/basalt/internal/testutil"
	"github.com/basaltos/basalt/qemu"
)

// updateDeadline bounds one update scenario (several boots under TCG).
const updateDeadline = 20 * time.Minute

// updateKey signs the test bundles (fixed seed: a test key, never a real one).
var updateKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{42}, 32))

// channelPort is the guest side of the forward to `basalt serve`;
// pushPort the device's push endpoint.
const (
	channelPort = 8080
	pushPort    = 7443
)

// updateSpec builds version v of a small image for board, trusting
// updateKey, polling the channel on the host (guestfwd) with tries trial
// boots and a 20 s health gate; extra YAML is appended (services).
func updateSpec(t testing.TB, dir, board, v, extra string, tries int) *spec.Spec {
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
  update: {channel: "http://%s:%d/stable", interval: 1m, tries: %d, health_timeout: 20s, push: ":%d"}
`, v, board, board, k, k, qemu.GuestHost, channelPort, tries, pushPort)
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

// buildVersion builds version v (one trial boot) and returns the image and
// the signed bundle.
func buildVersion(t testing.TB, board, v, extra string) (img, bun string) {
	t.Helper()
	return buildVersionTries(t, board, v, extra, 1)
}

// buildVersionTries is buildVersion with tries trial boots.
func buildVersionTries(t testing.TB, board, v, extra string, tries int) (img, bun string) {
	t.Helper()
	dir := t.TempDir()
	s := updateSpec(t, dir, board, v, extra, tries)
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

func serveChannel(t testing.TB) *channel {
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
	// Dies with the test binary even when a timeout skips the cleanups:
	// it inherits the QEMU lock's descriptor from flock.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
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
func bootDisk(ctx context.Context, t testing.TB, board, img string, c *channel) *qemu.Machine {
	t.Helper()
	b, _ := boards.Get(board)
	testutil.NeedTool(t, b.QEMU.Binary)
	testutil.NeedFile(t, "/bin/busybox", "apt-get install busybox-static (QEMU's guestfwd relay, qemu.Relay)")
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
	for _, board := range []string{"qemu-x86_64", "qemu-armv7", "qemu-arm64"} {
		t.Run(board, func(t *testing.T) {
			img, _ := buildVersion(t, board, "1.0.0", "")
			_, v2 := buildVersion(t, board, "1.1.0", "")
			c := serveChannel(t)
			c.publish(t, v2)
			ctx, cancel := context.WithTimeout(context.Background(), updateDeadline)
			defer cancel()
			m := bootDisk(ctx, t, board, img, c)
			step(ctx, t, m, contract.RootMountedMarker(contract.SlotA))
			id := step(ctx, t, m, "basalt: new machine id")
			step(ctx, t, m, "basalt: update: channel offers upd 1.1.0")
			t0 := time.Now()
			verified := step(ctx, t, m, "basalt: update: step verify ok")
			written := step(ctx, t, m, "basalt: update: step write-root ok")
			booted := step(ctx, t, m, "basalt: update: step write-boot ok")
			step(ctx, t, m, "basalt: update: slot b armed for trial: upd 1.1.0, 1 tries")
			step(ctx, t, m, contract.RootMountedMarker(contract.SlotB))
			step(ctx, t, m, "basalt: update: slot b (1.1.0) booted on trial")
			step(ctx, t, m, "basalt: update: committed 1.1.0 in slot b: health gate passed")
			commit := time.Since(t0)
			log := m.Log()
			fi, _ := os.Stat(v2)
			root := rootfsSize(t, v2)
			t.Logf("%s: bundle %d bytes, rootfs %d bytes (bundle/root %.3f); head check: %d ms; root download+write: %d ms (%.1f MB/s); boot files: %d ms; download start to commit %.1f s",
				board, fi.Size(), root, float64(fi.Size())/float64(root), stepMs(verified), stepMs(written),
				float64(root)/(1<<20)/(float64(stepMs(written))/1000), stepMs(booted), commit.Seconds())
			if n := strings.Count(log, "basalt: update: step verify ok"); n != 1 {
				t.Errorf("%d verify steps, want one pass", n)
			}
			stop(m)
			if strings.Count(log, "basalt: new machine id") != 1 {
				t.Errorf("slot b made a new machine id: data of v1 lost (v1: %s)", id)
			}
			m = bootDisk(ctx, t, board, img, c)
			step(ctx, t, m, contract.RootMountedMarker(contract.SlotB))
			step(ctx, t, m, contract.MarkerReady)
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
	step(ctx, t, m, "basalt: update: slot b armed for trial: upd 1.2.0")
	step(ctx, t, m, contract.RootMountedMarker(contract.SlotB))
	step(ctx, t, m, "basalt: update: health gate did not pass within 20s: service crasher")
	step(ctx, t, m, contract.RootMountedMarker(contract.SlotA))
	line := step(ctx, t, m, "basalt: update: rolled back from 1.2.0 (slot b): health gate did not pass within 20s: service crasher")
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
	step(ctx, t, m, "basalt: update: slot b armed for trial: upd 1.2.1")
	step(ctx, t, m, "Kernel panic")
	step(ctx, t, m, contract.RootMountedMarker(contract.SlotA))
	line := step(ctx, t, m, "basalt: update: rolled back from 1.2.1 (slot b): slot b never passed its health gate and left no reason")
	t.Logf("%s", line)
}

// breakInitrd rewrites a bundle with a garbage initrd, re-hashed and
// re-signed with the test key.
func breakInitrd(t *testing.T, src string) string {
	return rewriteBundle(t, src, updateKey, func(m *bundle.Manifest, data map[string][]byte) {
		data[bundle.Initrd] = bytes.Repeat([]byte("not an initramfs "), 4096)
	})
}

// rewriteBundle rewrites a bundle: mod may change the manifest and the
// payloads (sizes and sha256 are recomputed), then it is signed with k.
func rewriteBundle(t *testing.T, src string, k ed25519.PrivateKey, mod func(*bundle.Manifest, map[string][]byte)) string {
	t.Helper()
	r := openBundle(t, src)
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
	mod(&m, data)
	for i, p := range m.Payloads {
		s := sha256.Sum256(data[p.Name])
		m.Payloads[i].Size, m.Payloads[i].SHA256 = int64(len(data[p.Name])), hex.EncodeToString(s[:])
	}
	raw, err := bundle.MarshalManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(src))
	w, _ := os.Create(out)
	defer w.Close()
	if err := bundle.Write(w, raw, bundle.Sign(raw, k), func(p bundle.Payload) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data[p.Name])), nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestE2EUpdateRefused pushes bundles the device must refuse before any
// write, through its push endpoint (each names a bundle on the channel
// server), on a BLS board and on the U-Boot state file board: a bad
// signature, an unknown key, the wrong board, a lower version. Slot b and
// the boot partition are byte-identical afterwards. Last, a bundle with a
// rootfs byte flipped after signing: its head verifies, so the rootfs
// streams into slot b and the hash at its end refuses it; slot b stays
// unarmed.
func TestE2EUpdateRefused(t *testing.T) {
	for _, board := range []string{"qemu-x86_64", "qemu-armv7"} {
		t.Run(board, func(t *testing.T) { testRefused(t, board) })
	}
}

func testRefused(t *testing.T, board string) {
	img, _ := buildVersion(t, board, "1.0.0", "")
	_, v2 := buildVersion(t, board, "1.1.0", "")
	c := serveChannel(t) // empty channel: the device pulls nothing
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{43}, 32))
	keep := func(*bundle.Manifest, map[string][]byte) {}
	bad := map[string]struct {
		file, want string
	}{}
	add := func(name, file, want string) {
		b, _ := os.ReadFile(file)
		os.WriteFile(filepath.Join(c.dir, name+".bin"), b, 0o644)
		bad[name] = struct{ file, want string }{name + ".bin", want}
	}
	raw, _ := os.ReadFile(v2)
	sig := bytes.Clone(raw)
	i := bytes.Index(sig, []byte(`"version": "1.1.0"`))
	sig[i+len(`"version": "1.`)] = '9' // manifest changed after signing
	p := filepath.Join(t.TempDir(), "sig.bundle")
	os.WriteFile(p, sig, 0o644)
	add("bad-signature", p, "signature does not verify")
	add("unknown-key", rewriteBundle(t, v2, other, keep), "signature does not verify")
	wrong := "qemu-arm64"
	add("wrong-board", rewriteBundle(t, v2, updateKey, func(m *bundle.Manifest, _ map[string][]byte) { m.Board = wrong }), "bundle is for board "+wrong)
	add("lower-version", rewriteBundle(t, v2, updateKey, func(m *bundle.Manifest, _ map[string][]byte) { m.Version = "0.9.0" }), "lower than the running 1.0.0")
	flip := bytes.Clone(raw)
	p = filepath.Join(t.TempDir(), "flip.bundle")
	at := rootfsOffset(t, v2) + rootfsSize(t, v2)/2 // inside the rootfs payload
	flip[at] ^= 0x10
	os.WriteFile(p, flip, 0o644)
	add("flipped-byte", p, "does not match the signed manifest")

	l, _ := net.Listen("tcp", "127.0.0.1:0")
	hostPush := l.Addr().(*net.TCPAddr).Port
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), updateDeadline)
	defer cancel()
	b, _ := boards.Get(board)
	testutil.NeedTool(t, b.QEMU.Binary)
	m, err := qemu.Start(ctx, qemu.Config{Board: b, Image: img, Format: qemu.Raw, Net: qemu.Net{User: true,
		Forwards: []qemu.Forward{{Proto: "tcp", HostPort: hostPush, GuestPort: pushPort}},
		ToHost:   []qemu.ToHost{{GuestPort: channelPort, HostPort: c.port}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Kill(); m.Wait() })
	step(ctx, t, m, "basalt: update: push endpoint on")
	step(ctx, t, m, "basalt: step update-state ok")
	before := partSums(t, img)
	pushRefused := func(name string) string {
		tc := bad[name]
		rep := push(t, hostPush, fmt.Sprintf("http://%s:%d/%s", qemu.GuestHost, channelPort, tc.file))
		if !strings.Contains(rep, "refused") || !strings.Contains(rep, tc.want) {
			t.Errorf("%s: reply %s, want a refusal with %q", name, rep, tc.want)
		} else {
			t.Logf("%s: %s", name, strings.TrimSpace(rep))
		}
		return rep
	}
	for _, name := range []string{"bad-signature", "unknown-key", "wrong-board", "lower-version"} {
		pushRefused(name)
	}
	// The device wrote nothing (QEMU writes through to the image file).
	mid := partSums(t, img)
	if strings.Contains(m.Log(), "update: step disarm") {
		t.Errorf("a refused bundle got past the verify step:\n%s", m.Log())
	}
	// Its slot b is disarmed before the write (a fresh image's spare b
	// loses its entry), written, and left unarmed.
	if rep := pushRefused("flipped-byte"); !strings.Contains(rep, "stays unarmed") || !strings.Contains(rep, `"ab":"committed a"`) {
		t.Errorf("flipped-byte: reply %s: want the slot unarmed (A/B state committed a)", rep)
	}
	stop(m)
	for _, part := range []string{contract.PartBoot, contract.PartRootB} {
		if before[part] != mid[part] {
			t.Errorf("%s changed by a refused bundle: %s -> %s", part, before[part], mid[part])
		}
	}
	if strings.Contains(m.Log(), "armed for trial") || strings.Count(m.Log(), "update: step write-root failed") != 1 {
		t.Errorf("want one failed root write and no arming:\n%s", m.Log())
	}
}

// rootfsOffset is where a bundle's rootfs payload starts in the file.
func rootfsOffset(t *testing.T, bun string) int64 {
	t.Helper()
	f, err := os.Open(bun)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: no %s member: %v", bun, bundle.RootFS, err)
		}
		if h.Name == bundle.RootFS {
			off, err := f.Seek(0, io.SeekCurrent)
			if err != nil {
				t.Fatal(err)
			}
			return off
		}
	}
}

// push POSTs a source to the device's push endpoint and returns the reply.
func push(t *testing.T, port int, src string) string {
	t.Helper()
	body := fmt.Sprintf(`{"source": %q}`, src)
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/apply", port), "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// partSums returns the sha256 of each partition of img.
func partSums(t *testing.T, img string) map[string]string {
	t.Helper()
	l, err := disk.Read(img)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(img)
	defer f.Close()
	out := map[string]string{}
	for _, p := range l.Partitions {
		h := sha256.New()
		io.Copy(h, io.NewSectionReader(f, p.Start, p.Size))
		out[p.Name] = hex.EncodeToString(h.Sum(nil))
	}
	return out
}

// stepMs reads the duration from a step runner line "step NAME ok (12 ms)".
func stepMs(line string) int {
	var ms int
	if i := strings.LastIndex(line, "("); i >= 0 {
		fmt.Sscanf(line[i+1:], "%d", &ms)
	}
	return ms
}

// rootfsSize is the size of a bundle's rootfs payload.
func rootfsSize(t testing.TB, bun string) int64 {
	t.Helper()
	p, _ := openBundle(t, bun).Manifest().Payload(bundle.RootFS)
	return p.Size
}

// powerCuts are the console lines after which TestE2EUpdatePowerCuts kills
// QEMU, in the order an update passes them: the bundle's head, the
// download of the rootfs streamed into slot b (the progress lines count
// the whole bundle: the rootfs is its first ~60%), the boot files (staged
// as NAME.new, then renamed into place), the arming, and two of the three
// trial boots (each one a try the loader counted down).
var powerCuts = []string{
	"basalt: update: channel offers",
	"basalt: update: applying upd 1.1.0 into slot b",
	"basalt: update: step verify ok",
	"basalt: update: step disarm ok",
	"basalt: update: downloading 10%",
	"basalt: update: downloading 20%",
	"basalt: update: downloading 30%",
	"basalt: update: downloading 40%",
	"basalt: update: downloading 50%",
	"basalt: update: step write-root ok",
	"basalt: update: downloading 60%",
	"basalt: update: downloading 70%",
	"basalt: update: wrote b/vmlinuz.new",
	"basalt: update: downloading 80%",
	"basalt: update: downloading 90%",
	"basalt: update: wrote b/initrd.new",
	"basalt: update: step write-boot ok",
	"basalt: update: slot b armed for trial",
	trialCut,
	trialCut,
}

// trialCut cuts a trial boot of slot b before its health gate passes.
const trialCut = "basalt: update: slot b (1.1.0) booted on trial"

// TestE2EUpdatePowerCuts cuts the power (kills QEMU) at each point of
// powerCuts in turn, boots again each time, and checks that the device
// comes up on a good slot (a until b is armed, then b on trial) and applies
// again, until the update is committed on the last of 3 trial boots. Each
// boot is one cut: the apply a boot starts again is the next cut's.
func TestE2EUpdatePowerCuts(t *testing.T) {
	board := "qemu-x86_64"
	img, _ := buildVersionTries(t, board, "1.0.0", "", 3)
	_, v2 := buildVersionTries(t, board, "1.1.0", "", 3)
	c := serveChannel(t)
	c.publish(t, v2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*updateDeadline)
	defer cancel()
	t0 := time.Now()
	slot := contract.SlotA
	for i, cut := range powerCuts {
		m := bootDisk(ctx, t, board, img, c)
		step(ctx, t, m, contract.RootMountedMarker(slot))
		line := step(ctx, t, m, cut)
		stop(m)
		t.Logf("power cut %d after %q", i+1, strings.TrimSpace(line))
		if strings.Contains(cut, "armed for trial") {
			slot = contract.SlotB
		}
	}
	// The last cut came on b's second trial boot: the third commits.
	m := bootDisk(ctx, t, board, img, c)
	step(ctx, t, m, contract.RootMountedMarker(contract.SlotB))
	step(ctx, t, m, "basalt: update: committed 1.1.0 in slot b")
	stop(m)
	t.Logf("%d power cuts, then committed (%.0f s)", len(powerCuts), time.Since(t0).Seconds())
}

// openBundle opens a test bundle, verified with the test key (closed at
// the test's end).
func openBundle(t testing.TB, path string) *bundle.Reader {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	r, err := bundle.Open(f, []ed25519.PublicKey{updateKey.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// stepDeadline bounds the wait for each marker of an update scenario (a
// boot, a download and write, a health gate under TCG), so that a broken
// step fails in minutes instead of holding the QEMU lock to the deadline.
const stepDeadline = 6 * time.Minute

// step waits for the next console line with marker, at most stepDeadline.
func step(ctx context.Context, t testing.TB, m *qemu.Machine, marker string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, stepDeadline)
	defer cancel()
	return expect(ctx, t, m, marker)
}
