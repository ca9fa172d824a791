// Package say is the init's one voice. Every line PID 1 says (stage 1 and
// stage 2, and the packages they run: boot, netup, sshd, supervise) goes
// through Printf, which writes it, prefixed with contract.MarkerPrefix, to
//
//   - the console (fd 1, /dev/console once stage 1 has opened it),
//   - the kernel log (/dev/kmsg), so early lines survive in dmesg, and
//   - a kept log on the data partition (Keep), once it is mounted: the
//     lines said before that are buffered and written there first.
//
// A tiny type rather than a log/slog handler: the console lines are a
// contract (tests and users wait for markers byte for byte), so there is no
// level, time or key=value to render, and every caller needs only Printf.
// One process-wide Logger, because PID 1 is one process with one console;
// tests that read the lines swap it with Use.
package say

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/basaltos/basalt/contract"
)

// Kmsg is the kernel log device.
const Kmsg = "/dev/kmsg"

// kmsgLevel is syslog's user facility (8) at debug level (7): the kernel
// echoes records below the console loglevel (7 by default) to the console,
// where Printf has written the line already; debug records stay in dmesg only.
const kmsgLevel = "<15>"

// earlyMax bounds the lines buffered before Keep (a few hundred boot lines
// fit many times; a boot that never mounts data must not grow PID 1).
const earlyMax = 256 << 10

// Logger writes lines to a console, the kernel log and a kept log.
type Logger struct {
	mu      sync.Mutex
	console io.Writer
	kmsg    string    // kernel log device; "" for none
	kept    io.Writer // nil until Keep
	early   []byte    // lines said before Keep, at most earlyMax bytes
}

// New returns a Logger writing to console and, unless kmsg is "", to the
// kernel log device kmsg.
func New(console io.Writer, kmsg string) *Logger {
	return &Logger{console: console, kmsg: kmsg}
}

// std is the process-wide Logger. Only PID 1 writes to the kernel log: the
// same code runs in unit tests on a build host, whose dmesg is not ours.
var (
	stdMu sync.Mutex
	std   = New(os.Stdout, pid1Kmsg())
)

func pid1Kmsg() string {
	if os.Getpid() == 1 {
		return Kmsg
	}
	return ""
}

func current() *Logger {
	stdMu.Lock()
	defer stdMu.Unlock()
	return std
}

// Use makes l the process-wide Logger and returns a func restoring the
// previous one (tests; not safe with parallel tests that also say things).
func Use(l *Logger) (restore func()) {
	stdMu.Lock()
	defer stdMu.Unlock()
	prev := std
	std = l
	return func() {
		stdMu.Lock()
		defer stdMu.Unlock()
		std = prev
	}
}

// Printf says one message with the process-wide Logger.
func Printf(format string, args ...any) { current().Printf(format, args...) }

// Mark says a console marker from contract (which carries the prefix
// already) followed by detail, e.g. Mark(contract.MarkerReady, " (%d ms)", ms).
func Mark(marker, detail string, args ...any) {
	current().Printf("%s"+detail, append([]any{strings.TrimPrefix(marker, contract.MarkerPrefix)}, args...)...)
}

// Keep starts the kept log on w (the data partition's log file): the lines
// said so far are written first, then every new one.
func Keep(w io.Writer) error { return current().Keep(w) }

// Early returns the lines said before Keep (stage 1 hands them to stage 2).
func Early() []byte { return current().Early() }

// Console is the process-wide Logger's console, for output that is not the
// init's own (service output, the emergency shell).
func Console() io.Writer { return current().console }

// Printf formats a message and says each of its lines with the prefix.
func (l *Logger) Printf(format string, args ...any) {
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	var b bytes.Buffer
	for _, line := range strings.Split(msg, "\n") {
		b.WriteString(contract.MarkerPrefix)
		b.WriteString(line)
		b.WriteByte('\n')
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.console.Write(b.Bytes())
	if l.kmsg != "" {
		l.toKmsg(b.Bytes())
	}
	switch {
	case l.kept != nil:
		l.kept.Write(b.Bytes())
	case len(l.early)+b.Len() <= earlyMax:
		l.early = append(l.early, b.Bytes()...)
	}
}

// toKmsg writes one record per line. The device is opened for each
// message: the kernel rate-limits writes per open file (10 per 5 s unless
// printk.devkmsg=on), which a boot's burst of lines would exceed. Before
// /dev is mounted there is no device and the line is on the console only.
func (l *Logger) toKmsg(lines []byte) {
	f, err := os.OpenFile(l.kmsg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return
	}
	defer f.Close()
	for _, line := range bytes.SplitAfter(lines, []byte("\n")) {
		if len(line) > 0 {
			f.Write(append([]byte(kmsgLevel), line...))
		}
	}
}

// Keep starts the kept log on w, writing the buffered early lines first.
func (l *Logger) Keep(w io.Writer) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := w.Write(l.early); err != nil {
		return fmt.Errorf("kept log: %w", err)
	}
	l.kept, l.early = w, nil
	return nil
}

// Early returns a copy of the lines said before Keep.
func (l *Logger) Early() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.early)
}

// Inherit adds lines said by an earlier stage (already on the console and
// in the kernel log) in front of the early buffer, for the kept log only.
func (l *Logger) Inherit(lines []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(lines)+len(l.early) > earlyMax {
		return
	}
	l.early = append(bytes.Clone(lines), l.early...)
}

// Close ends the kept log (before its filesystem is unmounted), closing its
// writer when it is an io.Closer; later lines go to the console and the
// kernel log only.
func Close() error { return current().Close() }

// Close ends the kept log.
func (l *Logger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.kept
	l.kept, l.early = io.Discard, nil
	if c, ok := w.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
