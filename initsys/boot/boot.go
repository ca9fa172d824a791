// Package boot runs PID 1's sequences (stage 1, stage 2's boot, shutdown):
// lists of named steps, each essential or optional, run top to bottom, each
// timed and reported. Errors come back to one place, Run's caller, which
// hands an essential failure to a Policy (reboot after a countdown, or an
// emergency shell with basalt.debug=1).
package boot

import (
	"fmt"
	"time"

	"github.com/basaltos/basalt/initsys/say"
)

// Step is one named boot step.
type Step struct {
	Name string
	// Essential steps stop the boot when they fail; optional ones are
	// logged and the boot goes on.
	Essential bool
	Run       func() error
}

// Result records how one step went.
type Result struct {
	Name      string        `json:"name"`
	Essential bool          `json:"essential"`
	Duration  time.Duration `json:"duration_ns"`
	Err       string        `json:"error,omitempty"`
}

// StepError is returned by Run when an essential step fails.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return fmt.Sprintf("essential step %s: %v", e.Step, e.Err) }
func (e *StepError) Unwrap() error { return e.Err }

// Sequence is a named list of steps run top to bottom by one runner with
// one failure rule: stage 1, stage 2's boot, shutdown, and whatever else
// PID 1 does in steps (an update's apply, arm-trial and commit).
type Sequence struct {
	// Name prefixes the sequence's lines: "basalt: stage1: step NAME ok".
	// Stage 2's boot sequence has none: its "basalt: step NAME ok (12 ms)"
	// lines are console markers tests and users wait for.
	Name  string
	Steps []Step
	// Now is the clock (nil: time.Now); tests pass a fake.
	Now func() time.Time
}

// Run runs the steps in order, saying "step NAME ok (12 ms)" or
// "step NAME failed (12 ms, essential): reason" for each. It stops at the
// first essential step that fails and returns a *StepError; a panic inside a
// step is turned into that step's error. Optional failures are in the
// results only.
func (q Sequence) Run() ([]Result, error) {
	now := q.Now
	if now == nil {
		now = time.Now
	}
	var results []Result
	for _, s := range q.Steps {
		start := now()
		err := safeRun(s.Run)
		d := now().Sub(start)
		r := Result{Name: s.Name, Essential: s.Essential, Duration: d}
		ms := d.Milliseconds()
		if err != nil {
			r.Err = err.Error()
			kind := "optional"
			if s.Essential {
				kind = "essential"
			}
			q.say("step %s failed (%d ms, %s): %v", s.Name, ms, kind, err)
		} else {
			q.say("step %s ok (%d ms)", s.Name, ms)
		}
		results = append(results, r)
		if err != nil && s.Essential {
			return results, &StepError{Step: s.Name, Err: err}
		}
	}
	return results, nil
}

func (q Sequence) say(format string, args ...any) { sayIn(q.Name, format, args...) }

// sayIn says a line of the named sequence.
func sayIn(name, format string, args ...any) {
	if name != "" {
		format = name + ": " + format
	}
	say.Printf(format, args...)
}

// Hang blocks forever without exiting (PID 1 exiting panics the kernel). A
// sleeping loop, not select{}: the Go runtime kills a process whose
// goroutines all block forever.
func Hang() {
	for {
		time.Sleep(time.Hour)
	}
}

func safeRun(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return f()
}
