//go:build e2e

package stage2

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var (
	readyRE = regexp.MustCompile(`basalt: ready \((\d+) ms in stage 2, (\d+) ms since kernel start; init (\d+) ms without network/clock waits; rss ([0-9.]+) MB\)`)
	stepRE  = regexp.MustCompile(`basalt: step (\S+) (?:ok|failed) \((\d+) ms`)
)

// bootFigures sums what the ready line and the step lines of one boot say.
type bootFigures struct {
	n                       int
	ready, stage2, own, rss float64
	steps                   map[string]float64
	order                   []string
}

func (f *bootFigures) add(b *testing.B, log string) {
	m := readyRE.FindStringSubmatch(log)
	if m == nil {
		b.Fatalf("no ready line matching %s in\n%s", readyRE, log)
	}
	num := func(s string) float64 { x, _ := strconv.ParseFloat(s, 64); return x }
	f.n++
	f.stage2, f.ready, f.own, f.rss = f.stage2+num(m[1]), f.ready+num(m[2]), f.own+num(m[3]), f.rss+num(m[4])
	if f.steps == nil {
		f.steps = map[string]float64{}
	}
	for _, s := range stepRE.FindAllStringSubmatch(log, -1) {
		if _, ok := f.steps[s[1]]; !ok {
			f.order = append(f.order, s[1])
		}
		f.steps[s[1]] += num(s[2])
	}
}

// report adds the metrics with a prefix and logs the mean per step.
func (f *bootFigures) report(b *testing.B, prefix string) {
	n := float64(f.n)
	b.ReportMetric(f.ready/n, prefix+"ready-ms")
	b.ReportMetric(f.stage2/n, prefix+"stage2-ms")
	b.ReportMetric(f.own/n, prefix+"init-ms")
	b.ReportMetric(f.own/n/300, prefix+"goal-ratio")
	b.ReportMetric(f.rss/n, prefix+"rss-MB")
	b.ReportMetric(f.rss/n/20, prefix+"rss-goal-ratio")
	var l []string
	for _, s := range f.order {
		l = append(l, fmt.Sprintf("%s %.0f", s, f.steps[s]/n))
	}
	b.Logf("%smean ms per step over %d boots: %s", prefix, f.n, strings.Join(l, ", "))
}

// BenchmarkBootToReady boots each QEMU board (TCG, direct kernel) twice per
// iteration: the first boot grows the data partition and filesystem and
// creates the machine id; the probe service powers it off cleanly; the
// second boot is the steady state. For each it reports the time since
// kernel start (first-/steady-ready-ms), the init's own steps without the
// DHCP and NTP waits (init-ms; goal < 300 ms on qemu-x86_64, goal-ratio =
// init-ms/300), PID 1's RSS at ready (rss-MB; goal < 20 MB,
// rss-goal-ratio = rss-MB/20), and logs the mean time per step. There is
// no reference tool in the same run.
//
//	go test -tags e2e -run '^$' -bench BootToReady -benchtime 3x ./initsys/stage2
func BenchmarkBootToReady(b *testing.B) {
	for _, tg := range []target{x86_64, aarch64} {
		b.Run(tg.board, func(b *testing.B) {
			var first, steady bootFigures
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				img, rd := prepare(b, tg, "basalt-data")
				b.StartTimer()
				v := bootVM(b, tg, img, rd, nil, "")
				_, err := v.m.Expect(v.ctx, "basalt: ready (")
				b.StopTimer()
				if err != nil {
					b.Fatalf("%v\n%s", err, v.m.Log())
				}
				if _, err := v.m.Expect(v.ctx, "poweroff now"); err != nil {
					b.Fatalf("%v\n%s", err, v.m.Log())
				}
				v.m.Wait()
				first.add(b, v.m.Log())
				v.cancel()

				v = bootVM(b, tg, img, rd, nil, "")
				if _, err := v.m.Expect(v.ctx, "basalt: ready ("); err != nil {
					b.Fatalf("%v\n%s", err, v.m.Log())
				}
				steady.add(b, v.m.Log())
				v.m.Kill()
				v.cancel()
				b.StartTimer()
			}
			first.report(b, "first-")
			steady.report(b, "steady-")
		})
	}
}
