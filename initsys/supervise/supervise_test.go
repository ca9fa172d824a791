package supervise

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/basaltos/basalt/initsys/say"
)

// TestMain turns the test binary into a fake service when BASALT_HELPER is set.
func TestMain(m *testing.M) {
	if mode := os.Getenv("BASALT_HELPER"); mode != "" {
		os.Exit(helper(mode))
	}
	os.Exit(m.Run())
}

func helper(mode string) int {
	switch mode {
	case "crash":
		fmt.Println("crashing")
		return 3
	case "ok":
		fmt.Println("done")
		return 0
	case "ok-sleep": // sleeps until SIGTERM
		fmt.Println("sleeping")
		for {
			time.Sleep(time.Hour)
		}
	case "stubborn": // ignores SIGTERM, sleeps
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("sleeping")
		for {
			time.Sleep(time.Hour) // not select{}: the runtime kills an all-blocked process
		}
	case "spawn": // starts a stubborn child in its group, then sleeps ignoring TERM
		signal.Ignore(syscall.SIGTERM)
		c := exec.Command(os.Args[0])
		c.Env = append(os.Environ(), "BASALT_HELPER=stubborn")
		if err := c.Start(); err != nil {
			return 1
		}
		fmt.Printf("child %d\n", c.Process.Pid)
		for {
			time.Sleep(time.Hour) // not select{}: the runtime kills an all-blocked process
		}
	}
	return 2
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// delays records the backoff delays the supervisor asks for and returns at once.
type delays struct {
	mu sync.Mutex
	d  []time.Duration
}

func (r *delays) wait(ctx context.Context, d time.Duration) error {
	if d >= 10*time.Millisecond { // readiness polls use 100ms; backoff here < 100ms or >= 1s
		r.mu.Lock()
		r.d = append(r.d, d)
		r.mu.Unlock()
	}
	return ctx.Err()
}

func (r *delays) get() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.d...)
}

func helperService(name, mode string, restart Restart) Service {
	return Service{Name: name, Path: os.Args[0], Env: append(os.Environ(), "BASALT_HELPER="+mode), Restart: restart}
}

// waitFor polls cond until it holds or the test's deadline nears.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	var got []time.Duration
	for n := 1; n <= 6; n++ {
		got = append(got, b.Delay(n))
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("delays (-want +got):\n%s", diff)
	}
}

func TestRestartPolicies(t *testing.T) {
	tests := []struct {
		name         string
		svc          Service
		wantRestarts int // at least, for restarting services; exactly for others
		restarting   bool
		wantPhase    string
	}{
		{"crash always restarts with growing backoff", helperService("crash", "crash", Always), 5, true, ""},
		{"crash on-failure restarts", helperService("crash", "crash", OnFailure), 3, true, ""},
		{"ok on-failure stays exited", helperService("ok", "ok", OnFailure), 0, false, "exited"},
		{"crash once is not restarted", helperService("once", "crash", Once), 0, false, "exited"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var console syncBuf
			t.Cleanup(say.Use(say.New(&console, "")))
			rec := &delays{}
			dir := t.TempDir()
			s := New(Options{LogDir: dir, LogMaxBytes: 1 << 20, LogKeep: 2,
				Backoff: Backoff{Min: 10 * time.Millisecond, Max: 80 * time.Millisecond}, Grace: time.Second, Wait: rec.wait})
			if err := s.Start([]Service{tc.svc}); err != nil {
				t.Fatal(err)
			}
			if tc.restarting {
				waitFor(t, "restarts", func() bool { return s.Status()[0].Restarts >= tc.wantRestarts })
			} else {
				waitFor(t, tc.wantPhase, func() bool { return s.Status()[0].Phase == tc.wantPhase })
			}
			s.Stop()
			st := s.Status()[0]
			if !tc.restarting && st.Restarts != 0 {
				t.Errorf("restarts = %d, want 0", st.Restarts)
			}
			if tc.restarting {
				got := rec.get()[:tc.wantRestarts]
				want := []time.Duration{10, 20, 40, 80, 80}[:tc.wantRestarts]
				for i := range want {
					want[i] *= time.Millisecond
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("backoff delays (-want +got):\n%s", diff)
				}
			}
			if !strings.Contains(console.String(), "["+tc.svc.Name+"] ") {
				t.Errorf("console has no [%s] lines:\n%s", tc.svc.Name, console.String())
			}
			log, err := os.ReadFile(filepath.Join(dir, tc.svc.Name+".log"))
			if err != nil || len(log) == 0 {
				t.Errorf("service log: %q, %v", log, err)
			}
		})
	}
}

// dead reports whether pid is gone or a zombie.
func dead(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
}

