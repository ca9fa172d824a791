package config

import (
	_ "embed"
	"reflect"

	"github.com/basaltos/basalt/internal/jsonschema"
)

// SchemaID is the $id of the device-config JSON Schema.
const SchemaID = "https://basalt.dev/schema/v1alpha1/device-config.json"

//go:embed types.go
var typesSource []byte

// Schema returns the JSON Schema (draft 2020-12) of a versioned device
// config document, generated from the Go types: descriptions from their doc
// comments, closed objects, and the alternative forms the parser accepts
// (a user as a bare name, groups as "a, b"). A #cloud-config document uses
// the same keys without apiVersion and kind.
func Schema() ([]byte, error) {
	docs, err := jsonschema.FieldDocs(typesSource)
	if err != nil {
		return nil, err
	}
	g := jsonschema.Generator{
		RequiredUnlessOmitempty: true,
		Describe: func(owner reflect.Type, f reflect.StructField) string {
			return docs[owner.Name()+"."+f.Name]
		},
		Adjust: func(t reflect.Type, _ reflect.Value, s map[string]any) map[string]any {
			switch t {
			case reflect.TypeFor[User](), reflect.TypeFor[StringList]():
				return map[string]any{"anyOf": []any{s, map[string]any{"type": "string"}}}
			case reflect.TypeFor[WriteFile]():
				// YAML 0644 (an integer) is accepted as well as "0644".
				s["properties"].(map[string]any)["permissions"].(map[string]any)["type"] = []string{"string", "integer"}
			case reflect.TypeFor[basaltDoc]():
				props := s["properties"].(map[string]any)
				props["apiVersion"] = map[string]any{"enum": []string{APIVersion}, "type": "string"}
				props["kind"] = map[string]any{"enum": []string{Kind}, "type": "string"}
			}
			return s
		},
	}
	s := g.Schema(reflect.TypeFor[basaltDoc](), reflect.Value{})
	return jsonschema.Document(s, SchemaID, "basalt device config ("+APIVersion+", kind "+Kind+")")
}
