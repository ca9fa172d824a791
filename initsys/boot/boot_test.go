package boot

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/basaltos/basalt/initsys/say"
)

// fakeClock advances 5 ms per call.
func fakeClock() func() time.Time {
	t := time.Unix(0, 0)
	return func() time.Time { t = t.Add(5 * time.Millisecond); return t }
}

func TestRun(t *testing.T) {
	boom := errors.New("boom")
	ok := func() error { return nil }
	fail := func() error { return boom }
	tests := []struct {
		name      string
		steps     []Step
		wantNames []string
		wantOut   string
		wantErr   string
	}{
		{
			name:      "all ok",
			steps:     []Step{{"a", true, ok}, {"b", false, ok}},
			wantNames: []string{"a", "b"},
			wantOut:   "basalt: step a ok (5 ms)\nbasalt: step b ok (5 ms)\n",
		},
		{
			name:      "optional failure goes on",
			steps:     []Step{{"a", false, fail}, {"b", true, ok}},
			wantNames: []string{"a", "b"},
			wantOut:   "basalt: step a failed (5 ms, optional): boom\nbasalt: step b ok (5 ms)\n",
		},
		{
			name:      "essential failure stops",
			steps:     []Step{{"a", true, fail}, {"b", true, ok}},
			wantNames: []string{"a"},
			wantOut:   "basalt: step a failed (5 ms, essential): boom\n",
			wantErr:   "essential step a: boom",
		},
		{
			name:      "panic is an error",
			steps:     []Step{{"p", true, func() error { panic("oops") }}},
			wantNames: []string{"p"},
			wantOut:   "basalt: step p failed (5 ms, essential): panic: oops\n",
			wantErr:   "essential step p: panic: oops",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			defer say.Use(say.New(&out, ""))()
			res, err := Sequence{Steps: tc.steps, Now: fakeClock()}.Run()
			var names []string
			for _, r := range res {
				names = append(names, r.Name)
				if r.Duration != 5*time.Millisecond {
					t.Errorf("step %s duration %v, want 5ms", r.Name, r.Duration)
				}
			}
			if diff := cmp.Diff(tc.wantNames, names); diff != "" {
				t.Errorf("steps run (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantOut, out.String()); diff != "" {
				t.Errorf("console (-want +got):\n%s", diff)
			}
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
				var se *StepError
				if !errors.As(err, &se) {
					t.Errorf("error %T is not a *StepError", err)
				}
			}
			if gotErr != tc.wantErr {
				t.Errorf("error %q, want %q", gotErr, tc.wantErr)
			}
		})
	}
}

func TestPolicy(t *testing.T) {
	tests := []struct {
		name       string
		debug      bool
		shellErrs  []error // returned by successive Shell calls; then ErrNoShell
		wantEvents []string
	}{
		{
			name:       "reboot after countdown",
			wantEvents: []string{"sleep 1s", "sleep 1s", "sleep 500ms", "reboot"},
		},
		{
			name:       "debug shell restarts, then hang without shell",
			debug:      true,
			shellErrs:  []error{nil},
			wantEvents: []string{"shell", "sleep 1s", "shell", "hang"},
		},
		{
			name:       "debug without shell hangs",
			debug:      true,
			wantEvents: []string{"shell", "hang"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var events []string
			var out strings.Builder
			defer say.Use(say.New(&out, ""))()
			shells := tc.shellErrs
			p := Policy{
				Debug:     tc.debug,
				Countdown: 2500 * time.Millisecond,
				Sleep:     func(d time.Duration) { events = append(events, "sleep "+d.String()) },
				Reboot:    func() error { events = append(events, "reboot"); return errors.New("reboot refused") },
				Shell: func() error {
					events = append(events, "shell")
					if len(shells) == 0 {
						return ErrNoShell
					}
					err := shells[0]
					shells = shells[1:]
					return err
				},
				Hang: func() { events = append(events, "hang") },
			}
			err := p.Fail(errors.New("essential step mount-data: no partition basalt-data"))
			if err == nil {
				t.Error("Fail returned nil")
			}
			if diff := cmp.Diff(tc.wantEvents, events); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if !strings.Contains(out.String(), "basalt: boot failed: essential step mount-data: no partition basalt-data") {
				t.Errorf("console does not log the reason:\n%s", out.String())
			}
		})
	}
}

// TestNamedSequence: a named sequence (stage 1, shutdown) and its policy
// say their lines under the name.
func TestNamedSequence(t *testing.T) {
	var out strings.Builder
	defer say.Use(say.New(&out, ""))()
	_, err := Sequence{Name: "stage1", Now: fakeClock(), Steps: []Step{
		{"cmdline", true, func() error { return nil }},
		{"mount-root", true, func() error { return errors.New("no squashfs") }},
	}}.Run()
	p := Policy{Name: "stage1", Countdown: time.Second, Sleep: func(time.Duration) {}, Reboot: func() error { return nil }}
	p.Fail(err)
	want := "basalt: stage1: step cmdline ok (5 ms)\n" +
		"basalt: stage1: step mount-root failed (5 ms, essential): no squashfs\n" +
		"basalt: stage1: boot failed: essential step mount-root: no squashfs\n" +
		"basalt: stage1: rebooting in 1 s\nbasalt: stage1: rebooting\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("console (-want +got):\n%s", diff)
	}
}
