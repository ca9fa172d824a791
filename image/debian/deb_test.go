package debian

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/basaltos/basalt/image/cache"
	"github.com/google/go-cmp/cmp"
)

var kernelFiles = map[string]string{
	"boot/":                            "",
	"boot/vmlinuz-6.1.0-9-cloud-amd64": "KERNEL",
	"lib/modules/6.1.0-9-cloud-amd64/kernel/fs/squashfs/squashfs.ko": "ELF",
	"lib/modules/6.1.0-9-cloud-amd64/modules.builtin":                "kernel/fs/ext4/ext4.ko\n",
	"usr/lib/linux-image-6.1.0-9-cloud-amd64/qemu/virt.dtb":          "DTB",
	"usr/share/doc/linux-image/changelog":                            "x",
}

func writeDeb(t *testing.T, p fakePkg) string {
	path := filepath.Join(t.TempDir(), p.name+".deb")
	if err := os.WriteFile(path, p.deb(t), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDeb(t *testing.T) {
	d, err := OpenDeb(writeDeb(t, fakePkg{name: "linux-image-6.1.0-9-cloud-amd64", version: "6.1.9-1", files: kernelFiles}))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.Name(), "linux-image-6.1.0-9-cloud-amd64 6.1.9-1 (amd64)"; got != want {
		t.Errorf("Name = %q, want %q", got, want)
	}
	var names []string
	if err := d.Extract(func(h *tar.Header, _ io.Reader) error {
		names = append(names, h.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(names) != len(kernelFiles) {
		t.Errorf("Extract saw %d entries %v, want %d", len(names), names, len(kernelFiles))
	}
	got, err := d.ReadFile("./boot/vmlinuz-6.1.0-9-cloud-amd64")
	if err != nil || string(got) != "KERNEL" {
		t.Errorf("ReadFile = %q, %v", got, err)
	}
	if _, err := d.ReadFile("boot/missing"); err == nil || !strings.Contains(err.Error(), "has no file boot/missing") {
		t.Errorf("ReadFile(missing) err = %v", err)
	}

	dir := t.TempDir()
	k, err := ExtractKernel(d, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := Kernel{
		Release: "6.1.0-9-cloud-amd64",
		Vmlinuz: filepath.Join(dir, "boot/vmlinuz-6.1.0-9-cloud-amd64"),
		Modules: filepath.Join(dir, "lib/modules/6.1.0-9-cloud-amd64"),
		DTBs:    filepath.Join(dir, "usr/lib/linux-image-6.1.0-9-cloud-amd64"),
	}
	if diff := cmp.Diff(want, k); diff != "" {
		t.Errorf("ExtractKernel (-want +got)\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(dir, "usr/share/doc")); err == nil {
		t.Error("ExtractKernel wrote files outside the kernel paths")
	}
}

// trixie's kernel packages are merged-/usr: modules in usr/lib/modules.
func TestExtractKernelMergedUsr(t *testing.T) {
	const rel = "6.12.57+deb13-arm64"
	d, err := OpenDeb(writeDeb(t, fakePkg{name: "linux-image-" + rel, version: "6.12.57-1", files: map[string]string{
		"boot/vmlinuz-" + rel: "KERNEL",
		"usr/lib/modules/" + rel + "/kernel/fs/squashfs/squashfs.ko":   "ELF",
		"usr/lib/linux-image-" + rel + "/broadcom/bcm2711-rpi-4-b.dtb": "DTB",
	}}))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	k, err := ExtractKernel(d, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := Kernel{Release: rel, Vmlinuz: filepath.Join(dir, "boot", "vmlinuz-"+rel),
		Modules: filepath.Join(dir, "usr", "lib", "modules", rel), DTBs: filepath.Join(dir, "usr", "lib", "linux-image-"+rel)}
	if diff := cmp.Diff(want, k); diff != "" {
		t.Errorf("merged-/usr kernel (-want +got)\n%s", diff)
	}
}

func TestExtractKernelNotAKernel(t *testing.T) {
	d, err := OpenDeb(writeDeb(t, fakePkg{name: "systemd-boot-efi", version: "252-1", files: map[string]string{"usr/lib/systemd/boot/efi/systemd-bootx64.efi": "MZ"}}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = ExtractKernel(d, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "systemd-boot-efi 252-1 (amd64) has no boot/vmlinuz-*: not a kernel package") {
		t.Errorf("err = %v", err)
	}
}

// An entry may not write through a symlink out of the target directory.
func TestExtractToStaysInside(t *testing.T) {
	outside := t.TempDir()
	d, err := OpenDeb(writeDeb(t, fakePkg{name: "evil", version: "1", files: map[string]string{
		"lib":      "->" + outside,
		"lib/x":    "pwned",
		"../../up": "pwned",
	}}))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, err = d.ExtractTo(dir, func(string) bool { return true })
	if err == nil {
		t.Error("ExtractTo wrote through a symlink without error")
	}
	if _, err := os.Stat(filepath.Join(outside, "x")); err == nil {
		t.Fatal("ExtractTo escaped the target directory")
	}
}

func TestOpenDebErrors(t *testing.T) {
	tests := []struct{ name, data, want string }{
		{"not ar", "hello", "not a .deb: no ar archive header"},
		{"no control", string(buildAr([2]string{"debian-binary", "2.0\n"})), "no control.tar.* member"},
		{"truncated", string(buildAr([2]string{"debian-binary", "2.0\n"}))[:70], "truncated"},
		{"bad compression", string(buildAr([2]string{"control.tar.lz", "x"})), "unsupported compression"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.deb")
			os.WriteFile(p, []byte(tt.data), 0o644)
			_, err := OpenDeb(p)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), p) {
				t.Errorf("err = %v, want it to name %s and say %q", err, p, tt.want)
			}
		})
	}
}

// FuzzExtract feeds untrusted .deb bytes to the ar and tar readers.
func FuzzExtract(f *testing.F) {
	f.Add(fakePkg{name: "a", version: "1", files: map[string]string{"boot/x": "y"}}.deb(f))
	f.Add(buildAr([2]string{"data.tar", "garbage"}))
	f.Add(buildAr([2]string{"data.tar.gz", "x"}, [2]string{"data.tar.zst", "y"}))
	f.Add([]byte("!<arch>\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		Extract(bytes.NewReader(data), func(h *tar.Header, r io.Reader) error {
			if strings.HasPrefix(h.Name, "/") || strings.Contains("/"+h.Name+"/", "/../") {
				t.Fatalf("unclean name %q", h.Name)
			}
			_, err := io.Copy(io.Discard, r)
			return err
		})
	})
}

func TestCachedKernel(t *testing.T) {
	c, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	path := writeDeb(t, fakePkg{name: "linux-image-6.1.0-9-cloud-amd64", version: "6.1.9-1", files: kernelFiles})
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := fmt.Sprintf("%x", sha256.Sum256(data))
	k, err := CachedKernel(c, path, sum)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(c.Dir, "tree", kernelTree+sum, "root")
	want := Kernel{
		Release: "6.1.0-9-cloud-amd64",
		Vmlinuz: filepath.Join(root, "boot/vmlinuz-6.1.0-9-cloud-amd64"),
		Modules: filepath.Join(root, "lib/modules/6.1.0-9-cloud-amd64"),
		DTBs:    filepath.Join(root, "usr/lib/linux-image-6.1.0-9-cloud-amd64"),
	}
	if diff := cmp.Diff(want, k); diff != "" {
		t.Errorf("CachedKernel (-want +got)\n%s", diff)
	}
	// The second call uses the tree: the package is not read again.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	k2, err := CachedKernel(c, path, sum)
	if err != nil {
		t.Fatalf("CachedKernel from the cache: %v", err)
	}
	if diff := cmp.Diff(want, k2); diff != "" {
		t.Errorf("CachedKernel from the cache (-want +got)\n%s", diff)
	}
	if b, err := os.ReadFile(k2.Vmlinuz); err != nil || string(b) != "KERNEL" {
		t.Errorf("cached vmlinuz: %q, %v", b, err)
	}

	// Not a kernel: the error says so and no tree is stored.
	boot := writeDeb(t, fakePkg{name: "systemd-boot-efi", version: "252-1", files: map[string]string{"usr/lib/systemd/boot/efi/systemd-bootx64.efi": "MZ"}})
	bdata, err := os.ReadFile(boot)
	if err != nil {
		t.Fatal(err)
	}
	bsum := fmt.Sprintf("%x", sha256.Sum256(bdata))
	if _, err := CachedKernel(c, boot, bsum); err == nil || !strings.Contains(err.Error(), "not a kernel package") {
		t.Errorf("CachedKernel(not a kernel) err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "tree", kernelTree+bsum)); err == nil {
		t.Error("a failed extraction left a cache tree")
	}
}

// TestExtractToUmask checks that extracted files keep the package's modes
// under any umask (the root squashfs takes its module modes from them).
func TestExtractToUmask(t *testing.T) {
	d, err := OpenDeb(writeDeb(t, fakePkg{name: "linux-image-6.1.0-9-cloud-amd64", version: "6.1.9-1", files: kernelFiles}))
	if err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	if _, err := ExtractKernel(d, dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "boot/vmlinuz-6.1.0-9-cloud-amd64"))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o644 {
		t.Errorf("mode under umask 077 = %o, want 644", got)
	}
}
