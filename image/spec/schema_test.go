package spec

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"go.yaml.in/yaml/v3"
)

// examples are the spec files shipped in examples/, plus the default spec.
func examples(t *testing.T) []string {
	files, err := filepath.Glob("../../examples/*/basalt.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	return files
}

func TestExamplesValidate(t *testing.T) {
	for _, f := range examples(t) {
		if _, warns, err := Load(f); err != nil {
			t.Errorf("%s:\n%v", f, err)
		} else {
			for _, w := range warns {
				t.Logf("warning: %s", w)
			}
		}
	}
}

// TestExamplesMatchSchema checks the examples and the default spec against
// the generated schema's types, required keys, enums and closed objects: a
// small checker, enough to keep schema and decoder in step.
func TestExamplesMatchSchema(t *testing.T) {
	raw, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	if schema["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %v", schema["$schema"])
	}
	docs := map[string][]byte{DefaultFile: defaultYAML}
	for _, f := range examples(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs[f] = b
	}
	for name, b := range docs {
		var v any
		if err := yaml.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, p := range checkSchema(schema, v, "") {
			t.Errorf("%s: %s", name, p)
		}
	}
	// And the checker does catch problems.
	bad := map[string]any{"apiVersion": "v9", "kind": "Image", "boards": "x", "extra": 1}
	got := checkSchema(schema, bad, "")
	want := []string{
		`.: missing required "name"`, `.: missing required "version"`,
		`.apiVersion: "v9" not in enum [basalt.dev/v1alpha1]`,
		".boards: want array", `.extra: not allowed`,
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("checkSchema(bad) = %q, want %q", got, want)
	}
}

func checkSchema(s map[string]any, v any, path string) []string {
	var out []string
	if e, ok := s["enum"].([]any); ok && !slices.Contains(e, v) {
		out = append(out, fmt.Sprintf("%s: %q not in enum %v", showPath(path), v, e))
	}
	types := []string{}
	switch ty := s["type"].(type) {
	case string:
		types = append(types, ty)
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
	case bool:
		kind = "boolean"
	}
	if !slices.Contains(types, kind) {
		return append(out, fmt.Sprintf("%s: want %s", showPath(path), types[0]))
	}
	switch x := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		if req, ok := s["required"].([]any); ok {
			for _, r := range req {
				if _, ok := x[r.(string)]; !ok {
					out = append(out, fmt.Sprintf("%s: missing required %q", showPath(path), r))
				}
			}
		}
		for k, val := range x {
			sub, ok := props[k].(map[string]any)
			if !ok {
				if ap, ok := s["additionalProperties"].(map[string]any); ok {
					sub = ap
				} else {
					out = append(out, fmt.Sprintf("%s.%s: not allowed", path, k))
					continue
				}
			}
			out = append(out, checkSchema(sub, val, path+"."+k)...)
		}
	case []any:
		for i, val := range x {
			out = append(out, checkSchema(s["items"].(map[string]any), val, fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return out
}
