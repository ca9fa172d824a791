// Package jsonschema generates JSON Schema (draft 2020-12) from Go types by
// reflection, for documents decoded strictly from YAML: object keys are the
// `yaml` tag names, unknown keys are rejected (additionalProperties: false),
// pointers mean optional, and a few tags add detail (`desc` description,
// `enum` comma-separated values, `required:"true"`). Hooks let a package
// describe its custom scalars and take descriptions from its doc comments
// (FieldDocs).
package jsonschema

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"slices"
	"strings"
)

// Draft is the $schema of the documents Document writes.
const Draft = "https://json-schema.org/draft/2020-12/schema"

// Generator turns a Go type into a schema. The zero value is usable.
type Generator struct {
	// Adjust, when set, is called with every generated schema, the type it
	// describes and that type's default value (invalid when none), and
	// returns the schema to use (custom scalars, alternative forms).
	Adjust func(t reflect.Type, def reflect.Value, s map[string]any) map[string]any
	// Describe, when set, returns the description of field f of struct
	// type owner; otherwise the `desc` tag is used.
	Describe func(owner reflect.Type, f reflect.StructField) string
	// RequiredUnlessOmitempty makes every field without ",omitempty" in
	// its yaml tag required (as well as `required:"true"` fields).
	RequiredUnlessOmitempty bool
}

// Schema returns the schema of t; def holds t's default value (or is the
// zero reflect.Value), written as "default" for scalars.
func (g Generator) Schema(t reflect.Type, def reflect.Value) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
		def = reflect.Value{}
	}
	s := g.schema(t, def)
	if g.Adjust != nil {
		s = g.Adjust(t, def, s)
	}
	return s
}

func (g Generator) schema(t reflect.Type, def reflect.Value) map[string]any {
	switch t.Kind() {
	case reflect.Struct:
		props := map[string]any{}
		var required []string
		for _, f := range reflect.VisibleFields(t) {
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" || !f.IsExported() {
				continue
			}
			var fdef reflect.Value
			if def.IsValid() {
				fdef = def.FieldByIndex(f.Index)
			}
			p := g.Schema(f.Type, fdef)
			owner := t
			if len(f.Index) > 1 {
				owner = t.FieldByIndex(f.Index[:len(f.Index)-1]).Type
			}
			d := f.Tag.Get("desc")
			if g.Describe != nil {
				d = g.Describe(owner, f)
			}
			if d != "" {
				p["description"] = d
			}
			if e := f.Tag.Get("enum"); e != "" {
				if items, ok := p["items"].(map[string]any); ok && p["type"] == "array" {
					items["enum"] = strings.Split(e, ",") // a list of allowed values
				} else {
					p["enum"] = strings.Split(e, ",")
				}
			}
			props[name] = p
			if f.Tag.Get("required") == "true" || g.RequiredUnlessOmitempty && !strings.Contains(opts, "omitempty") {
				required = append(required, name)
			}
		}
		s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if len(required) > 0 {
			s["required"] = required
		}
		return s
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.Schema(t.Elem(), reflect.Value{})}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": g.Schema(t.Elem(), reflect.Value{})}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return withDefault(map[string]any{"type": "integer"}, def)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		s := map[string]any{"type": "integer", "minimum": 0}
		if t.Bits() < 64 {
			s["maximum"] = uint64(1)<<t.Bits() - 1
		}
		return withDefault(s, def)
	case reflect.Float32, reflect.Float64:
		return withDefault(map[string]any{"type": "number"}, def)
	}
	return withDefault(map[string]any{"type": "string"}, def)
}

func withDefault(s map[string]any, def reflect.Value) map[string]any {
	if def.IsValid() && !def.IsZero() {
		s["default"] = def.Interface()
	}
	return s
}

// Document adds $schema, $id and title to s and encodes it as indented
// JSON with a final newline.
func Document(s map[string]any, id, title string) ([]byte, error) {
	s["$schema"] = Draft
	s["$id"] = id
	s["title"] = title
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", id, err)
	}
	return append(b, '\n'), nil
}

// FieldDocs returns the doc comments of the struct fields declared in the
// Go source src, keyed "Type.Field", each joined into one line: a
// Describe hook for a package that embeds its types' source.
func FieldDocs(src []byte) (map[string]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), "types.go", src, parser.ParseComments)
	if err != nil {
		return nil, fmt.Errorf("field docs: %w", err)
	}
	docs := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok {
			return true
		}
		st, ok := ts.Type.(*ast.StructType)
		if !ok {
			return false
		}
		for _, fld := range st.Fields.List {
			doc := fld.Doc.Text()
			if doc == "" {
				doc = fld.Comment.Text()
			}
			for _, name := range fld.Names {
				if d := strings.Join(strings.Fields(doc), " "); d != "" {
					docs[ts.Name.Name+"."+name.Name] = d
				}
			}
		}
		return false
	})
	return docs, nil
}

// Check reports where v (as decoded from YAML or JSON into any) breaks the
// parts of schema s (a Document decoded with encoding/json) that Generator writes: type, enum, required,
// properties, additionalProperties, items and anyOf. It is a test helper
// that keeps schema and decoder in step, not a full validator.
func Check(s map[string]any, v any, path string) []string {
	if alts, ok := s["anyOf"].([]any); ok {
		var first []string
		for i, a := range alts {
			p := Check(a.(map[string]any), v, path)
			if len(p) == 0 {
				return nil
			}
			if i == 0 {
				first = p
			}
		}
		return first
	}
	show := path
	if show == "" {
		show = "."
	}
	var out []string
	if e, ok := s["enum"].([]any); ok && !slices.Contains(e, v) {
		out = append(out, fmt.Sprintf("%s: %v not in enum %v", show, v, e))
	}
	var types []string
	switch ty := s["type"].(type) {
	case string:
		types = []string{ty}
	case []any:
		for _, x := range ty {
			types = append(types, x.(string))
		}
	}
	kind := ""
	switch v.(type) {
	case map[string]any:
		kind = "object"
	case []any:
		kind = "array"
	case string:
		kind = "string"
	case int, int64, uint64:
		kind = "integer"
	case float64:
		kind = "number"
	case bool:
		kind = "boolean"
	}
	if !slices.Contains(types, kind) && !(kind == "integer" && slices.Contains(types, "number")) {
		return append(out, fmt.Sprintf("%s: want %s, got %s", show, strings.Join(types, " or "), kind))
	}
	switch x := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		req, _ := s["required"].([]any)
		for _, r := range req {
			if _, ok := x[r.(string)]; !ok {
				out = append(out, fmt.Sprintf("%s: missing required %q", show, r))
			}
		}
		for k, val := range x {
			sub, ok := props[k].(map[string]any)
			if !ok {
				if sub, ok = s["additionalProperties"].(map[string]any); !ok {
					out = append(out, fmt.Sprintf("%s.%s: not allowed", path, k))
					continue
				}
			}
			out = append(out, Check(sub, val, path+"."+k)...)
		}
	case []any:
		for i, val := range x {
			out = append(out, Check(s["items"].(map[string]any), val, fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return out
}