func TestStopKillsGroup(t *testing.T) {
	var console syncBuf
	t.Cleanup(say.Use(say.New(&console, "")))
	s := New(Options{Backoff: Backoff{Min: 10 * time.Millisecond, Max: time.Second}, Grace: 200 * time.Millisecond})
	if err := s.Start([]Service{helperService("spawner", "spawn", Always), helperService("stubborn", "stubborn", Always)}); err != nil {
		t.Fatal(err)
	}
	var child int
	waitFor(t, "grandchild pid", func() bool {
		for _, l := range strings.Split(console.String(), "\n") {
			if v, ok := strings.CutPrefix(l, "[spawner] child "); ok {
				child, _ = strconv.Atoi(v)
			}
		}
		return child != 0 && strings.Contains(console.String(), "[stubborn] sleeping")
	})
	pids := []int{s.Status()[0].PID, s.Status()[1].PID, child}
	s.Stop()
	for _, pid := range pids { // SIGKILL is delivered asynchronously: wait for it
		waitFor(t, fmt.Sprintf("pid %d to die after Stop", pid), func() bool { return dead(pid) })
	}
	for _, st := range s.Status() {
		if st.Phase != "stopped" {
			t.Errorf("%s phase %q, want stopped", st.Name, st.Phase)
		}
	}
	out := console.String()
	i, j := strings.Index(out, "[stubborn] did not stop"), strings.Index(out, "[spawner] did not stop")
	if i < 0 || j < 0 || i > j {
		t.Errorf("want reverse-order stop with SIGKILL after grace (stubborn, then spawner):\n%s", out)
	}
}

func TestReadinessOrdersStart(t *testing.T) {
	var console syncBuf
	t.Cleanup(say.Use(say.New(&console, "")))
	dir := t.TempDir()
	flag := filepath.Join(dir, "ready")
	first := helperService("first", "stubborn", Always)
	first.Ready = func(context.Context) error {
		if _, err := os.Stat(flag); err != nil {
			os.WriteFile(flag, nil, 0o644) // ready on the second poll
			return err
		}
		return nil
	}
	s := New(Options{Backoff: Backoff{Min: 10 * time.Millisecond, Max: time.Second}, Grace: 100 * time.Millisecond})
	if err := s.Start([]Service{first, helperService("second", "stubborn", Always)}); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	waitFor(t, "second started", func() bool { return strings.Contains(console.String(), "[second] started") })
	out := console.String()
	if i, j := strings.Index(out, "[first] ready"), strings.Index(out, "[second] started"); i < 0 || j < 0 || i > j {
		t.Errorf("second started before first was ready:\n%s", out)
	}
}

func TestRotatingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "svc.log")
	r, err := OpenRotating(p, 10, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"aaaaaa\n", "bbbbbb\n", "cccccc\n", "dddddd\n"} {
		if _, err := r.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	got := map[string]string{}
	for _, n := range []string{"svc.log", "svc.log.1", "svc.log.2", "svc.log.3"} {
		if b, err := os.ReadFile(filepath.Join(filepath.Dir(p), n)); err == nil {
			got[n] = string(b)
		}
	}
	want := map[string]string{"svc.log": "dddddd\n", "svc.log.1": "cccccc\n", "svc.log.2": "bbbbbb\n"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

func TestParseRestart(t *testing.T) {
	for _, r := range []Restart{Always, OnFailure, Once} {
		got, err := ParseRestart(r.String())
		if err != nil || got != r {
			t.Errorf("ParseRestart(%q) = %v, %v", r, got, err)
		}
	}
	if _, err := ParseRestart("sometimes"); err == nil {
		t.Error("ParseRestart(sometimes) succeeded")
	}
}

// TestCheckFailsStartWithBackoff: a failing Check is a failed start, with
// the backoff and the reason in the console and the state; once it passes
// the service runs.
func TestCheckFailsStartWithBackoff(t *testing.T) {
	var console syncBuf
	t.Cleanup(say.Use(say.New(&console, "")))
	rec := &delays{}
	var mu sync.Mutex
	calls := 0
	svc := helperService("gated", "stubborn", Always)
	svc.Check = func() error {
		mu.Lock()
		defer mu.Unlock()
		if calls++; calls <= 3 {
			return fmt.Errorf("no route yet")
		}
		return nil
	}
	s := New(Options{Backoff: Backoff{Min: 10 * time.Millisecond, Max: 80 * time.Millisecond}, Grace: 200 * time.Millisecond, Wait: rec.wait})
	if err := s.Start([]Service{svc}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "running", func() bool { return s.Status()[0].PID != 0 })
	s.Stop()
	if diff := cmp.Diff([]time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond}, rec.get()); diff != "" {
		t.Errorf("backoff (-want +got):\n%s", diff)
	}
	if !strings.Contains(console.String(), "[gated] start failed: no route yet") {
		t.Errorf("console lacks the check's reason:\n%s", console.String())
	}
}

// TestRestartService: Restart stops the running process; the policy starts
// a new one.
func TestRestartService(t *testing.T) {
	var console syncBuf
	t.Cleanup(say.Use(say.New(&console, "")))
	s := New(Options{Backoff: Backoff{Min: 10 * time.Millisecond, Max: 80 * time.Millisecond}, Grace: 200 * time.Millisecond})
	if err := s.Start([]Service{helperService("sleeper", "ok-sleep", Always)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "running", func() bool { return s.Status()[0].PID != 0 })
	first := s.Status()[0].PID
	if !s.Restart("sleeper") {
		t.Fatal("Restart: not running")
	}
	waitFor(t, "a new pid", func() bool { p := s.Status()[0].PID; return p != 0 && p != first })
	if s.Restart("nobody") {
		t.Error("Restart of an unknown service reported true")
	}
	s.Stop()
}
