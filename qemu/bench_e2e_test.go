//go:build e2e

package qemu_test

import (
	"context"
	"testing"
	"time"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/qemu"
)

// BenchmarkBootToRootMounted boots each board's kernel directly under TCG
// and measures QEMU start to the stage-1 root-mounted marker (boot-ms) and
// the figure the marker itself prints, time since kernel start
// (since-kernel-ms). There is no reference tool: absolute figures only.
func BenchmarkBootToRootMounted(b *testing.B) {
	for _, name := range directBoards {
		b.Run(name, func(b *testing.B) {
			v := newDirectVM(b, name, false)
			var boot time.Duration
			var sinceKernel float64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), bootDeadline)
				start := time.Now()
				m := v.start(ctx, b, qemu.TCG)
				line := expect(ctx, b, m, contract.RootMountedMarker(contract.SlotA))
				boot += time.Since(start)
				ms, ok := sinceKernelMs(line)
				if !ok {
					b.Fatalf("marker %q has no time", line)
				}
				sinceKernel += ms
				m.Kill()
				m.Wait()
				cancel()
			}
			b.ReportMetric(float64(boot.Milliseconds())/float64(b.N), "boot-ms")
			b.ReportMetric(sinceKernel/float64(b.N), "since-kernel-ms")
		})
	}
}
