package spec

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
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
	s := schemaOf(reflect.TypeOf(Spec{}), reflect.ValueOf(defaults))
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["$id"] = SchemaID
	s["title"] = "basalt image spec (" + APIVersion + ", kind " + Kind + ")"
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	return append(b, '\n'), nil
}

// schemaOf returns the schema of t; def holds t's default value (or is the
// zero reflect.Value).
func schemaOf(t reflect.Type, def reflect.Value) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
		def = reflect.Value{}
	}
	if reflect.PointerTo(t).Implements(scalarType) {
		s := map[string]any{
			"type":    []string{"string", "integer"},
			"pattern": reflect.New(t).Interface().(scalar).pattern(),
		}
		if def.IsValid() && !def.IsZero() {
			s["default"] = fmt.Sprint(def.Interface())
		}
		return s
	}
	switch t.Kind() {
	case reflect.Struct:
		props := map[string]any{}
		var required []string
		for _, f := range reflect.VisibleFields(t) {
			name := yamlName(f)
			if name == "" {
				continue
			}
			var fdef reflect.Value
			if def.IsValid() {
				fdef = def.FieldByIndex(f.Index)
			}
			p := schemaOf(f.Type, fdef)
			if d := f.Tag.Get("desc"); d != "" {
				p["description"] = d
			}
			if e := f.Tag.Get("enum"); e != "" {
				p["enum"] = strings.Split(e, ",")
			}
			props[name] = p
			if f.Tag.Get("required") == "true" {
				required = append(required, name)
			}
		}
		s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if len(required) > 0 {
			s["required"] = required
		}
		return s
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem(), reflect.Value{})}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem(), reflect.Value{})}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Uint32:
		return map[string]any{"type": "integer", "minimum": 0, "maximum": uint32(1<<32 - 1)}
	}
	s := map[string]any{"type": "string"}
	if def.IsValid() && !def.IsZero() {
		s["default"] = def.Interface()
	}
	return s
}
