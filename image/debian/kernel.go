package debian

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/basaltos/basalt/image/cache"
)

// Kernel is a kernel unpacked on disk.
type Kernel struct {
	Release string // e.g. 6.1.0-28-cloud-amd64
	Vmlinuz string // path of the kernel image
	// Modules is the lib/modules/<Release> directory.
	Modules string
	// DTBs is the usr/lib/linux-image-<Release> directory ("" when the
	// package ships no device trees).
	DTBs string
}

// ExtractKernel unpacks boot/vmlinuz-*, lib/modules/<release>/ (or
// usr/lib/modules/<release>/: trixie's packages are merged-/usr) and
// usr/lib/linux-image-<release>/ (device trees) of a kernel .deb into dir.
// A package without boot/vmlinuz-* is an error saying it is not a kernel.
func ExtractKernel(d *Deb, dir string) (Kernel, error) {
	names, err := d.ExtractTo(dir, func(n string) bool {
		return strings.HasPrefix(n, "boot/vmlinuz-") || strings.HasPrefix(n, "lib/modules/") || strings.HasPrefix(n, "usr/lib/modules/") ||
			strings.HasPrefix(n, "usr/lib/linux-image-") || n == "boot" || n == "lib" || n == "usr" || n == "usr/lib"
	})
	if err != nil {
		return Kernel{}, err
	}
	var k Kernel
	for _, n := range names {
		if rel, ok := strings.CutPrefix(n, "boot/vmlinuz-"); ok {
			if k.Release != "" {
				return Kernel{}, fmt.Errorf("%s: package %s has two kernels (%s, %s)", d.Path, d.Name(), k.Release, rel)
			}
			k.Release = rel
		}
	}
	if k.Release == "" {
		return Kernel{}, fmt.Errorf("%s: package %s has no boot/vmlinuz-*: not a kernel package", d.Path, d.Name())
	}
	return LocalKernel(filepath.Join(dir, "boot", "vmlinuz-"+k.Release), modulesDir(dir, k.Release))
}

// modulesDir is root's lib/modules/<release>, or usr/lib/modules/<release>
// when only that exists (a merged-/usr package).
func modulesDir(root, release string) string {
	p := filepath.Join(root, "lib", "modules", release)
	if _, err := os.Stat(p); err != nil {
		if u := filepath.Join(root, "usr", "lib", "modules", release); dirExists(u) {
			return u
		}
	}
	return p
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// kernelTree names the cache trees CachedKernel writes; bump the version
// when ExtractKernel starts unpacking something else.
const kernelTree = "kernel-v2-"

// CachedKernel returns the kernel of the .deb at path, whose sha256 the
// caller has checked to be sum, unpacked in c: the first call extracts it
// (ExtractKernel) into a cache tree keyed by sum, later calls use that tree
// (checked against its sums) without decompressing the package again.
func CachedKernel(c *cache.Cache, path, sum string) (Kernel, error) {
	root, err := c.Tree(kernelTree+sum, func(dir string) error {
		d, err := OpenDeb(path)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		_, err = ExtractKernel(d, dir)
		return err
	})
	if err != nil {
		return Kernel{}, err
	}
	// ExtractKernel made sure there is exactly one.
	vmlinuz, err := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if err != nil || len(vmlinuz) != 1 {
		return Kernel{}, fmt.Errorf("cached kernel of %s (%s): want one boot/vmlinuz-*, found %v", path, root, vmlinuz)
	}
	release := strings.TrimPrefix(filepath.Base(vmlinuz[0]), "vmlinuz-")
	return LocalKernel(vmlinuz[0], modulesDir(root, release))
}

// LocalKernel checks a kernel given as files (offline builds): vmlinuz and
// its lib/modules/<release> directory, whose name is the release.
func LocalKernel(vmlinuz, modules string) (Kernel, error) {
	if fi, err := os.Stat(vmlinuz); err != nil || !fi.Mode().IsRegular() {
		return Kernel{}, fmt.Errorf("kernel image %s: not a regular file", vmlinuz)
	}
	if fi, err := os.Stat(modules); err != nil || !fi.IsDir() {
		return Kernel{}, fmt.Errorf("kernel modules %s: not a directory", modules)
	}
	k := Kernel{Release: filepath.Base(modules), Vmlinuz: vmlinuz, Modules: modules}
	root := filepath.Dir(filepath.Dir(filepath.Dir(modules))) // above lib/modules/<release>
	if filepath.Base(root) == "usr" {
		root = filepath.Dir(root) // above usr/lib/modules/<release>
	}
	dtbs := filepath.Join(root, "usr", "lib", "linux-image-"+k.Release)
	if dirExists(dtbs) {
		k.DTBs = dtbs
	}
	return k, nil
}
