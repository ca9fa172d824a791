// Package sock is PID 1's unix sockets (status, update): one place that
// makes the socket's directory, replaces a socket left by an earlier run
// and closes the listener when the init's context ends.
package sock

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// Listen listens on the unix socket path until ctx ends.
func Listen(ctx context.Context, path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	context.AfterFunc(ctx, func() { l.Close() })
	return l, nil
}
