//go:build e2e

package qemu_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/image/build"
	"github.com/basaltos/basalt/image/preload"
	"github.com/basaltos/basalt/image/spec"
	"github.com/basaltos/basalt/internal/testutil"
	"github.com/basaltos/basalt/qemu"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// containerdDeadline bounds one containerd proof boot under TCG (the root
// carries ~90 MB of containerd and runc; containerd starts, imports, runs).
const containerdDeadline = 8 * time.Minute

// The containerd proof's markers (initsys/k3s/testdata/containerd-proof).
const (
	markHello = "basalt-containerd-proof: hello from a container"
	markOK    = "containerd-proof: OK"
	markFail  = "containerd-proof: FAIL: "
	// markSeccomp: runc was linked with libseccomp and the container ran
	// under ctr's default seccomp profile.
	markSeccomp = "containerd-proof: runc has seccomp"
	// markSeeded: the device seeded containerd from the builder's store,
	// so there was nothing to import.
	markSeeded = "containerd-proof: images present in containerd at its start (seeded at build time)"
)

// helloImage writes an OCI archive of one image, name:1, whose entrypoint
// is the containerd proof's hello program built for arch, plus, when
// payload > 0, a layer of payload bytes of text-like data (gzip about
// halves it, as it does real images' files) for the import bench.
func helloImage(t testing.TB, arch boards.Arch, name, out string, payload int) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hello")
	goarch := map[boards.Arch]string{"amd64": "amd64", "arm64": "arm64", "armhf": "arm"}[arch]
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", bin, "../initsys/k3s/testdata/containerd-proof/hello")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOARM=7")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build hello: %v\n%s", err, b)
	}
	body, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	tw.WriteHeader(&tar.Header{Name: "hello", Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg})
	tw.Write(body)
	tw.Close()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layer.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	layers := []v1.Layer{l}
	if payload > 0 {
		layers = append(layers, payloadLayer(t, payload))
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	p := preload.Platform(arch)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant,
		RootFS: v1.RootFS{Type: "layers", DiffIDs: mustDiffIDs(t, img)}, Config: v1.Config{Entrypoint: []string{"/hello"}}})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := preload.WriteOCI(f, img, name+":1"); err != nil {
		t.Fatal(err)
	}
}

