package spec

import (
	"fmt"
	"reflect"

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
	g := jsonschema.Generator{Adjust: adjustScalar}
	s := g.Schema(reflect.TypeOf(Spec{}), reflect.ValueOf(defaults))
	return jsonschema.Document(s, SchemaID, "basalt image spec ("+APIVersion+", kind "+Kind+")")
}

// adjustScalar writes the types parsed from one YAML scalar (Size, ...)
// as a string or integer matching their pattern.
func adjustScalar(t reflect.Type, def reflect.Value, s map[string]any) map[string]any {
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
