//go:build e2e

package qemu_test

import (
	"context"
	"regexp"
	"strconv"
	"testing"

	"github.com/basaltos/basalt/contract"
)

// readySinceKernelRE reads the ready marker's time since kernel start.
var readySinceKernelRE = regexp.MustCompile(`(\d+) ms since kernel start;`)

// BenchmarkVerityBoot boots the default OS image for qemu-x86_64 through
// OVMF and systemd-boot to the ready marker with verity on (dm-verity
// checks every block read) and off, in the same run, and reports the time
// since kernel start of root-mounted and ready markers and their ratios
// (verity / plain).
func BenchmarkVerityBoot(b *testing.B) {
	const board = "qemu-x86_64"
	imgs := map[string]string{"verity": buildSpecImage(b, board, "verity: on\n"), "plain": buildSpecImage(b, board, "verity: off\n")}
	ms := map[string][2]float64{}
	b.ResetTimer()
	for range b.N {
		for _, kind := range []string{"verity", "plain"} {
			ctx, cancel := context.WithTimeout(context.Background(), firmwareDeadline)
			m := startImage(ctx, b, board, imgs[kind], 0)
			mounted, ok := sinceKernelMs(expect(ctx, b, m, contract.RootMountedMarker(contract.SlotA)))
			ready := expect(ctx, b, m, contract.MarkerReady)
			r := readySinceKernelRE.FindStringSubmatch(ready)
			if !ok || r == nil {
				b.Fatalf("no times in %q / %q", contract.RootMountedMarker(contract.SlotA), ready)
			}
			rv, _ := strconv.ParseFloat(r[1], 64)
			v := ms[kind]
			ms[kind] = [2]float64{v[0] + mounted, v[1] + rv}
			m.Kill()
			m.Wait()
			cancel()
		}
	}
	n := float64(b.N)
	b.ReportMetric(ms["verity"][0]/n, "verity-mounted-ms")
	b.ReportMetric(ms["plain"][0]/n, "plain-mounted-ms")
	b.ReportMetric(ms["verity"][1]/n, "verity-ready-ms")
	b.ReportMetric(ms["plain"][1]/n, "plain-ready-ms")
	b.ReportMetric(ms["verity"][0]/ms["plain"][0], "mounted-time-ratio")
	b.ReportMetric(ms["verity"][1]/ms["plain"][1], "ready-time-ratio")
}
