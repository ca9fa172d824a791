package boot

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/basaltos/basalt/contract"
)

// Policy decides what a failed boot does. The zero value is not usable;
// fill every field (stage 2 wires the real ones, tests fakes).
type Policy struct {
	// Name is the failed sequence's name, prefixing the policy's lines.
	Name string
	// Debug is basalt.debug=1 from the kernel command line.
	Debug bool
	// Countdown before the reboot, printed once per second.
	Countdown time.Duration
	Sleep     func(time.Duration)
	// Reboot restarts the machine (after stopping services and unmounting);
	// it does not return when it works.
	Reboot func() error
	// Shell runs the emergency shell on the console and returns when it
	// exits; ErrNoShell when there is none.
	Shell func() error
	// Hang blocks forever.
	Hang func()
}

// ErrNoShell says the image has no emergency shell.
var ErrNoShell = fmt.Errorf("no emergency shell in this image (%s)", ShellPath)

// ShellPath is the emergency shell: busybox-static's sh when the image has it.
const ShellPath = "/bin/sh"

// Fail handles an essential step's failure: with Debug it drops to the
// emergency shell (restarting it when it exits) or hangs when there is none;
// otherwise it counts down and reboots so the bootloader can fall back.
// It returns only when the reboot itself failed.
func (p Policy) Fail(err error) error {
	sayIn(p.Name, "boot failed: %v", err)
	if p.Debug {
		sayIn(p.Name, "%s=1: emergency shell instead of reboot", contract.CmdlineDebug)
		for {
			serr := p.Shell()
			if serr == nil {
				sayIn(p.Name, "emergency shell exited; starting another")
				p.Sleep(time.Second)
				continue
			}
			sayIn(p.Name, "%v; halted for debugging", serr)
			p.Hang()
			return serr
		}
	}
	for left := p.Countdown; left > 0; left -= time.Second {
		sayIn(p.Name, "rebooting in %d s", int((left+time.Second-1)/time.Second))
		p.Sleep(min(time.Second, left))
	}
	sayIn(p.Name, "rebooting")
	return p.Reboot()
}

// ConsoleShell runs ShellPath on the console (fds 0-2) with run (exec.Cmd.Run,
// or reaper.Run in PID 1), or returns ErrNoShell.
func ConsoleShell(run func(*exec.Cmd) error) error {
	if _, err := os.Stat(ShellPath); err != nil {
		return ErrNoShell
	}
	cmd := exec.Command(ShellPath)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = []string{"PATH=/sbin:/usr/sbin:/bin:/usr/bin", "HOME=/", "TERM=linux", "PS1=basalt-emergency# "}
	var exit *exec.ExitError
	if err := run(cmd); err != nil && !errors.As(err, &exit) && !strings.HasPrefix(err.Error(), "exit status") {
		return fmt.Errorf("emergency shell: %w", err)
	}
	return nil
}
