// Package errclass is the one error taxonomy behind basalt's exit codes.
// An error is invalid input (the spec, a flag, a file the user gave: exit
// 2), a missing dependency (a host tool, or an input that --offline needs
// and the cache lacks: exit 3), or else a failure (I/O, network, a tool that
// ran and failed: exit 1). Libraries mark errors where they know the class;
// the marks survive %w wrapping (errors.Is), and only cmd/ turns them into
// exit codes (Code).
package errclass

import (
	"errors"
	"fmt"
)

// The classes, for errors.Is.
var (
	ErrInvalid = errors.New("invalid input")
	ErrMissing = errors.New("missing dependency")
)

// Exit codes.
const (
	ExitFailure = 1
	ExitInvalid = 2
	ExitMissing = 3
)

// Invalidf formats an error that matches ErrInvalid: "invalid input: ...".
func Invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Invalid marks err as invalid input, keeping its message (nil stays nil).
func Invalid(err error) error { return mark(err, ErrInvalid) }

// Missing marks err as a missing dependency, keeping its message.
func Missing(err error) error { return mark(err, ErrMissing) }

func mark(err, class error) error {
	if err == nil {
		return nil
	}
	return &classed{err, class}
}

// classed is an error with a class: its message is the error's.
type classed struct {
	error
	class error
}

func (e *classed) Is(target error) bool { return target == e.class }
func (e *classed) Unwrap() error        { return e.error }

// Code is the exit code for err: 0 for nil. Invalid input wins over a
// missing dependency when an error carries both.
func Code(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrInvalid):
		return ExitInvalid
	case errors.Is(err, ErrMissing):
		return ExitMissing
	default:
		return ExitFailure
	}
}
