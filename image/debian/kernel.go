package debian

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
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
// A kernel split into several packages (trixie-backports' 7.x: the
// linux-image package is empty, linux-binary-<release> holds
// usr/lib/modules/<release>/vmlinuz, linux-modules-<release> the modules,
// linux-base-<release> the device trees in usr/lib/modules/<release>/dtb)
// comes as d and its parts, unpacked together. Without any vmlinuz it is an
// error saying d is not a kernel package.
func ExtractKernel(d *Deb, dir string, parts ...*Deb) (Kernel, error) {
	var k Kernel
	var vmlinuz string
	for _, deb := range append([]*Deb{d}, parts...) {
		names, err := deb.ExtractTo(dir, func(n string) bool {
			return strings.HasPrefix(n, "boot/vmlinuz-") || strings.HasPrefix(n, "lib/modules/") || strings.HasPrefix(n, "usr/lib/modules/") ||
				strings.HasPrefix(n, "usr/lib/linux-image-") || n == "boot" || n == "lib" || n == "usr" || n == "usr/lib"
		})
		if err != nil {
			return Kernel{}, err
		}
		for _, n := range names {
			rel, ok := strings.CutPrefix(n, "boot/vmlinuz-")
			if !ok {
				rel, ok = splitVmlinuz(n)
			}
			if !ok {
				continue
			}
			if k.Release != "" {
				return Kernel{}, fmt.Errorf("%s: package %s has two kernels (%s, %s)", deb.Path, deb.Name(), k.Release, rel)
			}
			k.Release, vmlinuz = rel, filepath.Join(dir, filepath.FromSlash(n))
		}
	}
	if k.Release == "" {
		return Kernel{}, fmt.Errorf("%s: package %s has no boot/vmlinuz-*: not a kernel package", d.Path, d.Name())
	}
	return LocalKernel(vmlinuz, modulesDir(dir, k.Release))
}

// splitVmlinuz returns the release of a split kernel's
// usr/lib/modules/<release>/vmlinuz.
func splitVmlinuz(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "usr/lib/modules/")
	if !ok {
		return "", false
	}
	rel, file, ok := strings.Cut(rest, "/")
	return rel, ok && file == "vmlinuz" && rel != ""
}

// kernelPartKinds prefix the names of a split kernel's parts.
var kernelPartKinds = []string{"linux-base-", "linux-binary-", "linux-modules-"}

// KernelParts are the packages a split kernel package needs besides itself
// (ExtractKernel), by name: those of linux-base-, linux-binary- and
// linux-modules-<release> that depends names, for the package
// linux-image-<release>.
func KernelParts(name, depends string) []string {
	rel, ok := strings.CutPrefix(name, "linux-image-")
	if !ok {
		return nil
	}
	var out []string
	for _, kind := range kernelPartKinds {
		if slices.Contains(firstDepends(depends), kind+rel) {
			out = append(out, kind+rel)
		}
	}
	return out
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

// Part is one more package of a split kernel: the .deb and its checked sha256.
type Part struct{ Path, SHA256 string }

// CachedKernel returns the kernel of the .deb at path (and its parts, for a
// split kernel), whose sha256 the caller has checked to be sum, unpacked
// in c: the first call extracts it (ExtractKernel) into a cache tree keyed
// by sum (and the parts' sums), later calls use that tree (checked against
// its sums) without decompressing the packages again.
func CachedKernel(c *cache.Cache, path, sum string, parts ...Part) (Kernel, error) {
	key := sum
	if len(parts) > 0 {
		h := sha256.New()
		io.WriteString(h, sum)
		for _, p := range parts {
			io.WriteString(h, "+"+p.SHA256)
		}
		key = hex.EncodeToString(h.Sum(nil))
	}
	root, err := c.Tree(kernelTree+key, func(dir string) error {
		d, err := OpenDeb(path)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		var debs []*Deb
		for _, p := range parts {
			pd, err := OpenDeb(p.Path)
			if err != nil {
				return fmt.Errorf("%s: %w", p.Path, err)
			}
			debs = append(debs, pd)
		}
		_, err = ExtractKernel(d, dir, debs...)
		return err
	})
	if err != nil {
		return Kernel{}, err
	}
	// ExtractKernel made sure there is exactly one.
	vmlinuz, err := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if err == nil && len(vmlinuz) == 0 {
		vmlinuz, err = filepath.Glob(filepath.Join(root, "usr", "lib", "modules", "*", "vmlinuz"))
	}
	if err != nil || len(vmlinuz) != 1 {
		return Kernel{}, fmt.Errorf("cached kernel of %s (%s): want one boot/vmlinuz-* or usr/lib/modules/*/vmlinuz, found %v", path, root, vmlinuz)
	}
	release := strings.TrimPrefix(filepath.Base(vmlinuz[0]), "vmlinuz-")
	if filepath.Base(vmlinuz[0]) == "vmlinuz" {
		release = filepath.Base(filepath.Dir(vmlinuz[0]))
	}
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
	// A split kernel's device trees are in modules/dtb.
	for _, dtbs := range []string{filepath.Join(root, "usr", "lib", "linux-image-"+k.Release), filepath.Join(modules, "dtb")} {
		if dirExists(dtbs) {
			k.DTBs = dtbs
			break
		}
	}
	return k, nil
}
