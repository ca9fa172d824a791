package spec

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/basaltos/basalt/internal/errclass"
)

// Issue is one problem found in a spec, located by file, line and YAML path.
type Issue struct {
	File string
	Line int    // 0 when unknown
	Path string // ".disk.boot", ".boards[1]"; "." is the document
	Msg  string
}

func (i Issue) String() string {
	var b strings.Builder
	b.WriteString(i.File)
	if i.Line > 0 {
		fmt.Fprintf(&b, ":%d", i.Line)
	}
	if i.Path != "" {
		b.WriteString(": " + i.Path)
	}
	return b.String() + ": " + i.Msg
}

// Error holds every issue that makes a spec invalid. It matches
// errclass.ErrInvalid.
type Error struct{ Issues []Issue }

func (e *Error) Error() string {
	lines := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		lines[i] = is.String()
	}
	return strings.Join(lines, "\n")
}

// Is reports whether target is errclass.ErrInvalid.
func (e *Error) Is(target error) bool { return target == errclass.ErrInvalid }

//go:embed default.yaml
var defaultYAML []byte

// DefaultFile is the name the embedded default spec carries in messages.
const DefaultFile = "<default spec>"

// Default returns the embedded default spec (board qemu-x86_64), used when no
// spec file is given. Relative paths in it resolve against dir.
func Default(dir string) *Spec {
	s, _, err := parse(DefaultFile, dir, defaultYAML)
	if err != nil {
		panic(err) // embedded data: the tests parse it
	}
	return s
}

// DefaultYAML returns the text of the embedded default spec.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Load reads, decodes, defaults and validates the spec at path. It returns
// the warnings, and an *Error (matching errclass.ErrInvalid) listing every problem.
func Load(path string) (*Spec, []Issue, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, &Error{[]Issue{{File: path, Msg: fmt.Sprintf("cannot read spec: %v", errors.Unwrap(err))}}}
	}
	return Parse(path, data)
}

// Parse decodes, defaults and validates data read from file (used in
// messages; relative paths in the spec resolve against its directory).
func Parse(file string, data []byte) (*Spec, []Issue, error) {
	return parse(file, filepath.Dir(file), data)
}

func parse(file, dir string, data []byte) (*Spec, []Issue, error) {
	fail := func(line int, path, msg string) (*Spec, []Issue, error) {
		return nil, nil, &Error{[]Issue{{File: file, Line: line, Path: path, Msg: msg}}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return fail(0, "", "empty spec (want apiVersion, kind, name, version, boards)")
		}
		return fail(yamlErrLine(err), "", strings.TrimPrefix(yamlErrMsg(err), "yaml: "))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return fail(extra.Line, "", "a second YAML document; a spec is one document")
	}
	w := walker{file: file, lines: map[string]int{}, bad: map[string]bool{}}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	w.walk(root, reflect.TypeOf(Spec{}), "")
	// With structural issues, decode leniently anyway so that the semantic
	// checks below report their errors in the same pass.
	var s Spec
	if len(w.issues) == 0 {
		dec = yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&s); err != nil {
			return fail(yamlErrLine(err), "", strings.TrimPrefix(yamlErrMsg(err), "yaml: "))
		}
	} else {
		_ = root.Decode(&s) // duplicates pruned; the walker reported the rest
	}
	s.File, s.Dir, s.lines = file, dir, w.lines
	ApplyDefaults(&s)
	errs, warns := s.validate()
	cerrs, cwarns := s.parseConfig(data, root)
	errs, warns = append(errs, cerrs...), append(warns, cwarns...)
	errs = append(errs, s.checkTimezones()...) // after parseConfig: it reads the config's timezone
	if len(w.issues) > 0 {
		errs = append(w.issues, w.unaffected(errs)...)
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
	}
	if len(errs) > 0 {
		return nil, warns, &Error{errs}
	}
	return &s, warns, nil
}

// unaffected drops the semantic issues at or below a path that already has
// a structural issue: those would repeat it in other words.
func (w *walker) unaffected(is []Issue) []Issue {
	var out []Issue
next:
	for _, i := range is {
		for b := range w.bad {
			if i.Path == b || strings.HasPrefix(i.Path, b+".") || strings.HasPrefix(i.Path, b+"[") || b == "." {
				continue next
			}
		}
		out = append(out, i)
	}
	return out
}

// yamlErrLine digs "line N:" out of a yaml.v3 error (0 when absent).
// yaml.v3 reports parser errors (as opposed to scanner errors) with the
// 0-based line of their context; those are moved to 1-based.
func yamlErrLine(err error) int {
	msg := err.Error()
	fix := 0
	for _, p := range []string{"did not find expected", "found duplicate", "found incompatible", "found undefined"} {
		if strings.Contains(msg, p) {
			fix = 1
		}
	}
	i := strings.Index(msg, "line ")
	if i < 0 {
		return 0
	}
	rest := msg[i+5:]
	j := strings.IndexAny(rest, ":,) ")
	if j < 0 {
		return 0
	}
	n, err := strconv.Atoi(rest[:j])
	if err != nil {
		return 0
	}
	return n + fix
}

func yamlErrMsg(err error) string {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	if i := strings.Index(msg, "line "); i >= 0 {
		if j := strings.Index(msg[i:], ": "); j >= 0 {
			return strings.TrimSpace(msg[:i] + msg[i+j+2:])
		}
	}
	return msg
}