// payloadLayer is a layer holding one file of n deterministic bytes drawn
// from 64 letters (6 bits of entropy per byte).
func payloadLayer(t testing.TB, n int) v1.Layer {
	t.Helper()
	body := make([]byte, n)
	r := rand.New(rand.NewPCG(1, 2))
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := range body {
		body[i] = letters[r.IntN(len(letters))]
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	tw.WriteHeader(&tar.Header{Name: "payload", Mode: 0o644, Size: int64(n), Typeflag: tar.TypeReg})
	tw.Write(body)
	tw.Close()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layer.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustDiffIDs(t testing.TB, img v1.Image) []v1.Hash {
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf.RootFS.DiffIDs
}

// containerdImage builds a k3s image for board whose "k3s" is the
// containerd proof (BASALT_K3S=.cache/test-containerd) with one preloaded
// image, named name (the proof runs it when it is containerd-proof-hello),
// with a payload layer of payload bytes when > 0. The builder seeds
// containerd's store from it (contract.K3sRootContainerd).
func containerdImage(t testing.TB, board, name string, payload int) string {
	t.Helper()
	proof, _ := filepath.Abs("../.cache/test-containerd")
	testutil.NeedFile(t, filepath.Join(proof, "k3s"), "make testdata (scripts/test-containerd.sh builds the containerd proof)")
	cache, _ := filepath.Abs("../.cache/basalt")
	t.Setenv(build.K3sEnv, proof)
	b, err := boards.Get(board)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	helloImage(t, b.Arch, name, filepath.Join(dir, "hello.tar"), payload)
	k := testKernel(t, b.Arch)
	y := fmt.Sprintf(`apiVersion: basalt.dev/v1alpha1
kind: Image
name: ctrd
version: 1.0.0
boards: [%s]
kernel:
  %s: {vmlinuz: %s/vmlinuz, modules: %s/lib/modules}
debian: {suite: bookworm}
orchestrator: {kind: k3s, airgap: {none: true}}
images:
  - path: hello.tar
config:
  cluster: {node_ip: 10.0.2.15}
`, board, board, k, k)
	if efi, ok := sdBoot[board]; ok {
		abs, _ := filepath.Abs(efi)
		testutil.NeedFile(t, abs, "make testdata (scripts/testkernel.sh unpacks systemd-boot-efi of the arch)")
		y += fmt.Sprintf("bootloader:\n  %s: {file: %s}\n", board, abs)
	}
	p := filepath.Join(dir, "basalt.yaml")
	os.WriteFile(p, []byte(y), 0o644)
	s, _, err := spec.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	arts, err := build.Build(context.Background(), s, build.Options{OutDir: filepath.Join(dir, "out"), Offline: true, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s in %.1f s", board, time.Since(t0).Seconds())
	return arts[0].Image
}

func bootContainerd(ctx context.Context, t testing.TB, board, img string) *qemu.Machine {
	t.Helper()
	b, _ := boards.Get(board)
	testutil.NeedTool(t, b.QEMU.Binary)
	m, err := qemu.Start(ctx, qemu.Config{Board: b, Image: img, Format: qemu.Raw, Net: qemu.Net{User: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Kill(); m.Wait() })
	return m
}

// TestE2EContainerd: a real containerd and runc (scripts/test-containerd.sh)
// in a basalt k3s image on each QEMU board: the builder seeded a containerd
// store from the preloaded archive, the device seeds k3s' containerd root
// from it at first boot (meta.db copied, blobs linked, archive not linked),
// so containerd starts with the image in the k8s.io namespace, pinned,
// nothing imported; the containerd proof runs a container from it that
// prints its marker (overlayfs snapshot, cgroup v2, seccomp: runc is linked
// with libseccomp on all three arches), times a plain import of the same
// archive, and sees an image that is not preloaded refused. One boot per
// board.
func TestE2EContainerd(t *testing.T) {
	for _, board := range []string{"qemu-x86_64", "qemu-arm64", "qemu-armv7"} {
		t.Run(board, func(t *testing.T) {
			img := containerdImage(t, board, "basalt.test/containerd-proof-hello", 0)
			ctx, cancel := context.WithTimeout(context.Background(), containerdDeadline)
			defer cancel()
			t0 := time.Now()
			m := bootContainerd(ctx, t, board, img)
			lines, ok := proofLines(ctx, t, m)
			t.Logf("proof done %.1f s after power on", time.Since(t0).Seconds())
			hello, seccomp, seeded := false, false, false
			for _, l := range lines {
				t.Log(l)
				hello = hello || strings.Contains(l, markHello)
				seccomp = seccomp || strings.Contains(l, markSeccomp)
				seeded = seeded || strings.Contains(l, markSeeded)
			}
			if !ok || !hello || !seccomp || !seeded {
				t.Fatalf("the containerd proof failed (hello marker seen: %v, seccomp: %v, seeded: %v):\n%s", hello, seccomp, seeded, m.Log())
			}
		})
	}
}

// proofLines collects the containerd proof's console lines until it says
// OK (true) or FAIL (false, with the containerd log tail that follows).
func proofLines(ctx context.Context, t testing.TB, m *qemu.Machine) ([]string, bool) {
	t.Helper()
	var lines []string
	for {
		l, err := m.Expect(ctx, "containerd-proof: ")
		if err != nil {
			t.Fatalf("%v\n%s", err, m.Log())
		}
		lines = append(lines, strings.TrimSpace(l))
		switch {
		case strings.Contains(l, markOK):
			return lines, true
		case strings.Contains(l, markFail):
			tail, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			for {
				l, err := m.Expect(tail, "containerd-proof: containerd log:")
				if err != nil {
					return lines, false
				}
				lines = append(lines, strings.TrimSpace(l))
			}
		}
	}
}

// TestE2EContainerdNotPreloaded is the negative twin: the one preloaded
// image is not the one the proof must run, so with no network the proof
// fails, naming what is preloaded, and never prints the container marker.
func TestE2EContainerdNotPreloaded(t *testing.T) {
	board := "qemu-x86_64"
	img := containerdImage(t, board, "basalt.test/some-other-image", 0)
	ctx, cancel := context.WithTimeout(context.Background(), containerdDeadline)
	defer cancel()
	m := bootContainerd(ctx, t, board, img)
	lines, ok := proofLines(ctx, t, m)
	for _, l := range lines {
		t.Log(l)
	}
	if ok || strings.Contains(m.Log(), markHello) {
		t.Fatalf("the proof passed without its image preloaded:\n%s", m.Log())
	}
	if !strings.Contains(m.Log(), "no preloaded image named") || !strings.Contains(m.Log(), "basalt.test/some-other-image:1") {
		t.Fatalf("the failure does not name the missing and the preloaded image:\n%s", m.Log())
	}
}
