package supervise

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/basaltos/basalt/initsys/reaper"
	"github.com/basaltos/basalt/initsys/say"
)

// Options configure a Supervisor.
type Options struct {
	// LogDir gets NAME.log per service ("" = console only).
	LogDir      string
	LogMaxBytes int64
	LogKeep     int
	Backoff     Backoff
	// Grace is how long Stop waits after SIGTERM before SIGKILL.
	Grace time.Duration
	// Wait sleeps d or until ctx ends (nil: a timer). Tests record delays.
	Wait func(ctx context.Context, d time.Duration) error
	// Start is when the system started; event lines carry t=seconds since.
	Start time.Time
}

// State is a service's state as Status reports it.
type State struct {
	Name     string    `json:"name"`
	Restart  string    `json:"restart"`
	Phase    string    `json:"phase"` // starting, running, ready, backoff, exited, stopped, failed
	PID      int       `json:"pid,omitempty"`
	Restarts int       `json:"restarts"`
	LastExit string    `json:"last_exit,omitempty"`
	Since    time.Time `json:"since"`
}

// Supervisor runs services.
type Supervisor struct {
	opts Options
	ctx  context.Context
	stop context.CancelFunc

	mu   sync.Mutex
	svcs []*running
}

type running struct {
	svc   Service
	state State
	pgid  int
	done  chan struct{} // closed when the supervising goroutine ends
	log   *RotatingFile
}

