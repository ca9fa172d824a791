package kmod

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/basaltos/basalt/contract"
)

// Module returns the module called name ('-' or '_').
func (ix *Index) Module(name string) (*Module, bool) {
	m, ok := ix.modules[contract.ModuleName(name)]
	return m, ok
}

// Builtin reports whether name is built into the kernel (modules.builtin).
func (ix *Index) Builtin(name string) bool { return ix.builtin[contract.ModuleName(name)] }

// Modules returns every module of the tree in depmod's order
// (modules.order, then by path).
func (ix *Index) Modules() []*Module {
	out := make([]*Module, 0, len(ix.modules))
	for _, m := range ix.modules {
		out = append(out, m)
	}
	ix.sortByOrder(out)
	return out
}

func (ix *Index) sortByOrder(ms []*Module) {
	pos := func(m *Module) int {
		if i, ok := ix.order[m.Path]; ok {
			return i
		}
		return len(ix.order)
	}
	sort.SliceStable(ms, func(i, j int) bool {
		if pi, pj := pos(ms[i]), pos(ms[j]); pi != pj {
			return pi < pj
		}
		return ms[i].Path < ms[j].Path
	})
}

// computeLevels gives each module the length of its longest hard
// dependency chain and rejects dependency cycles.
func (ix *Index) computeLevels() error {
	ix.level = map[string]int{}
	const visiting = -1
	var visit func(m *Module, stack []string) error
	visit = func(m *Module, stack []string) error {
		switch l, ok := ix.level[m.Name]; {
		case ok && l == visiting:
			return fmt.Errorf("module dependency cycle: %s -> %s", strings.Join(stack, " -> "), m.Name)
		case ok:
			return nil
		}
		ix.level[m.Name] = visiting
		lvl := 0
		for _, d := range m.Depends {
			dm, ok := ix.modules[d]
			if !ok {
				continue // reported by Closure when it matters
			}
			if err := visit(dm, append(stack, m.Name)); err != nil {
				return err
			}
			lvl = max(lvl, ix.level[d]+1)
		}
		ix.level[m.Name] = lvl
		return nil
	}
	for _, m := range ix.Modules() {
		if err := visit(m, nil); err != nil {
			return err
		}
	}
	return nil
}

// Closure returns the modules needed to load names, dependencies first (the
// order to load them in): hard dependencies and softdep pre: modules. Names
// built into the kernel need no module. An unknown name is an error
// listing close names.
func (ix *Index) Closure(names []string) ([]*Module, error) {
	var out []*Module
	done := map[string]bool{}
	var add func(name, parent string, soft bool) error
	add = func(name, parent string, soft bool) error {
		name = contract.ModuleName(name)
		if done[name] {
			return nil
		}
		m, ok := ix.modules[name]
		switch {
		case ok:
		case ix.builtin[name] || soft:
			return nil
		case parent != "":
			return fmt.Errorf("module %s (needed by %s) is not in %s", name, parent, ix.Dir)
		default:
			return fmt.Errorf("unknown kernel module %q in %s (not a module file, not built in)%s", name, ix.Dir, ix.suggest(name))
		}
		done[name] = true
		for _, d := range m.SoftPre {
			if err := add(d, m.Name, true); err != nil {
				return err
			}
		}
		for _, d := range m.Depends {
			if err := add(d, m.Name, false); err != nil {
				return err
			}
		}
		out = append(out, m)
		return nil
	}
	for _, n := range names {
		if err := add(n, "", false); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// suggest lists up to five known names close to name.
func (ix *Index) suggest(name string) string {
	type cand struct {
		n string
		d int
	}
	var cs []cand
	for n := range ix.modules {
		d := distance(name, n)
		if strings.Contains(n, name) || strings.Contains(name, n) {
			d = min(d, 2)
		}
		if d <= 3 {
			cs = append(cs, cand{n, d})
		}
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].d != cs[j].d {
			return cs[i].d < cs[j].d
		}
		return cs[i].n < cs[j].n
	})
	if len(cs) == 0 {
		return ""
	}
	var names []string
	for i := 0; i < len(cs) && i < 5; i++ {
		names = append(names, cs[i].n)
	}
	return "; close names: " + strings.Join(names, ", ")
}

// distance is the Levenshtein edit distance.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev = cur
	}
	return prev[len(b)]
}

// deps returns m's transitive hard dependencies in modules.dep order: a
// module before the modules it needs (modprobe loads the list from the end).
func (ix *Index) deps(m *Module) []*Module {
	seen := map[string]bool{}
	var out []*Module
	var walk func(*Module)
	walk = func(m *Module) {
		for _, d := range m.Depends {
			if dm, ok := ix.modules[d]; ok && !seen[d] {
				seen[d] = true
				out = append(out, dm)
				walk(dm)
			}
		}
	}
	walk(m)
	ix.sortByOrder(out)
	sort.SliceStable(out, func(i, j int) bool { return ix.level[out[i].Name] > ix.level[out[j].Name] })
	return out
}

// WriteDep writes modules.dep for mods (all of Modules(), or a Closure) in
// depmod's format: "kernel/a.ko: kernel/b.ko kernel/c.ko".
func (ix *Index) WriteDep(w io.Writer, mods []*Module) error {
	mods = append([]*Module(nil), mods...)
	ix.sortByOrder(mods)
	bw := bufio.NewWriter(w)
	for _, m := range mods {
		bw.WriteString(m.Path + ":")
		for _, d := range ix.deps(m) {
			bw.WriteString(" " + d.Path)
		}
		bw.WriteString("\n")
	}
	return bw.Flush()
}

// WriteAlias writes modules.alias for mods in depmod's format:
// "alias pci:v00001AF4d00001042sv*sd*bc*sc*i* virtio_blk".
func (ix *Index) WriteAlias(w io.Writer, mods []*Module) error {
	mods = append([]*Module(nil), mods...)
	ix.sortByOrder(mods)
	bw := bufio.NewWriter(w)
	bw.WriteString("# Aliases extracted from modules themselves.\n")
	for _, m := range mods {
		for _, a := range m.Aliases {
			fmt.Fprintf(bw, "alias %s %s\n", a, m.Name)
		}
	}
	return bw.Flush()
}
