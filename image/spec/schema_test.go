package spec

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/basaltos/basalt/internal/jsonschema"
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
		`.apiVersion: v9 not in enum [basalt.dev/v1alpha1]`,
		".boards: want array, got string", `.extra: not allowed`,
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("checkSchema(bad) = %q, want %q", got, want)
	}
}

// checkSchema checks v against the schema (internal/jsonschema.Check: it
// also knows the anyOf alternatives of the embedded device-config schema).
func checkSchema(s map[string]any, v any, path string) []string {
	return jsonschema.Check(s, v, path)
}
