//go:build e2e

package qemu_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
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
)

// helloImage writes an OCI archive of one image, name:1, whose entrypoint
// is the containerd proof's hello program built for arch.
func helloImage(t *testing.T, arch boards.Arch, name, out string) {
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
	img, err := mutate.AppendLayers(empty.Image, l)
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

func mustDiffIDs(t *testing.T, img v1.Image) []v1.Hash {
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf.RootFS.DiffIDs
}

// containerdImage builds a k3s image for board whose "k3s" is the
// containerd proof (BASALT_K3S=.cache/test-containerd) with one preloaded
// image, named name (the proof runs it when it is containerd-proof-hello).
func containerdImage(t *testing.T, board, name string) string {
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
	helloImage(t, b.Arch, name, filepath.Join(dir, "hello.tar"))
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

func bootContainerd(ctx context.Context, t *testing.T, board, img string) *qemu.Machine {
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
// in a basalt k3s image on qemu-x86_64: the device links the preloaded
// archive into agent/images, the containerd proof imports it into the
// k8s.io namespace pinned, runs a container from it that prints its marker
// (overlayfs snapshot, cgroup v2, seccomp), and sees an image that is not
// preloaded refused.
func TestE2EContainerd(t *testing.T) {
	board := "qemu-x86_64"
	img := containerdImage(t, board, "basalt.test/containerd-proof-hello")
	ctx, cancel := context.WithTimeout(context.Background(), containerdDeadline)
	defer cancel()
	t0 := time.Now()
	m := bootContainerd(ctx, t, board, img)
	lines, ok := proofLines(ctx, t, m)
	t.Logf("proof done %.1f s after power on", time.Since(t0).Seconds())
	hello := false
	for _, l := range lines {
		t.Log(l)
		hello = hello || strings.Contains(l, markHello)
	}
	if !ok || !hello {
		t.Fatalf("the containerd proof failed (hello marker seen: %v):\n%s", hello, m.Log())
	}
}

// proofLines collects the containerd proof's console lines until it says
// OK (true) or FAIL (false, with the containerd log tail that follows).
func proofLines(ctx context.Context, t *testing.T, m *qemu.Machine) ([]string, bool) {
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
	img := containerdImage(t, board, "basalt.test/some-other-image")
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
