package qemu

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/basaltos/basalt/internal/errclass"
)

// Machine is a running QEMU.
type Machine struct {
	cmd  *exec.Cmd
	args []string
	work string

	mu      sync.Mutex
	log     bytes.Buffer  // the whole console, as received
	lines   []string      // complete console lines, without "\r\n"
	partial []byte        // the line being received
	changed chan struct{} // closed and replaced on every write
	next    int           // first line the next Expect looks at
	console func([]byte)

	done chan struct{} // closed when QEMU has exited
	err  error         // QEMU's exit, valid after done
}

// Run boots c and waits for QEMU to exit.
func Run(ctx context.Context, c Config) error {
	m, err := Start(ctx, c)
	if err != nil {
		return err
	}
	return m.Wait()
}

// Start prepares the VM's files (vars copy, grown disk) in a temporary
// directory, removed when QEMU exits, and starts QEMU. Cancelling ctx kills it.
func Start(ctx context.Context, c Config) (m *Machine, err error) {
	if c.Board == nil || c.Board.QEMU == nil {
		return nil, fmt.Errorf("qemu: board %v cannot run in QEMU", boardName(c))
	}
	q := c.Board.QEMU
	bin, err := exec.LookPath(q.Binary)
	if err != nil {
		return nil, errclass.Missing(fmt.Errorf("%s not found: install the Debian packages %s: %w", q.Binary, strings.Join(q.HostPackages, ", "), err))
	}
	work, err := os.MkdirTemp("", "basalt-qemu-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(work)
		}
	}()
	p := plan{accel: resolveAccel(c.Accel, c.Board.Arch)}
	if c.Image != "" {
		format, virtual, err := DetectFormat(c.Image)
		if err != nil {
			return nil, fmt.Errorf("disk image: %w", err)
		}
		if c.Format != "" && c.Format != format {
			return nil, fmt.Errorf("disk image %s is %s, not %s", c.Image, format, c.Format)
		}
		p.disk, p.format = c.Image, format
		if c.DiskSize > 0 {
			if p.disk, p.format, err = growDisk(c.Image, format, virtual, c.DiskSize, work); err != nil {
				return nil, err
			}
		}
	}
	if q.SD && p.disk != "" {
		if _, virtual, err := DetectFormat(p.disk); err == nil && virtual&(virtual-1) != 0 {
			size := int64(1)
			for size < virtual {
				size <<= 1
			}
			if p.disk, p.format, err = growDisk(p.disk, p.format, virtual, size, work); err != nil {
				return nil, err
			}
		}
	}
	if q.KernelFromImage != "" && c.Image != "" && c.Kernel == "" {
		if p.kernel, p.dtb, err = fromImage(c.Image, work, q.KernelFromImage, q.DTBFromImage); err != nil {
			return nil, err
		}
	}
	if c.Vars != "" {
		p.vars = c.Vars
	} else if q.Vars != "" && c.Kernel == "" {
		p.vars = filepath.Join(work, "vars.fd")
		if err := copyFile(q.Vars, p.vars); err != nil {
			return nil, fmt.Errorf("UEFI vars template: %w (Debian packages %s)", err, strings.Join(q.HostPackages, ", "))
		}
	}
	a, err := args(&c, p)
	if err != nil {
		return nil, err
	}
	m = &Machine{args: append([]string{bin}, a...), work: work, changed: make(chan struct{}), done: make(chan struct{})}
	if c.Console != nil {
		m.console = func(b []byte) { c.Console.Write(b) }
	}
	m.cmd = exec.CommandContext(ctx, bin, a...)
	m.cmd.Stdin = c.Stdin
	// QEMU must not outlive us, even when we are killed without a chance
	// to cancel ctx.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	m.cmd.Stdout = m
	m.cmd.Stderr = m
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", q.Binary, err)
	}
	go func() {
		err := m.cmd.Wait()
		os.RemoveAll(work)
		m.mu.Lock()
		if err != nil {
			m.err = fmt.Errorf("%s: %w", q.Binary, err)
		}
		close(m.done)
		m.mu.Unlock()
	}()
	return m, nil
}

func boardName(c Config) string {
	if c.Board == nil {
		return "(none)"
	}
	return c.Board.Name
}

// Args returns the QEMU command line, binary first.
func (m *Machine) Args() []string { return m.args }

// Write receives QEMU's output (console and QEMU's own messages).
func (m *Machine) Write(b []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.console != nil {
		m.console(b)
	}
	m.log.Write(b)
	for _, c := range b {
		switch c {
		case '\n':
			m.lines = append(m.lines, string(m.partial))
			m.partial = m.partial[:0]
		case '\r':
		default:
			m.partial = append(m.partial, c)
		}
	}
	close(m.changed)
	m.changed = make(chan struct{})
	return len(b), nil
}

// Expect waits for a console line containing marker, after the line the
// previous Expect matched, and returns it. It fails when ctx ends or QEMU
// exits first; Log has the whole console for the report.
func (m *Machine) Expect(ctx context.Context, marker string) (string, error) {
	for {
		m.mu.Lock()
		for i := m.next; i < len(m.lines); i++ {
			if strings.Contains(m.lines[i], marker) {
				m.next = i + 1
				m.mu.Unlock()
				return m.lines[i], nil
			}
		}
		ch := m.changed
		m.mu.Unlock()
		select {
		case <-m.done: // all output is in: exec waits for its copying
			return "", fmt.Errorf("QEMU exited (%s) before %q appeared on the console", exitText(m.err), marker)
		default:
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for %q on the console: %w", marker, context.Cause(ctx))
		case <-m.done:
		case <-ch:
		}
	}
}

func exitText(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

// Log returns the whole console so far.
func (m *Machine) Log() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.log.String()
}

// Kill kills QEMU at once: a power cut for the guest.
func (m *Machine) Kill() error {
	select {
	case <-m.done:
		return nil
	default:
	}
	return m.cmd.Process.Kill()
}

// Exited is closed when QEMU has exited.
func (m *Machine) Exited() <-chan struct{} { return m.done }

// Wait waits for QEMU to exit and returns its exit error, if any.
func (m *Machine) Wait() error {
	<-m.done
	return m.err
}
