package cache

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/term"
)

// TermProgress returns f when it is a terminal and nil otherwise, for
// Cache.Progress: progress is drawn on terminals and quiet in logs.
func TermProgress(f *os.File) io.Writer {
	if f == nil || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return f
}

// progress redraws one status line per download as bytes pass through:
// bytes so far, total, rate and the time left.
type progress struct {
	w     io.Writer
	name  string
	total int64
	n     int64
	shown int64 // bytes at the last redraw
	start time.Time
	now   func() time.Time // nil: time.Now
}

func (p *progress) clock() time.Time {
	if p.now != nil {
		return p.now()
	}
	return time.Now()
}

func (p *progress) Write(b []byte) (int, error) {
	if p.start.IsZero() {
		p.start = p.clock()
	}
	p.n += int64(len(b))
	if p.n-p.shown >= 1<<20 || p.n == p.total {
		p.shown = p.n
		p.draw()
	}
	return len(b), nil
}

func (p *progress) draw() {
	const mib = 1 << 20
	rate := 0.0 // bytes per second
	if d := p.clock().Sub(p.start).Seconds(); d > 0 && !p.start.IsZero() {
		rate = float64(p.n) / d
	}
	line := fmt.Sprintf("%s %.1f MiB", p.name, float64(p.n)/mib)
	if p.total > 0 {
		line = fmt.Sprintf("%s %.1f/%.1f MiB %3d%%", p.name, float64(p.n)/mib, float64(p.total)/mib, p.n*100/p.total)
	}
	if rate > 0 {
		line += fmt.Sprintf(" %.1f MiB/s", rate/mib)
		if p.total > p.n {
			line += fmt.Sprintf(" ETA %s", time.Duration(float64(p.total-p.n)/rate*float64(time.Second)).Round(time.Second))
		}
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
}

func (p *progress) done() {
	p.draw()
	fmt.Fprintln(p.w)
}
