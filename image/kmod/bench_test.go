package kmod

import (
	"io"
	"os/exec"
	"testing"
	"time"

	"github.com/basaltos/basalt/internal/testutil"
)

// BenchmarkDepmod: Scan + WriteDep of the whole Debian cloud-amd64 tree
// against `depmod -n` (dry run to stdout) on the same tree.
func BenchmarkDepmod(b *testing.B) {
	root, release, dir := realKernelB(b)
	depmod := testutil.NeedTool(b, "depmod")
	var ours, theirs time.Duration
	for b.Loop() {
		start := time.Now()
		ix, err := Scan(dir)
		if err != nil {
			b.Fatal(err)
		}
		if err := ix.WriteDep(io.Discard, ix.Modules()); err != nil {
			b.Fatal(err)
		}
		ours += time.Since(start)
		start = time.Now()
		if out, err := exec.Command(depmod, "-n", "-b", root, release).CombinedOutput(); err != nil {
			b.Fatalf("depmod: %v\n%.500s", err, out)
		}
		theirs += time.Since(start)
	}
	b.ReportMetric(float64(ours)/float64(theirs), "time-ratio")
	b.ReportMetric(float64(ours.Milliseconds())/float64(b.N), "ours-ms/op")
	b.ReportMetric(float64(theirs.Milliseconds())/float64(b.N), "depmod-ms/op")
}
