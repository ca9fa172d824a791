package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/basaltos/basalt/internal/jsonschema"
)

// TestSchema checks the testdata documents (which Parse accepts) against
// the generated schema, and that the schema catches what Parse rejects.
func TestSchema(t *testing.T) {
	raw, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	props := s["properties"].(map[string]any)
	if d := props["hostname"].(map[string]any)["description"]; d != "Hostname is the short host name (RFC 1123 label)." {
		t.Errorf("hostname description = %q", d)
	}
	files, _ := filepath.Glob("testdata/*.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := Parse(f, b); err != nil {
			continue // documents that Parse rejects say nothing here
		}
		var v map[string]any
		if err := yaml.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		if v["apiVersion"] == nil { // #cloud-config: same keys, no header
			v["apiVersion"], v["kind"] = APIVersion, Kind
		}
		delete(v, "packages") // unsupported cloud-init keys are warnings
		for _, p := range jsonschema.Check(s, v, "") {
			t.Errorf("%s: %s", f, p)
		}
	}
	bad := map[string]any{"kind": "Other", "users": []any{map[string]any{"shell": "/bin/sh"}}, "ntp": map[string]any{"servers": "x"}, "extra": 1}
	got := jsonschema.Check(s, bad, "")
	sort.Strings(got)
	want := []string{
		`.: missing required "apiVersion"`,
		`.extra: not allowed`,
		`.kind: Other not in enum [DeviceConfig]`,
		`.ntp.servers: want array, got string`,
		`.users[0]: missing required "name"`,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Check(bad) (-want +got):\n%s", d)
	}
}
