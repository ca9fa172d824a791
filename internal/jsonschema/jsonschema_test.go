package jsonschema

import (
	"encoding/json"
	"reflect"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type inner struct {
	Name string `yaml:"name"`
	// Port is a TCP port.
	Port uint16 `yaml:"port,omitempty"`
}

type outer struct {
	Mode    string           `yaml:"mode,omitempty" enum:"a,b" desc:"the mode"`
	Count   *int             `yaml:"count,omitempty"`
	Ratio   float64          `yaml:"ratio,omitempty"`
	On      bool             `yaml:"on,omitempty"`
	Tags    map[string]inner `yaml:"tags,omitempty"`
	List    []inner          `yaml:"list,omitempty"`
	Must    string           `yaml:"must,omitempty" required:"true"`
	Skipped string           `yaml:"-"`
	inner   `yaml:",inline"`
}

const src = `package x

type inner struct {
	Name string
	// Port is a TCP port,
	// one line.
	Port uint16
}
`

func TestGenerator(t *testing.T) {
	docs, err := FieldDocs([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]string{"inner.Port": "Port is a TCP port, one line."}, docs); d != "" {
		t.Fatalf("FieldDocs (-want +got):\n%s", d)
	}
	g := Generator{
		RequiredUnlessOmitempty: true,
		Describe: func(owner reflect.Type, f reflect.StructField) string {
			if d := f.Tag.Get("desc"); d != "" {
				return d
			}
			return docs[owner.Name()+"."+f.Name]
		},
		Adjust: func(t reflect.Type, _ reflect.Value, s map[string]any) map[string]any {
			if t == reflect.TypeOf(inner{}) {
				return map[string]any{"anyOf": []any{s, map[string]any{"type": "string"}}}
			}
			return s
		},
	}
	b, err := Document(g.Schema(reflect.TypeOf(outer{}), reflect.ValueOf(outer{Mode: "a"})), "https://example/x.json", "x")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	innerS := map[string]any{"anyOf": []any{map[string]any{
		"type": "object", "additionalProperties": false, "required": []any{"name"},
		"properties": map[string]any{
			"name": map[string]any{"type": "string"},
			"port": map[string]any{"type": "integer", "minimum": 0.0, "maximum": 65535.0, "description": "Port is a TCP port, one line."},
		},
	}, map[string]any{"type": "string"}}}
	want := map[string]any{
		"$schema": Draft, "$id": "https://example/x.json", "title": "x",
		"type": "object", "additionalProperties": false, "required": []any{"must", "name"},
		"properties": map[string]any{
			"mode":  map[string]any{"type": "string", "default": "a", "enum": []any{"a", "b"}, "description": "the mode"},
			"count": map[string]any{"type": "integer"},
			"ratio": map[string]any{"type": "number"},
			"on":    map[string]any{"type": "boolean"},
			"tags":  map[string]any{"type": "object", "additionalProperties": innerS},
			"list":  map[string]any{"type": "array", "items": innerS},
			"must":  map[string]any{"type": "string"},
			"name":  map[string]any{"type": "string"},
			"port":  map[string]any{"type": "integer", "minimum": 0.0, "maximum": 65535.0, "description": "Port is a TCP port, one line."},
		},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("schema (-want +got):\n%s", d)
	}

	for _, tc := range []struct {
		name string
		v    any
		want []string
	}{
		{"valid", map[string]any{"must": "x", "name": "n", "mode": "b", "list": []any{"short", map[string]any{"name": "m", "port": 22}}}, nil},
		{"invalid", map[string]any{"mode": "c", "on": "yes", "extra": 1, "tags": map[string]any{"t": map[string]any{"port": 1}}},
			[]string{".: missing required \"must\"", ".: missing required \"name\"", ".extra: not allowed", ".mode: c not in enum [a b]", ".on: want boolean, got string", ".tags.t: missing required \"name\""}},
	} {
		got := Check(got, tc.v, "")
		sort.Strings(got)
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("Check %s (-want +got):\n%s", tc.name, d)
		}
	}
}
