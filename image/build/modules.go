package build

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// modName is the canonical name of a module path or name: base name without
// .ko[.xz|.zst|.gz], '-' as '_' (the kernel treats them alike).
func modName(p string) string {
	b := path.Base(p)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		b = strings.TrimSuffix(b, ext)
	}
	return strings.ReplaceAll(strings.TrimSuffix(b, ".ko"), "-", "_")
}

// modDep is one line of modules.dep.
type modDep struct {
	path string   // relative to the release directory
	deps []string // paths
}

// readModulesDep reads <release dir>/modules.dep and modules.builtin.
func readModulesDep(dir string) (map[string]modDep, map[string]bool, error) {
	deps := map[string]modDep{}
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, nil, fmt.Errorf("kernel modules %s: %w (the kernel's modules.dep is needed to close the boot modules over their dependencies)", dir, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		p, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[modName(p)] = modDep{path: strings.TrimSpace(p), deps: strings.Fields(rest)}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			builtin[modName(l)] = true
		}
	}
	return deps, builtin, nil
}

// bootModules returns the module names of want that are modules (builtins
// dropped), in order, and the paths of their closure over modules.dep,
// sorted. A name that is neither a module nor built in is an error.
func bootModules(dir string, want []string) (load, files []string, deps map[string]modDep, err error) {
	deps, builtin, err := readModulesDep(dir)
	if err != nil {
		return nil, nil, nil, err
	}
	seen := map[string]bool{}
	for _, w := range want {
		n := modName(w)
		d, ok := deps[n]
		switch {
		case ok:
			load = append(load, n)
		case builtin[n]:
			continue
		default:
			return nil, nil, nil, fmt.Errorf("kernel %s: boot module %q is neither a module nor built in", filepath.Base(dir), w)
		}
		queue := []string{d.path}
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			if seen[p] {
				continue
			}
			seen[p] = true
			files = append(files, p)
			queue = append(queue, deps[modName(p)].deps...)
		}
	}
	sortStrings(files)
	return load, files, deps, nil
}
