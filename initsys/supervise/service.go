// Package supervise runs the device's services: each in its own process
// group, output to the console with a [name] prefix and to a rotated log,
// restarted by policy with exponential backoff, started in order (waiting for
// readiness) and stopped in reverse order (SIGTERM to the group, a grace
// period, then SIGKILL to the group).
package supervise

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/basaltos/basalt/initsys/reaper"
)

// Restart is a service's restart policy.
type Restart int

const (
	// Always restarts the service whenever it exits.
	Always Restart = iota
	// OnFailure restarts it only when it exits non-zero or by a signal.
	OnFailure
	// Once runs it once and never restarts it.
	Once
)

func (r Restart) String() string {
	switch r {
	case Always:
		return "always"
	case OnFailure:
		return "on-failure"
	case Once:
		return "once"
	}
	return fmt.Sprintf("Restart(%d)", int(r))
}

// ParseRestart reads "always", "on-failure" or "once".
func ParseRestart(s string) (Restart, error) {
	for _, r := range []Restart{Always, OnFailure, Once} {
		if r.String() == s {
			return r, nil
		}
	}
	return 0, fmt.Errorf("restart policy %q: want always, on-failure or once", s)
}

// Service describes one supervised program.
type Service struct {
	Name    string
	Path    string
	Args    []string
	Env     []string
	Restart Restart
	// Ready, when set, is polled after the start until it returns nil; the
	// next service starts only then (or after ReadyTimeout).
	Ready        func(ctx context.Context) error
	ReadyTimeout time.Duration
	// Check, when set, runs before each start; an error counts as a
	// failed start (reported, then the backoff), so a service whose
	// precondition is missing waits for it without a hot loop.
	Check func() error
}

// ExecCheck is a readiness check that runs a command; exit 0 means ready.
func ExecCheck(path string, args ...string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		return reaper.Run(exec.CommandContext(ctx, path, args...))
	}
}

// FileCheck is a readiness check that waits for a file to exist.
func FileCheck(path string) func(ctx context.Context) error {
	return func(context.Context) error {
		_, err := os.Stat(path)
		return err
	}
}

// Backoff is the restart delay: Min, doubled after each consecutive exit,
// at most Max. A run that lasted longer than Reset starts a new streak
// (Reset 0: never).
type Backoff struct {
	Min, Max, Reset time.Duration
}

// Delay returns the delay before restart number n (1-based) of a streak.
func (b Backoff) Delay(n int) time.Duration {
	d := b.Min
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}