// New returns a Supervisor.
func New(opts Options) *Supervisor {
	if opts.Wait == nil {
		opts.Wait = sleepCtx
	}
	if opts.Start.IsZero() {
		opts.Start = time.Now()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Supervisor{opts: opts, ctx: ctx, stop: cancel}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Supervisor) eventf(format string, args ...any) {
	t := time.Since(s.opts.Start).Seconds()
	say.Printf("t=%.3fs %s", t, fmt.Sprintf(format, args...))
}

// Start starts services in order. A service with a readiness check must be
// ready (or time out) before the next one starts. Errors (a log that cannot
// be opened, a readiness timeout) are collected; the rest still start.
func (s *Supervisor) Start(svcs []Service) error {
	var errs []error
	for _, svc := range svcs {
		r := &running{svc: svc, done: make(chan struct{})}
		r.state = State{Name: svc.Name, Restart: svc.Restart.String(), Phase: "starting", Since: time.Now()}
		if s.opts.LogDir != "" {
			lf, err := OpenRotating(filepath.Join(s.opts.LogDir, svc.Name+".log"), s.opts.LogMaxBytes, s.opts.LogKeep)
			if err != nil {
				errs = append(errs, fmt.Errorf("service %s: %w", svc.Name, err))
			} else {
				r.log = lf
			}
		}
		s.mu.Lock()
		s.svcs = append(s.svcs, r)
		s.mu.Unlock()
		go s.supervise(r)
		if svc.Ready != nil {
			if err := s.waitReady(r); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (s *Supervisor) waitReady(r *running) error {
	timeout := r.svc.ReadyTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	for {
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		err := r.svc.Ready(cctx)
		ccancel()
		if err == nil {
			s.setPhase(r, "ready")
			s.eventf("[%s] ready", r.svc.Name)
			return nil
		}
		if s.opts.Wait(ctx, 100*time.Millisecond) != nil {
			return fmt.Errorf("service %s: not ready after %v: %w", r.svc.Name, timeout, err)
		}
	}
}

func (s *Supervisor) setPhase(r *running, phase string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.state.Phase = phase
	r.state.Since = time.Now()
}

// supervise runs r until its policy or Stop says no more.
func (s *Supervisor) supervise(r *running) {
	defer close(r.done)
	streak := 0
	for {
		start := time.Now()
		err := s.runOnce(r)
		if s.ctx.Err() != nil {
			s.setPhase(r, "stopped")
			return
		}
		failed := err != nil
		if failed && errors.Is(err, errStart) {
			s.eventf("[%s] %v", r.svc.Name, err)
		}
		if r.svc.Restart == Once || (r.svc.Restart == OnFailure && !failed) {
			s.setPhase(r, "exited")
			return
		}
		if s.opts.Backoff.Reset > 0 && time.Since(start) > s.opts.Backoff.Reset {
			streak = 0
		}
		streak++
		d := s.opts.Backoff.Delay(streak)
		s.mu.Lock()
		r.state.Phase, r.state.Since = "backoff", time.Now()
		r.state.Restarts++
		n := r.state.Restarts
		s.mu.Unlock()
		s.eventf("[%s] restart #%d in %v", r.svc.Name, n, d)
		if s.opts.Wait(s.ctx, d) != nil {
			s.setPhase(r, "stopped")
			return
		}
	}
}

var errStart = errors.New("start failed")

// runOnce starts the process in its own process group, copies its output,
// and waits for it; the error is nil for exit 0.
func (s *Supervisor) runOnce(r *running) error {
	if r.svc.Check != nil {
		if err := r.svc.Check(); err != nil {
			s.mu.Lock()
			r.state.Phase, r.state.LastExit = "failed", err.Error()
			s.mu.Unlock()
			return fmt.Errorf("%w: %w", errStart, err)
		}
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("%w: pipe: %w", errStart, err)
	}
	cmd := exec.Command(r.svc.Path, r.svc.Args...)
	cmd.Env = r.svc.Env
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.mu.Lock()
	if s.ctx.Err() != nil { // Stop began: start nothing new
		s.mu.Unlock()
		pr.Close()
		pw.Close()
		return nil
	}
	err = cmd.Start()
	if err == nil {
		r.pgid = cmd.Process.Pid
		r.state.PID = cmd.Process.Pid
		if r.state.Phase != "ready" {
			r.state.Phase = "running"
		}
		r.state.Since = time.Now()
	}
	s.mu.Unlock()
	pw.Close()
	if err != nil {
		pr.Close()
		s.mu.Lock()
		r.state.Phase, r.state.LastExit = "failed", err.Error()
		s.mu.Unlock()
		return fmt.Errorf("%w: %w", errStart, err)
	}
	s.eventf("[%s] started pid %d", r.svc.Name, cmd.Process.Pid)
	copied := make(chan struct{})
	go func() {
		s.copyOutput(r, pr)
		close(copied)
	}()
	ws, werr := reaper.Wait(cmd)
	exitErr := reaper.StatusError(ws)
	if werr != nil {
		exitErr = werr
	}
	// Leftover group members may hold the pipe; the group is killed on
	// exit so that a restart starts clean.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-copied
	pr.Close()
	last := "exit status 0"
	if exitErr != nil {
		last = exitErr.Error()
	}
	s.mu.Lock()
	r.state.PID, r.state.LastExit = 0, last
	s.mu.Unlock()
	s.eventf("[%s] exited: %s", r.svc.Name, last)
	return exitErr
}

func (s *Supervisor) copyOutput(r *running, pr io.Reader) {
	br := bufio.NewReader(pr)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			if line[len(line)-1] != '\n' {
				line += "\n"
			}
			fmt.Fprintf(say.Console(), "[%s] %s", r.svc.Name, line)
			if r.log != nil {
				r.log.Write([]byte(line))
			}
		}
		if err != nil {
			return
		}
	}
}

// Stop stops every service in reverse start order: SIGTERM to its process
// group, up to Grace for it to exit, then SIGKILL to the group.
func (s *Supervisor) Stop() {
	s.mu.Lock()
	s.stop()
	svcs := append([]*running(nil), s.svcs...)
	s.mu.Unlock()
	for i := len(svcs) - 1; i >= 0; i-- {
		r := svcs[i]
		s.mu.Lock()
		pgid := r.pgid
		alive := r.state.PID != 0
		s.mu.Unlock()
		if alive {
			syscall.Kill(-pgid, syscall.SIGTERM)
			select {
			case <-r.done:
			case <-time.After(s.opts.Grace):
				s.eventf("[%s] did not stop within %v: SIGKILL to its group", r.svc.Name, s.opts.Grace)
				syscall.Kill(-pgid, syscall.SIGKILL)
				<-r.done
			}
		}
		<-r.done
		if r.log != nil {
			r.log.Close()
		}
	}
}

// Restart stops the named service's process group (SIGTERM): its restart
// policy and backoff start it again. It reports whether the service was
// running.
func (s *Supervisor) Restart(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.svcs {
		if r.svc.Name == name && r.state.PID != 0 {
			syscall.Kill(-r.pgid, syscall.SIGTERM)
			return true
		}
	}
	return false
}

// Status returns every service's state, in start order.
func (s *Supervisor) Status() []State {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]State, len(s.svcs))
	for i, r := range s.svcs {
		out[i] = r.state
	}
	return out
}
