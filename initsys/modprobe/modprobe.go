// Package modprobe is basalt-init answering as /sbin/modprobe (argv[0]
// basename "modprobe"): the kernel's request_module calls it for aliases
// such as fs-overlay or nfnetlink-subsys-11, and k3s runs it for netfilter
// modules. It resolves names and aliases with modules.dep, modules.alias and
// modules.builtin of the running kernel, and loads each module after its
// dependencies (initsys/modules orders them).
package modprobe

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/initsys/modules"
)

// Alias is one "alias PATTERN MODULE" line of modules.alias; the pattern is
// an fnmatch glob (path.Match syntax).
type Alias struct {
	Pattern string
	Module  string
}

// Index is what modprobe knows about one kernel release.
type Index struct {
	Dir     string // /lib/modules/<release>
	Deps    modules.Deps
	Aliases []Alias
	Builtin map[string]bool
}

// Open reads dir's modules.dep (required), modules.alias and
// modules.builtin (missing means none).
func Open(dir string) (*Index, error) {
	ix := &Index{Dir: dir, Builtin: map[string]bool{}}
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("modprobe: %w", err)
	}
	ix.Deps, err = modules.ParseDep(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("modprobe: %s: %w", dir, err)
	}
	if f, err := os.Open(filepath.Join(dir, "modules.alias")); err == nil {
		ix.Aliases, err = ParseAliases(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("modprobe: %s: %w", filepath.Join(dir, "modules.alias"), err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("modprobe: %w", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			ix.Builtin[contract.ModuleName(l)] = true
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("modprobe: %w", err)
	}
	return ix, nil
}

// ParseAliases reads modules.alias ("alias PATTERN MODULE"; comments and
// other lines are skipped).
func ParseAliases(r io.Reader) ([]Alias, error) {
	var out []Alias
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "alias" {
			out = append(out, Alias{Pattern: f[1], Module: contract.ModuleName(f[2])})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("modules.alias: %w", err)
	}
	return out, nil
}

// Resolve returns the module names that name stands for: itself when it is
// a module (loadable or built in), else every module one of whose aliases
// matches it, in modules.alias order. It is an error when none does.
func (ix *Index) Resolve(name string) ([]string, error) {
	n := contract.ModuleName(name)
	if _, ok := ix.Deps[n]; ok || ix.Builtin[n] {
		return []string{n}, nil
	}
	var out []string
	seen := map[string]bool{}
	for _, a := range ix.Aliases {
		if ok, _ := path.Match(a.Pattern, name); ok && !seen[a.Module] {
			seen[a.Module] = true
			out = append(out, a.Module)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("module %s not found in %s", name, ix.Dir)
	}
	return out, nil
}

// Plan returns the module files to load for names (modules or aliases),
// dependencies first, each once; built-in modules need nothing.
func (ix *Index) Plan(names []string) ([]modules.Module, error) {
	var mods []string
	for _, n := range names {
		r, err := ix.Resolve(n)
		if err != nil {
			return nil, err
		}
		mods = append(mods, r...)
	}
	order, err := ix.Deps.Order(mods, ix.Builtin)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ix.Dir, err)
	}
	return order, nil
}

// Release returns the running kernel's release (uname -r).
func Release() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}

// DefaultDir is the modules directory of the running kernel.
func DefaultDir() (string, error) {
	rel, err := Release()
	if err != nil {
		return "", err
	}
	return filepath.Join(contract.ModulesDir, rel), nil
}
