// Package kmod computes kernel module closures in Go, without depmod: it
// reads the .modinfo section of every module of a lib/modules/<release>
// tree (the Debian kernel packages ship no modules.dep), resolves module
// names through depends=, softdep= (pre:) and modules.builtin, and writes
// modules.dep and modules.alias in depmod's format for the whole tree (the
// root's modprobe) or for a closure (the initramfs).
package kmod

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/basaltos/basalt/contract"
)

// Module is one loadable module of the tree.
type Module struct {
	Name string // canonical name: '-' replaced by '_'
	// Path is relative to the modules dir: kernel/fs/squashfs/squashfs.ko.
	Path    string
	Depends []string // module names from depends=
	SoftPre []string // softdep pre: modules
	Aliases []string
}

// Index is the module set of one kernel release.
type Index struct {
	Dir     string
	modules map[string]*Module
	builtin map[string]bool
	order   map[string]int // position in modules.order, by path
	level   map[string]int // longest dependency chain below a module
}

// Scan reads every module below dir (lib/modules/<release>) and the
// modules.builtin and modules.order files when present.
func Scan(dir string) (*Index, error) {
	ix := &Index{Dir: dir, modules: map[string]*Module{}, builtin: map[string]bool{}, order: map[string]int{}}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != dir && (d.Name() == "build" || d.Name() == "source") {
			return fs.SkipDir
		}
		stem, ok := contract.ModuleStem(d.Name())
		if !ok || !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		m, err := readModule(p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		m.Path = filepath.ToSlash(rel)
		if m.Name == "" {
			m.Name = contract.ModuleName(stem)
		}
		if old, dup := ix.modules[m.Name]; dup {
			return fmt.Errorf("module %s twice: %s and %s", m.Name, old.Path, m.Path)
		}
		ix.modules[m.Name] = m
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan modules: %w", err)
	}
	if len(ix.modules) == 0 {
		return nil, fmt.Errorf("scan modules: no .ko files below %s", dir)
	}
	if err := readLines(filepath.Join(dir, "modules.builtin"), func(i int, l string) {
		if stem, ok := contract.ModuleStem(filepath.Base(l)); ok {
			ix.builtin[contract.ModuleName(stem)] = true
		}
	}); err != nil {
		return nil, err
	}
	if err := readLines(filepath.Join(dir, "modules.order"), func(i int, l string) {
		if _, seen := ix.order[l]; !seen {
			ix.order[l] = i
		}
	}); err != nil {
		return nil, err
	}
	return ix, ix.computeLevels()
}

func readLines(path string, fn func(i int, line string)) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for i := 0; sc.Scan(); i++ {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			fn(i, l)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// readModule reads a (possibly compressed) module file's .modinfo.
func readModule(path string) (*Module, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	switch {
	case strings.HasSuffix(path, ".xz"):
		r, err = xz.NewReader(bufio.NewReader(f))
	case strings.HasSuffix(path, ".zst"):
		var zr *zstd.Decoder
		zr, err = zstd.NewReader(f)
		if err == nil {
			defer zr.Close()
			r = zr
		}
	case strings.HasSuffix(path, ".gz"):
		r, err = gzip.NewReader(f)
	}
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return ParseModule(data)
}

// ParseModule reads the .modinfo section of an ELF module image (untrusted
// bytes) and returns its name, dependencies, soft dependencies and aliases.
func ParseModule(data []byte) (*Module, error) {
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("not an ELF module: %w", err)
	}
	defer ef.Close()
	sec := ef.Section(".modinfo")
	if sec == nil {
		return nil, errors.New("no .modinfo section")
	}
	info, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf(".modinfo: %w", err)
	}
	m := &Module{}
	for _, kv := range bytes.Split(info, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			continue
		}
		switch k {
		case "name":
			m.Name = contract.ModuleName(v)
		case "depends":
			for _, d := range strings.Split(v, ",") {
				if d = strings.TrimSpace(d); d != "" {
					m.Depends = append(m.Depends, contract.ModuleName(d))
				}
			}
		case "alias":
			m.Aliases = append(m.Aliases, v)
		case "softdep":
			m.SoftPre = append(m.SoftPre, softdepPre(v)...)
		}
	}
	return m, nil
}

// softdepPre returns the modules after "pre:" in a softdep value
// ("pre: crc32c post: foo").
func softdepPre(v string) []string {
	var out []string
	pre := false
	for _, f := range strings.Fields(v) {
		switch {
		case strings.HasSuffix(f, ":"):
			pre = f == "pre:"
		case pre:
			out = append(out, contract.ModuleName(f))
		}
	}
	return out
}
