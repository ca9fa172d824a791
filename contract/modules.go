package contract

import (
	"path"
	"strings"
)

// ModuleSuffixes are the endings of kernel module files, plain and
// compressed as Debian kernels ship them.
var ModuleSuffixes = []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"}

// ModuleStem returns a module file name without its ModuleSuffixes ending,
// and whether it had one.
func ModuleStem(file string) (string, bool) {
	for _, s := range ModuleSuffixes {
		if stem, ok := strings.CutSuffix(file, s); ok && stem != "" {
			return stem, true
		}
	}
	return "", false
}

// ModuleName returns the canonical name of a module given by name, file
// name or path (as modules.dep, modules.builtin and modules.load spell
// them): the base name without a module suffix, '-' as '_' (depmod, modprobe
// and the kernel treat them alike). The builder and the device compare
// module names only in this form.
func ModuleName(p string) string {
	b := path.Base(p)
	for { // "x.ko.xz.ko" too: what depmod would list is one name
		stem, ok := ModuleStem(b)
		if !ok {
			break
		}
		b = stem
	}
	return strings.ReplaceAll(b, "-", "_")
}