// walker checks a YAML node tree against a Go type: unknown and duplicate
// keys, node kinds, scalar syntax, enums and required keys, collecting every
// issue; and it records the line of each path for later messages.
type walker struct {
	file   string
	issues []Issue
	lines  map[string]int
	bad    map[string]bool // paths with an issue
}

var (
	scalarType       = reflect.TypeOf((*scalar)(nil)).Elem()
	filesType        = reflect.TypeOf(Files{})
	deviceConfigType = reflect.TypeOf(DeviceConfig{})
)

func (w *walker) add(n *yaml.Node, path, format string, args ...any) {
	w.issues = append(w.issues, Issue{File: w.file, Line: n.Line, Path: showPath(path), Msg: fmt.Sprintf(format, args...)})
	w.bad[showPath(path)] = true
}

func showPath(p string) string {
	if p == "" {
		return "."
	}
	return p
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return fmt.Sprintf("the scalar %q", n.Value)
}

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	if _, ok := w.lines[path]; !ok {
		w.lines[path] = n.Line
	}
	if n.Kind == yaml.AliasNode {
		w.add(n, path, "aliases are not supported in a spec")
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" && path != "" {
		return // unset
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == deviceConfigType {
		return // contract/config checks it (parseConfig)
	}
	if reflect.PointerTo(t).Implements(scalarType) {
		if n.Kind != yaml.ScalarNode {
			w.add(n, path, "want a scalar, got %s", kindName(n))
			return
		}
		if err := reflect.New(t).Interface().(scalar).parseScalar(n.Value); err != nil {
			w.add(n, path, "%v", err)
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		w.walkStruct(n, t, path)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.add(n, path, "want a mapping, got %s", kindName(n))
			return
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if prev, dup := seen[k.Value]; dup {
				w.add(k, path+"."+k.Value, "duplicate key (first at line %d)", prev)
				n.Content = append(n.Content[:i:i], n.Content[i+2:]...)
				i -= 2
				continue
			}
			seen[k.Value] = k.Line
			w.lines[path+"."+k.Value] = k.Line
			w.walk(v, t.Elem(), path+"."+k.Value)
		}
	case reflect.Slice:
		if t == filesType && n.Kind == yaml.ScalarNode {
			return // one file, the short form of a list
		}
		if n.Kind != yaml.SequenceNode {
			w.add(n, path, "want a list, got %s", kindName(n))
			return
		}
		for i, c := range n.Content {
			w.walk(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	default:
		w.walkScalar(n, t, path)
	}
}

// movedKeys are keys that were replaced, by YAML path, with where they went.
var movedKeys = map[string]string{
	".cluster": "config.cluster (the device config, so that drop-ins can change it; see docs/config.md)",
}

func (w *walker) walkStruct(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.MappingNode {
		w.add(n, path, "want a mapping, got %s", kindName(n))
		return
	}
	fields := map[string]reflect.StructField{}
	var names []string
	for _, f := range reflect.VisibleFields(t) {
		if name := yamlName(f); name != "" {
			fields[name] = f
			names = append(names, name)
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := path + "." + k.Value
		f, ok := fields[k.Value]
		switch {
		case !ok && movedKeys[p] != "":
			w.add(k, p, "moved to %s", movedKeys[p])
			continue
		case !ok:
			w.add(k, p, "unknown key (allowed: %s)", strings.Join(names, ", "))
			continue
		case seen[k.Value] > 0:
			w.add(k, p, "duplicate key (first at line %d)", seen[k.Value])
			n.Content = append(n.Content[:i:i], n.Content[i+2:]...) // keep the first for the lenient decode
			i -= 2
			continue
		}
		seen[k.Value] = k.Line
		w.lines[p] = k.Line
		w.walk(v, f.Type, p)
		if enum := f.Tag.Get("enum"); enum != "" {
			allowed := strings.Split(enum, ",")
			vals := []*yaml.Node{v} // a scalar, or each item of a list
			if v.Kind == yaml.SequenceNode {
				vals = v.Content
			}
			for _, e := range vals {
				if e.Kind == yaml.ScalarNode && !slices.Contains(allowed, e.Value) {
					w.add(e, p, "%q is not allowed (allowed: %s)", e.Value, strings.Join(allowed, ", "))
				}
			}
		}
	}
	for _, name := range names {
		if fields[name].Tag.Get("required") == "true" && seen[name] == 0 {
			w.add(n, path, "missing required key %q", name)
			delete(w.bad, showPath(path)) // only the key is missing
			w.bad[path+"."+name] = true
		}
	}
}

func (w *walker) walkScalar(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.ScalarNode {
		w.add(n, path, "want a scalar, got %s", kindName(n))
		return
	}
	var err error
	switch t.Kind() {
	case reflect.Bool:
		if n.Tag != "!!bool" {
			err = errors.New("want true or false")
		}
	case reflect.Uint32:
		if _, e := strconv.ParseUint(n.Value, 10, 32); e != nil {
			err = fmt.Errorf("want a whole number from 0 to %d, got %q", uint32(1<<32-1), n.Value)
		}
	case reflect.String:
		if n.Tag == "!!bool" {
			err = fmt.Errorf("want a string, got the boolean %s (quote it)", n.Value)
		}
	}
	if err != nil {
		w.add(n, path, "%v", err)
	}
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	return name
}
