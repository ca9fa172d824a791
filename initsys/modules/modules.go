// Package modules loads kernel modules on the device, before the root is
// mounted: the names listed in /lib/modules/<release>/modules.load (written
// by the builder: one module name per line, in load order), each after its
// dependencies as modules.dep lists them, with finit_module(2).
package modules

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"

	"github.com/basaltos/basalt/contract"
)

// Module is one entry of modules.dep.
type Module struct {
	// Path is relative to the release's modules directory.
	Path string
	// Deps are the module names it needs, as modules.dep lists them.
	Deps []string
}

// Deps maps module names (contract.ModuleName) to their modules.dep entry.
type Deps map[string]Module

// ParseDep reads modules.dep ("path: dep-path dep-path ...", one module a line).
func ParseDep(r io.Reader) (Deps, error) {
	d := Deps{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p, rest, ok := strings.Cut(line, ":")
		p = strings.TrimSpace(p)
		if !ok || p == "" {
			return nil, fmt.Errorf("modules.dep line %d: want \"path: deps\", got %q", n, line)
		}
		m := Module{Path: p}
		for _, dp := range strings.Fields(rest) {
			m.Deps = append(m.Deps, contract.ModuleName(dp))
		}
		d[contract.ModuleName(p)] = m
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("modules.dep: %w", err)
	}
	return d, nil
}

// ReadList reads a modules.load list: one module name per line; blank lines
// and lines starting with '#' are skipped.
func ReadList(r io.Reader) ([]string, error) {
	var names []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		names = append(names, line)
	}
	return names, sc.Err()
}

// Order returns the modules to load for names, dependencies first, each
// once, as modules.dep entries. A name that is neither in d nor in builtin is
// an error; builtin modules are skipped.
func (d Deps) Order(names []string, builtin map[string]bool) ([]Module, error) {
	var out []Module
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string, chain []string) error
	visit = func(name string, chain []string) error {
		name = contract.ModuleName(name)
		switch state[name] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("dependency cycle: %s -> %s", strings.Join(chain, " -> "), name)
		}
		m, ok := d[name]
		if !ok {
			if builtin[name] {
				state[name] = 2
				return nil
			}
			if len(chain) > 0 {
				return fmt.Errorf("module %s (needed by %s) is not in modules.dep", name, chain[len(chain)-1])
			}
			return fmt.Errorf("module %s is not in modules.dep", name)
		}
		state[name] = 1
		for _, dep := range m.Deps {
			if err := visit(dep, append(chain, name)); err != nil {
				return err
			}
		}
		state[name] = 2
		out = append(out, m)
		return nil
	}
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Load loads the modules named in dir/modules.load (dir is
// /lib/modules/<release>), dependencies first. A missing modules.load means
// nothing to load. It goes on after a module fails and returns every failure
// joined; modules already loaded (EEXIST) are fine.
func Load(dir string) (loaded int, err error) {
	list, err := os.ReadFile(filepath.Join(dir, contract.ModulesLoadFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	names, err := ReadList(bytes.NewReader(list))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", filepath.Join(dir, contract.ModulesLoadFile), err)
	}
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return 0, err
	}
	deps, err := ParseDep(f)
	f.Close()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", dir, err)
	}
	builtin, err := readBuiltin(filepath.Join(dir, "modules.builtin"))
	if err != nil {
		return 0, err
	}
	order, err := deps.Order(names, builtin)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", dir, err)
	}
	var errs []error
	for _, m := range order {
		if err := LoadModule(filepath.Join(dir, m.Path), ""); err != nil {
			errs = append(errs, err)
			continue
		}
		loaded++
	}
	return loaded, errors.Join(errs...)
}

// readBuiltin reads modules.builtin (paths of modules built into the
// kernel); a missing file means none.
func readBuiltin(file string) (map[string]bool, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	m := map[string]bool{}
	for _, l := range strings.Fields(string(data)) {
		m[contract.ModuleName(l)] = true
	}
	return m, nil
}

// LoadModule loads one module file with params (may be ""): finit_module
// for a plain .ko, decompressed in memory and init_module for .ko.xz /
// .ko.zst. A module that is already loaded is not an error.
func LoadModule(file, params string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	switch filepath.Ext(file) {
	case ".ko":
		err = unix.FinitModule(int(f.Fd()), params, 0)
	case ".xz":
		var r io.Reader
		if r, err = xz.NewReader(f); err == nil {
			err = initModule(r, params)
		}
	case ".zst":
		var z *zstd.Decoder
		if z, err = zstd.NewReader(f); err == nil {
			err = initModule(z, params)
			z.Close()
		}
	default:
		err = fmt.Errorf("unsupported module file type %q", filepath.Ext(file))
	}
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load %s: %w", file, err)
	}
	return nil
}

func initModule(r io.Reader, params string) error {
	img, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("decompress: %w", err)
	}
	return unix.InitModule(img, params)
}
