// Package testutil holds helpers shared by basalt's tests.
package testutil

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// NeedTool returns the path of a host tool a test checks its output with
// (unsquashfs, sgdisk, fsck.vfat, e2fsck, qemu-system-*). Where the tool is
// missing the test fails under CI (CI=true: `make test` installs the tools,
// so a missing one is a broken setup) and is skipped elsewhere.
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if _, err := os.Stat(dir + "/" + name); err == nil {
			return dir + "/" + name
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found: `make test` installs it (see Makefile: deps)", name)
	}
	t.Skipf("%s not found; run `make deps` to install the host tools the checks use", name)
	return ""
}

// NeedFile checks that a test input prepared outside the test exists (a
// kernel unpacked by scripts/testkernel.sh, a host EFI binary). Like
// NeedTool it fails under CI, where `make test` prepares every input, and
// skips elsewhere with the hint on how to get it.
func NeedFile(t testing.TB, path, hint string) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s missing: %s", path, hint)
	}
	t.Skipf("%s missing: %s", path, hint)
}

// OSOnly returns a spec (such as spec.DefaultYAML(), a k3s server) without
// its top-level orchestrator line, so it builds an OS-only image: for
// tests that boot or inspect the OS and would otherwise need k3s. Callers
// may append their own orchestrator: line.
func OSOnly(y []byte) string {
	var out []string
	for _, l := range strings.SplitAfter(string(y), "\n") {
		if !strings.HasPrefix(l, "orchestrator:") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}
