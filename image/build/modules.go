package build

import (
	"bytes"
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/image/kmod"
	"github.com/basaltos/basalt/image/tree"
)

// generatedModFiles are the depmod outputs of a modules directory. basalt
// writes modules.dep and modules.alias itself (image/kmod); a host tree's
// own copies and depmod's binary indexes are left out so that only one
// version exists in the image.
var generatedModFiles = map[string]bool{
	"modules.dep": true, "modules.dep.bin": true, "modules.alias": true, "modules.alias.bin": true,
	"modules.softdep": true, "modules.symbols": true, "modules.symbols.bin": true,
	"modules.builtin.alias.bin": true, "modules.builtin.bin": true, "modules.devname": true,
	"modules.weakdep": true,
}

// bootModules returns the closure of the board's boot modules in load
// order (dependencies first), and the names stage 1 loads: the whole
// closure, so that softdep pre: modules load too (modules.dep does not list
// them). A softdep naming an alias rather than a module (ext4's "pre:
// crypto-crc32c") is resolved through the modules' aliases, the generic
// implementation preferred: crc32c_generic, not crc32_arm_ce, which needs
// CPU extensions.
func bootModules(ix *kmod.Index, want []string) (closure []*kmod.Module, load []string, err error) {
	closure, err = ix.Closure(want)
	if err != nil {
		return nil, nil, fmt.Errorf("boot modules: %w", err)
	}
	var extra []string
	for _, m := range closure {
		for _, sp := range m.SoftPre {
			if _, ok := ix.Module(sp); ok || ix.Builtin(sp) {
				continue
			}
			if n := aliasModule(ix, sp); n != "" {
				extra = append(extra, n)
			}
		}
	}
	if len(extra) > 0 {
		if closure, err = ix.Closure(append(extra, want...)); err != nil {
			return nil, nil, fmt.Errorf("boot modules: %w", err)
		}
	}
	for _, m := range closure {
		load = append(load, m.Name)
	}
	return closure, load, nil
}

// aliasModule returns the module that provides alias a, preferring a
// *_generic one, else the first by name; "" when none does. Names compare
// with '-' and '_' alike (kmod normalises softdep names).
func aliasModule(ix *kmod.Index, a string) string {
	a = contract.ModuleName(a)
	var names []string
	for _, m := range ix.Modules() {
		for _, x := range m.Aliases {
			if contract.ModuleName(x) == a {
				names = append(names, m.Name)
			}
		}
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.HasSuffix(n, "_generic") {
			return n
		}
	}
	if len(names) > 0 {
		return names[0]
	}
	return ""
}

// addModuleIndex adds dir/modules.dep and dir/modules.alias for mods to t.
func addModuleIndex(t *tree.Tree, ix *kmod.Index, dir string, mods []*kmod.Module) error {
	var dep, alias bytes.Buffer
	if err := ix.WriteDep(&dep, mods); err != nil {
		return err
	}
	if err := ix.WriteAlias(&alias, mods); err != nil {
		return err
	}
	if err := t.AddBytes(path.Join(dir, "modules.dep"), 0o644, dep.Bytes()); err != nil {
		return err
	}
	return t.AddBytes(path.Join(dir, "modules.alias"), 0o644, alias.Bytes())
}

// addModules adds the whole modules directory of the kernel (src,
// lib/modules/<release>) at dir: every module, modules.builtin*,
// modules.order, and modules.dep + modules.alias for all modules, so that
// the device's modprobe finds any of them.
func addModules(t *tree.Tree, ix *kmod.Index, dir, src string) error {
	skip := func(rel string) bool { return !strings.Contains(rel, "/") && generatedModFiles[rel] }
	if err := addHost(t, dir, src, nil, 0, 0, skip); err != nil {
		return fmt.Errorf("kernel modules: %w", err)
	}
	return addModuleIndex(t, ix, dir, ix.Modules())
}

// addModuleFiles adds the module files mods from the kernel's modules
// directory src at dir.
func addModuleFiles(t *tree.Tree, dir, src string, mods []*kmod.Module) error {
	for _, m := range mods {
		if err := t.AddHostFile(path.Join(dir, m.Path), filepath.Join(src, filepath.FromSlash(m.Path)), 0o644); err != nil {
			return fmt.Errorf("module %s: %w", m.Path, err)
		}
	}
	return nil
}
