package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/basaltos/basalt/internal/testutil"
)

// TestMain lets a test run the CLI as a child process (BASALT_TEST_CLI=1:
// the test binary is basalt), for what only a real process shows: signals.
func TestMain(m *testing.M) {
	if os.Getenv("BASALT_TEST_CLI") == "1" {
		os.Exit(Run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// TestBuildBrokenPipe: `basalt build -v 2>&1 | tee log` whose reader goes
// away mid-build (Ctrl-C kills tee too) once killed basalt by SIGPIPE and
// left .basalt-build-*/ in -o. Now the build stops, cleans up and exits.
func TestBuildBrokenPipe(t *testing.T) {
	k, _ := filepath.Abs("../../../.cache/testkernel/amd64")
	const efi = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
	testutil.NeedFile(t, filepath.Join(k, "vmlinuz"), "run `bash scripts/testkernel.sh amd64 .cache/testkernel/amd64`")
	testutil.NeedFile(t, efi, "apt-get install systemd-boot-efi")
	dir := t.TempDir()
	spec := filepath.Join(dir, "basalt.yaml")
	os.WriteFile(spec, []byte(fmt.Sprintf("apiVersion: basalt.dev/v1alpha1\nkind: Image\nname: pipe\nversion: 1.0.0\nboards: [qemu-x86_64]\n"+
		"kernel:\n  qemu-x86_64: {vmlinuz: %s/vmlinuz, modules: %s/lib/modules}\nbootloader:\n  qemu-x86_64: {file: %s}\n", k, k, efi)), 0o644)
	out := filepath.Join(dir, "out")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "build", "-v", "-f", spec, "-o", out)
	cmd.Env = append(os.Environ(), "BASALT_TEST_CLI=1", "BASALT_CACHE_DIR="+filepath.Join(dir, "cache"))
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	// The reader goes away after the first step line.
	buf := make([]byte, 4096)
	n, _ := r.Read(buf)
	r.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatal("basalt build did not stop after its output pipe broke")
	}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		t.Errorf("basalt was killed by %v after %q; want a clean exit", ws.Signal(), buf[:n])
	}
	ents, _ := os.ReadDir(out)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".basalt-build-") {
			t.Errorf("left %s in -o", e.Name())
		}
	}
	if err == nil && len(ents) == 0 {
		t.Error("build exited 0 but wrote no image")
	}
}
