package cache

import (
	"fmt"
	"io"
	"os"

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

// progress redraws one status line per download as bytes pass through.
type progress struct {
	w     io.Writer
	name  string
	total int64
	n     int64
	shown int64 // bytes at the last redraw
}

func (p *progress) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	if p.n-p.shown >= 1<<20 || p.n == p.total {
		p.shown = p.n
		p.draw()
	}
	return len(b), nil
}

func (p *progress) draw() {
	const mib = 1 << 20
	if p.total > 0 {
		fmt.Fprintf(p.w, "\r%s %.1f/%.1f MiB %3d%%", p.name, float64(p.n)/mib, float64(p.total)/mib, p.n*100/p.total)
		return
	}
	fmt.Fprintf(p.w, "\r%s %.1f MiB", p.name, float64(p.n)/mib)
}

func (p *progress) done() {
	p.draw()
	fmt.Fprintln(p.w)
}
