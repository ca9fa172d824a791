// Package initbin provides the device binary (cmd/basalt-init) for each
// architecture. `make` cross-compiles it into bin/ before building basalt,
// which embeds it, so building an image needs no Go toolchain.
//
// A basalt built without them (plain `go build` or `go test`) compiles the
// device binary from this source tree on first use instead, when a Go
// toolchain and the source are there, and says so otherwise.
package initbin

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/basaltos/basalt/boards"
)

//go:embed bin
var embedded embed.FS

// FileName returns the name of the device binary for arch in bin/.
func FileName(arch boards.Arch) string { return "basalt-init-" + string(arch) }

var (
	mu    sync.Mutex
	built = map[boards.Arch][]byte{}
)

// Get returns the device binary for arch.
func Get(arch boards.Arch) ([]byte, error) {
	if b, err := fs.ReadFile(embedded, "bin/"+FileName(arch)); err == nil {
		return b, nil
	}
	mu.Lock()
	defer mu.Unlock()
	if b, ok := built[arch]; ok {
		return b, nil
	}
	b, err := compile(arch)
	if err != nil {
		return nil, fmt.Errorf("device binary for %s: not embedded in this basalt (build it with `make`), and compiling it failed: %w", arch, err)
	}
	built[arch] = b
	return b, nil
}

// compile builds cmd/basalt-init from the source tree this package was
// compiled from (development builds and tests).
func compile(arch boards.Arch) ([]byte, error) {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return nil, errors.New("source tree unknown")
	}
	root := filepath.Join(filepath.Dir(self), "..", "..")
	if _, err := os.Stat(filepath.Join(root, "cmd", "basalt-init")); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "basalt-init-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "basalt-init")
	goarch, goarm := arch.GOARCH()
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", out, "./cmd/basalt-init")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOARM="+goarm)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %w\n%s", err, msg)
	}
	return os.ReadFile(out)
}
