// Package reaper reaps every child of PID 1, orphans included, and hands the
// exit status of the children we started to whoever waits for them.
//
// Without the reaper (tests, on-device commands) Wait falls back to
// exec.Cmd.Wait, so code that starts processes works the same in both.
package reaper

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

var (
	mu      sync.Mutex
	running bool
	waiters = map[int]chan unix.WaitStatus{}
	early   = map[int]unix.WaitStatus{} // exited before anyone waited
)

// Start installs the SIGCHLD handler and the reaping loop. Call it once, in
// PID 1, before starting any child.
func Start() {
	mu.Lock()
	defer mu.Unlock()
	if running {
		return
	}
	running = true
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGCHLD)
	go func() {
		for {
			reapAll()
			<-ch
		}
	}()
}

func reapAll() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		mu.Lock()
		if w, ok := waiters[pid]; ok {
			delete(waiters, pid)
			w <- ws
		} else {
			early[pid] = ws
		}
		mu.Unlock()
	}
}

// Wait waits for a started command to exit and returns its wait status.
// It does not close cmd's pipes (use os.Pipe and close your ends yourself).
func Wait(cmd *exec.Cmd) (unix.WaitStatus, error) {
	pid := cmd.Process.Pid
	mu.Lock()
	if !running {
		mu.Unlock()
		err := cmd.Wait()
		if ps := cmd.ProcessState; ps != nil {
			return unix.WaitStatus(ps.Sys().(syscall.WaitStatus)), nil
		}
		return 0, err
	}
	if ws, ok := early[pid]; ok {
		delete(early, pid)
		mu.Unlock()
		return ws, nil
	}
	w := make(chan unix.WaitStatus, 1)
	waiters[pid] = w
	mu.Unlock()
	return <-w, nil
}

// Run starts cmd and waits for it; a non-zero exit is an error.
func Run(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	ws, err := Wait(cmd)
	if err != nil {
		return err
	}
	return StatusError(ws)
}

// StatusError describes an abnormal wait status as an error, nil for exit 0.
func StatusError(ws unix.WaitStatus) error {
	switch {
	case ws.Exited() && ws.ExitStatus() == 0:
		return nil
	case ws.Exited():
		return fmt.Errorf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Errorf("killed by signal %d (%v)", int(ws.Signal()), ws.Signal())
	}
	return fmt.Errorf("wait status %#x", uint32(ws))
}
