package build

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/basaltos/basalt/image/spec"
	"github.com/basaltos/basalt/internal/testutil"
)

// writeKernelDeb packs the test kernel (vmlinuz, lib/modules) as a .deb
// with an uncompressed data.tar and returns its path.
func writeKernelDeb(t *testing.T, kernelDir, path string) {
	t.Helper()
	rel := strings.TrimSpace(string(must(os.ReadFile(filepath.Join(kernelDir, "release")))))
	tarOf := func(add func(tw *tar.Writer) error) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		if err := add(tw); err != nil {
			t.Fatal(err)
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	file := func(tw *tar.Writer, name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	control := tarOf(func(tw *tar.Writer) error {
		return file(tw, "./control", 0o644, []byte("Package: linux-image-"+rel+"\nVersion: 1\nArchitecture: amd64\n"))
	})
	data := tarOf(func(tw *tar.Writer) error {
		if err := file(tw, "./boot/vmlinuz-"+rel, 0o644, must(os.ReadFile(filepath.Join(kernelDir, "vmlinuz")))); err != nil {
			return err
		}
		src := filepath.Join(kernelDir, "lib", "modules", rel)
		return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			r, _ := filepath.Rel(src, p)
			return file(tw, "./lib/modules/"+rel+"/"+filepath.ToSlash(r), 0o644, must(os.ReadFile(p)))
		})
	})
	var deb bytes.Buffer
	deb.WriteString("!<arch>\n")
	for _, m := range []struct {
		name string
		data []byte
	}{{"debian-binary", []byte("2.0\n")}, {"control.tar", control}, {"data.tar", data}} {
		fmt.Fprintf(&deb, "%-16s%-12d%-6d%-6d%-8o%-10d`\n", m.name, 0, 0, 0, 0o644, len(m.data))
		deb.Write(m.data)
		if len(m.data)%2 == 1 {
			deb.WriteByte('\n')
		}
	}
	if err := os.WriteFile(path, deb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBuildKernelDebCached builds from a kernel .deb three times: the first
// build unpacks it into the cache, the second uses the cached tree, the
// third finds the tree damaged and unpacks it again. All three images are
// the same.
func TestBuildKernelDebCached(t *testing.T) {
	k, efi := localInputs(t)
	dir := t.TempDir()
	deb := filepath.Join(dir, "kernel.deb")
	writeKernelDeb(t, k, deb)
	y := testutil.OSOnly(spec.DefaultYAML()) + fmt.Sprintf("kernel:\n  qemu-x86_64: {deb: %s}\nbootloader:\n  qemu-x86_64: {file: %s}\n", deb, efi)
	p := filepath.Join(dir, "basalt.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	s, _, err := spec.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	cacheDir := filepath.Join(dir, "cache")
	var sums []string
	for i := range 3 {
		arts, err := Build(context.Background(), s, Options{OutDir: filepath.Join(dir, fmt.Sprint("out", i)), CacheDir: cacheDir})
		if err != nil {
			t.Fatalf("build %d: %v", i, err)
		}
		sums = append(sums, arts[0].SHA256)
		trees, err := filepath.Glob(filepath.Join(cacheDir, "tree", "kernel-v2-*", "root", "boot", "vmlinuz-*"))
		if err != nil || len(trees) != 1 {
			t.Fatalf("build %d: cached kernel trees: %v, %v; want one", i, trees, err)
		}
		if i == 1 { // damage the cached vmlinuz: the next build must notice
			if err := os.WriteFile(trees[0], []byte("bitrot"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if sums[0] != sums[1] || sums[0] != sums[2] {
		t.Errorf("image sha256 differ between the builds: %v", sums)
	}

	// The manifest's sums (hashed skipping holes) are those of the bytes.
	img := filepath.Join(dir, "out2", ImageName(s, "qemu-x86_64")+".img")
	var m Manifest
	if err := json.Unmarshal(must(os.ReadFile(strings.TrimSuffix(img, ".img")+".manifest.json")), &m); err != nil {
		t.Fatal(err)
	}
	data := must(os.ReadFile(img))
	if got := fmt.Sprintf("%x", sha256.Sum256(data)); m.Image.SHA256 != got {
		t.Errorf("manifest image sha256 %s, file %s", m.Image.SHA256, got)
	}
	for _, p := range m.Partitions {
		if got := fmt.Sprintf("%x", sha256.Sum256(data[p.Start:p.Start+p.Size])); p.SHA256 != got {
			t.Errorf("manifest partition %s sha256 %s, bytes %s", p.Name, p.SHA256, got)
		}
	}
}
