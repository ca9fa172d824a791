package errclass

import (
	"errors"
	"fmt"
	"os/exec"
	"testing"
)

func TestCode(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		name    string
		err     error
		code    int
		message string
	}{
		{"nil", nil, 0, ""},
		{"plain", base, ExitFailure, "boom"},
		{"invalidf", Invalidf("--net %q: want none or user", "x"), ExitInvalid, `invalid input: --net "x": want none or user`},
		{"marked keeps the message", fmt.Errorf("spec: %w", Invalid(base)), ExitInvalid, "spec: boom"},
		{"missing through %w", fmt.Errorf("qemu: %w", Missing(exec.ErrNotFound)), ExitMissing, "qemu: executable file not found in $PATH"},
		{"invalid wins", Invalid(Missing(base)), ExitInvalid, "boom"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Code(tc.err); got != tc.code {
				t.Errorf("Code = %d, want %d", got, tc.code)
			}
			if tc.err != nil && tc.err.Error() != tc.message {
				t.Errorf("message %q, want %q", tc.err.Error(), tc.message)
			}
		})
	}
	if !errors.Is(Missing(exec.ErrNotFound), exec.ErrNotFound) || Invalid(nil) != nil {
		t.Error("a mark hides the error it marks, or marks nil")
	}
}
