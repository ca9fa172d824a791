package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Limits that bound the work and memory spent on one untrusted document.
const (
	// MaxDocumentSize is the largest document Parse reads, in bytes.
	MaxDocumentSize = 1 << 20
	// maxNodes bounds the nodes visited, alias expansions included.
	maxNodes = 200000
	// maxDepth bounds nesting.
	maxDepth = 64
)

// Format is a document's format.
type Format int

const (
	// FormatBasalt is a versioned basalt document (apiVersion, kind).
	FormatBasalt Format = iota
	// FormatCloudConfig is a "#cloud-config" user-data document.
	FormatCloudConfig
	// FormatCmdline is a config built from kernel command-line keys.
	FormatCmdline
)

// Issue is one problem found in a document, an error or a warning.
type Issue struct {
	File    string
	Line    int    // 0 when unknown
	Path    string // YAML path, ".users[0].name"; empty for the whole document
	Reason  string
	Allowed []string
}

// Error formats the issue as FILE:LINE: .path: reason (allowed: a, b).
func (i Issue) Error() string {
	var b strings.Builder
	if i.File != "" {
		b.WriteString(i.File)
		b.WriteString(":")
	}
	if i.Line > 0 {
		fmt.Fprintf(&b, "%d:", i.Line)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if i.Path != "" {
		b.WriteString(i.Path)
		b.WriteString(": ")
	}
	b.WriteString(i.Reason)
	if len(i.Allowed) > 0 {
		b.WriteString(" (allowed: " + strings.Join(i.Allowed, ", ") + ")")
	}
	return b.String()
}

// Issues is a list of issues; as an error it prints one issue per line.
type Issues []Issue

func (is Issues) Error() string {
	s := make([]string, len(is))
	for i, x := range is {
		s[i] = x.Error()
	}
	return strings.Join(s, "\n")
}

// Document is one parsed source: a file, a seed's user-data, the cmdline.
type Document struct {
	File   string
	Format Format
	Config Config
	lines  map[string]int
}

// Line returns the line of the YAML key at path, or of its nearest
// ancestor that has one; 0 when unknown.
func (d *Document) Line(path string) int {
	for path != "" {
		if l, ok := d.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// basaltDoc is the top level of a versioned document.
type basaltDoc struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Config     `yaml:",inline"`
}

// Parse reads one document. A document whose first line is "#cloud-config"
// is cloud-init user-data; anything else must be a versioned basalt
// document. It returns the warnings (unsupported cloud-init keys), and an
// error of type Issues listing every problem when the document is invalid.
func Parse(file string, data []byte) (*Document, Issues, error) {
	doc := &Document{File: file, lines: map[string]int{}}
	fail := func(line int, reason string) (*Document, Issues, error) {
		return nil, nil, Issues{{File: file, Line: line, Reason: reason}}
	}
	if len(data) > MaxDocumentSize {
		return fail(0, fmt.Sprintf("document is %d bytes, more than the limit of %d", len(data), MaxDocumentSize))
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	first, _, _ := bytes.Cut(data, []byte("\n"))
	if string(bytes.TrimRight(first, " \t\r")) == CloudConfigHeader {
		doc.Format = FormatCloudConfig
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		line, reason := yamlError(err)
		return fail(line, reason)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return fail(extra.Line, "more than one YAML document")
	} else if !errors.Is(err, io.EOF) {
		line, reason := yamlError(err)
		return fail(line, reason)
	}
	w := &walker{file: file, cloud: doc.Format == FormatCloudConfig, lines: doc.lines, budget: maxNodes}
	var body *yaml.Node
	if len(root.Content) > 0 {
		body = root.Content[0]
	}
	if doc.Format == FormatCloudConfig {
		if body != nil {
			w.walk(body, reflect.TypeFor[Config](), "", 0)
		}
	} else {
		if body == nil {
			return fail(0, fmt.Sprintf("empty document: want apiVersion: %s, kind: %s, or a first line %q", APIVersion, Kind, CloudConfigHeader))
		}
		w.walk(body, reflect.TypeFor[basaltDoc](), "", 0)
	}
	if len(w.errs) > 0 {
		return nil, w.warns, w.errs
	}
	if body != nil {
		var err error
		if doc.Format == FormatCloudConfig {
			err = body.Decode(&doc.Config)
		} else {
			var bd basaltDoc
			err = body.Decode(&bd)
			doc.Config = bd.Config
			w.header(bd, body)
		}
		if err != nil {
			line, reason := yamlError(err)
			return fail(line, reason)
		}
	}
	errs := append(w.errs, Validate(doc)...)
	if len(errs) > 0 {
		return nil, w.warns, errs
	}
	return doc, w.warns, nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

// yamlError splits a yaml.v3 error into its line and reason.
func yamlError(err error) (int, string) {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		reason := msg[len(m[0]):]
		if strings.HasPrefix(reason, "did not find expected") {
			// yaml.v3 reports parser (not scanner) errors at the
			// 0-based line of their context.
			n++
		}
		return n, "invalid YAML: " + reason
	}
	// yaml.v3 leaves out "line N: " when the error is on the first line
	// (its 0-based line 0), as in "key: [1, 2]]".
	return 1, "invalid YAML: " + msg
}

// walker checks a YAML node tree against a Go type before decoding: unknown
// keys, wrong kinds, duplicate keys, with the YAML path and line of each,
// and it records the line of every key for later validation messages.
type walker struct {
	file        string
	cloud       bool
	lines       map[string]int
	budget      int
	errs, warns Issues
}

func (w *walker) fail(n *yaml.Node, path, reason string, allowed ...string) {
	w.errs = append(w.errs, Issue{File: w.file, Line: n.Line, Path: path, Reason: reason, Allowed: allowed})
}

var (
	typeStringList = reflect.TypeFor[StringList]()
	typeUser       = reflect.TypeFor[User]()
)

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string, depth int) {
	w.budget--
	if w.budget == 0 {
		w.fail(n, path, fmt.Sprintf("document too large: more than %d nodes after alias expansion", maxNodes))
	}
	if w.budget <= 0 {
		return
	}
	if depth > maxDepth {
		w.fail(n, path, fmt.Sprintf("nested deeper than %d levels", maxDepth))
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return
		}
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == typeStringList:
		if n.Kind == yaml.ScalarNode {
			return
		}
		w.seq(n, t, path, depth)
	case t == typeUser && n.Kind == yaml.ScalarNode:
		return
	case t.Kind() == reflect.Struct:
		w.mapping(n, t, path, depth)
	case t.Kind() == reflect.Slice:
		w.seq(n, t, path, depth)
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.fail(n, path, "must be a mapping")
			return
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := path + keyPath(k.Value)
			if seen[k.Value] {
				w.fail(k, p, "duplicate key")
				continue
			}
			seen[k.Value] = true
			w.lines[p] = k.Line
			w.walk(v, t.Elem(), p, depth+1)
		}
	default:
		if n.Kind != yaml.ScalarNode {
			w.fail(n, path, "must be "+kindName(t))
			return
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			w.fail(n, path, fmt.Sprintf("must be %s, not %q", kindName(t), n.Value))
		}
	}
}

