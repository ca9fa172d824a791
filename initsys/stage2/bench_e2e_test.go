//go:build e2e

package stage2

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var readyRE = regexp.MustCompile(`basalt: ready \((\d+) ms in stage 2, (\d+) ms since kernel start; init (\d+) ms without network/clock waits; rss ([0-9.]+) MB\)`)

// BenchmarkBootToReady boots each QEMU board (TCG, direct kernel, first
// boot with data growth) to the ready marker and reports the time since
// kernel start (ready-ms), the init's own steps without the DHCP and NTP
// waits (init-ms; goal < 300 ms on qemu-x86_64, goal-ratio = init-ms/300),
// PID 1's RSS at ready (rss-MB; goal < 20 MB, rss-goal-ratio = rss-MB/20).
// There is no reference tool in the same run. The step breakdown is logged.
//
//	go test -tags e2e -run '^$' -bench BootToReady -benchtime 1x ./initsys/stage2
func BenchmarkBootToReady(b *testing.B) {
	for _, tg := range []target{x86_64, aarch64} {
		b.Run(tg.board, func(b *testing.B) {
			var ready, stage2, own, rss float64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				img, rd := prepare(b, tg, "basalt-data")
				b.StartTimer()
				v := bootVM(b, tg, img, rd, nil, "")
				line, err := v.m.Expect(v.ctx, "basalt: ready (")
				b.StopTimer()
				if err != nil {
					b.Fatalf("%v\n%s", err, v.m.Log())
				}
				m := readyRE.FindStringSubmatch(line)
				if m == nil {
					b.Fatalf("ready line %q does not match %s", line, readyRE)
				}
				f := func(s string) float64 { x, _ := strconv.ParseFloat(s, 64); return x }
				stage2, ready, own, rss = stage2+f(m[1]), ready+f(m[2]), own+f(m[3]), rss+f(m[4])
				for _, l := range strings.Split(v.m.Log(), "\n") {
					if strings.Contains(l, "basalt: step ") || strings.Contains(l, "since kernel start") {
						b.Log(strings.TrimSpace(l))
					}
				}
				v.m.Kill()
				v.cancel()
				b.StartTimer()
			}
			n := float64(b.N)
			b.ReportMetric(ready/n, "ready-ms")
			b.ReportMetric(stage2/n, "stage2-ms")
			b.ReportMetric(own/n, "init-ms")
			b.ReportMetric(own/n/300, "goal-ratio")
			b.ReportMetric(rss/n, "rss-MB")
			b.ReportMetric(rss/n/20, "rss-goal-ratio")
		})
	}
}
