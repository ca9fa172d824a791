package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/basaltos/basalt/internal/errclass"
)

// runCLI runs the command line and returns its exit code and outputs.
func runCLI(args ...string) (int, string, string) {
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	code := 0
	if err := root.Execute(); err != nil {
		errb.WriteString(err.Error())
		code = errclass.Code(err)
	}
	return code, out.String(), errb.String()
}

func TestValidateSchemaBuildExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: basalt.dev/v1alpha1\nkind: Image\nname: x\nversion: 1.0.0\nboards: [foo]\nextra: 1\n"), 0o644)
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		args    []string
		code    int
		wantOut string
	}{
		{[]string{"validate", "-f", "../../../examples/retail-store/basalt.yaml"}, 0, "valid"},
		{[]string{"validate"}, 0, "<default spec>: valid"},
		{[]string{"validate", "-f", bad}, 2, bad + ":6: .extra: unknown key"},
		{[]string{"validate", "-f", filepath.Join(dir, "missing.yaml")}, 2, "cannot read spec"},
		{[]string{"build", "-f", bad, "-o", out}, 2, ".extra: unknown key"},
		{[]string{"build", "--board", "rpi9", "-o", out}, 2, `unknown board "rpi9"`},
		{[]string{"build", "--format", "vhd", "-o", out}, 2, `format "vhd"`},
		{[]string{"build", "-o", bad}, 2, "is a file, not a directory"},
	} {
		code, stdout, stderr := runCLI(tc.args...)
		if code != tc.code || !strings.Contains(stdout+stderr, tc.wantOut) {
			t.Errorf("basalt %s = %d, %q %q; want %d and %q", strings.Join(tc.args, " "), code, stdout, stderr, tc.code, tc.wantOut)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("failed builds left %s: %v", out, err)
	}
	code, stdout, _ := runCLI("schema")
	var v map[string]any
	if code != 0 || json.Unmarshal([]byte(stdout), &v) != nil || v["$schema"] == nil {
		t.Errorf("basalt schema = %d, %.200q", code, stdout)
	}
}