func (w *walker) seq(n *yaml.Node, t reflect.Type, path string, depth int) {
	if n.Kind != yaml.SequenceNode {
		w.fail(n, path, "must be a list")
		return
	}
	for i, e := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		w.lines[p] = e.Line
		w.walk(e, t.Elem(), p, depth+1)
	}
}

func (w *walker) mapping(n *yaml.Node, t reflect.Type, path string, depth int) {
	if n.Kind != yaml.MappingNode {
		w.fail(n, path, "must be a mapping")
		return
	}
	fields := yamlFields(t)
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "<<" && k.Tag == "!!merge" {
			w.merge(v, t, path, depth)
			continue
		}
		p := path + keyPath(k.Value)
		if seen[k.Value] {
			w.fail(k, p, "duplicate key")
			continue
		}
		seen[k.Value] = true
		f, ok := fields[k.Value]
		if !ok {
			if w.cloud {
				w.warns = append(w.warns, Issue{File: w.file, Line: k.Line, Path: p, Reason: "unsupported cloud-init key, ignored"})
				continue
			}
			w.fail(k, p, "unknown key", slices.Sorted(maps.Keys(fields))...)
			continue
		}
		w.lines[p] = k.Line
		w.walk(v, f, p, depth+1)
	}
}

// merge walks the value of a YAML merge key ("<<: *base").
func (w *walker) merge(v *yaml.Node, t reflect.Type, path string, depth int) {
	if v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	if v.Kind == yaml.SequenceNode {
		for _, e := range v.Content {
			w.merge(e, t, path, depth+1)
		}
		return
	}
	w.walk(v, t, path, depth+1)
}

// header checks apiVersion and kind of a versioned document.
func (w *walker) header(bd basaltDoc, body *yaml.Node) {
	if bd.APIVersion == "" && bd.Kind == "" {
		w.errs = append(w.errs, Issue{File: w.file, Line: 1, Reason: fmt.Sprintf(
			"no header: a drop-in starts with the lines \"apiVersion: %s\" and \"kind: %s\", or with \"%s\" as its first line (cloud-init user-data)",
			APIVersion, Kind, CloudConfigHeader)})
		return
	}
	if bd.APIVersion != APIVersion {
		w.errs = append(w.errs, Issue{File: w.file, Line: lineOr(w.lines[".apiVersion"], body.Line), Path: ".apiVersion",
			Reason: fmt.Sprintf("unsupported apiVersion %q", bd.APIVersion), Allowed: []string{APIVersion}})
	}
	if bd.Kind != Kind {
		w.errs = append(w.errs, Issue{File: w.file, Line: lineOr(w.lines[".kind"], body.Line), Path: ".kind",
			Reason: fmt.Sprintf("unsupported kind %q", bd.Kind), Allowed: []string{Kind}})
	}
}

func lineOr(a, b int) int {
	if a > 0 {
		return a
	}
	return b
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// keyPath renders a mapping key as a YAML path element.
func keyPath(k string) string {
	if plainKey.MatchString(k) {
		return "." + k
	}
	return "[" + strconv.Quote(k) + "]"
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.String:
		return "a string"
	}
	return t.String()
}

// yamlFields maps the YAML keys of struct t (inline fields flattened) to
// their types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if strings.Contains(opts, "inline") {
			for k, v := range yamlFields(f.Type) {
				m[k] = v
			}
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		m[name] = f.Type
	}
	return m
}
