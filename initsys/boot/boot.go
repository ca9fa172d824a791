// Package boot runs stage 2's boot sequence: a list of named steps, each
// essential or optional, run top to bottom, each timed and reported on the
// console. Errors come back to one place, Run's caller, which hands an
// essential failure to a Policy (reboot after a countdown, or an emergency
// shell with basalt.debug=1).
package boot

import (
	"fmt"
	"io"
	"time"
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

// Run runs steps in order, printing "basalt: step NAME ok (12 ms)" or
// "basalt: step NAME failed (12 ms): reason" to console. It stops at the
// first essential step that fails and returns a *StepError; a panic inside a
// step is turned into that step's error. now is the clock (time.Now).
func Run(console io.Writer, now func() time.Time, steps []Step) ([]Result, error) {
	var results []Result
	for _, s := range steps {
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
			fmt.Fprintf(console, "basalt: step %s failed (%d ms, %s): %v\n", s.Name, ms, kind, err)
		} else {
			fmt.Fprintf(console, "basalt: step %s ok (%d ms)\n", s.Name, ms)
		}
		results = append(results, r)
		if err != nil && s.Essential {
			return results, &StepError{Step: s.Name, Err: err}
		}
	}
	return results, nil
}

func safeRun(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return f()
}
