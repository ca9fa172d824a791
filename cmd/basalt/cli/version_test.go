package cli

import (
	"runtime"
	"strings"
	"testing"
)

// TestVersion: --version names the version, the commit and the Go version.
func TestVersion(t *testing.T) {
	Commit = "0123abc"
	defer func() { Commit = "" }()
	code, stdout, _ := runCLI("--version")
	want := "basalt dev (commit 0123abc, " + runtime.Version()
	if code != 0 || !strings.HasPrefix(stdout, want) {
		t.Errorf("basalt --version = %d %q, want %q...", code, stdout, want)
	}
	if _, stdout, _ := runCLI("--help"); !strings.Contains(stdout, "Examples:\n  basalt boards") || !strings.Contains(stdout, "basalt completion") {
		t.Errorf("basalt --help lacks examples or completion:\n%s", stdout)
	}
}
