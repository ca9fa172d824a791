package spec

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/basaltos/basalt/contract/config"
	"github.com/basaltos/basalt/internal/jsonschema"
)

// SchemaID is the $id of the generated JSON Schema.
const SchemaID = "https://basalt.dev/schema/v1alpha1/image.json"

// Schema returns the JSON Schema (draft 2020-12) of a spec, generated from
// the Go types: descriptions from `desc` tags, enums from `enum`, required
// keys from `required`, defaults from ApplyDefaults. Unknown keys are
// rejected (additionalProperties: false), as the decoder does.
func Schema() ([]byte, error) {
	var defaults Spec
	ApplyDefaults(&defaults)
	cfg, err := configSchema()
	if err != nil {
		return nil, err
	}
	g := jsonschema.Generator{Adjust: func(t reflect.Type, def reflect.Value, s map[string]any) map[string]any {
		if t == deviceConfigType {
			return cfg
		}
		return adjustScalar(t, def, s)
	}}
	s := g.Schema(reflect.TypeOf(Spec{}), reflect.ValueOf(defaults))
	return jsonschema.Document(s, SchemaID, "basalt image spec ("+APIVersion+", kind "+Kind+")")
}

// configSchema is contract/config's schema of a device-config document
// without its apiVersion and kind: the spec's config: section.
func configSchema() (map[string]any, error) {
	b, err := config.Schema()
	if err != nil {
		return nil, err
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("device config schema: %w", err)
	}
	for _, k := range []string{"$id", "$schema", "title", "required"} {
		delete(s, k)
	}
	if props, ok := s["properties"].(map[string]any); ok {
		delete(props, "apiVersion")
		delete(props, "kind")
	}
	return s, nil
}

// adjustScalar writes the types parsed from one YAML scalar (Size, ...)
// as a string or integer matching their pattern.
func adjustScalar(t reflect.Type, def reflect.Value, s map[string]any) map[string]any {
	if t == reflect.TypeOf(Files{}) {
		return map[string]any{"type": []string{"string", "array"}, "items": map[string]any{"type": "string"}}
	}
	if !reflect.PointerTo(t).Implements(scalarType) {
		return s
	}
	s = map[string]any{
		"type":    []string{"string", "integer"},
		"pattern": reflect.New(t).Interface().(scalar).pattern(),
	}
	if def.IsValid() && !def.IsZero() {
		s["default"] = fmt.Sprint(def.Interface())
	}
	return s
}
