//go:build e2e

package qemu_test

import (
	"context"
	"fmt"
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

// readbenchRE reads `basalt-init readbench`'s line.
var readbenchRE = regexp.MustCompile(`readbench: slot a, (\d+) MiB: verity ([\d.]+) MB/s, raw ([\d.]+) MB/s, verity/raw ([\d.]+)`)

// BenchmarkVerityRead boots a qemu-x86_64 image whose root holds 48 MiB of
// incompressible data (squashfs stores it as is) and runs `basalt-init
// readbench` as a once service: in the same VM it reads the root
// sequentially from a cold page cache through dm-verity and from the raw
// partition under it, and reports both throughputs and their ratio.
func BenchmarkVerityRead(b *testing.B) {
	const board = "qemu-x86_64"
	p, _ := randomFile(b, "blob", 48<<20, 5, 6)
	img := buildSpecImage(b, board, fmt.Sprintf("overlays:\n  - {from: %s, to: /usr/share/blob}\n"+
		"services:\n  - {name: readbench, path: %s, args: [readbench], restart: once}\n", p, contract.InitPath))
	var ver, raw, ratio, mib float64
	b.ResetTimer()
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), firmwareDeadline)
		m := startImage(ctx, b, board, img, 0)
		line := expect(ctx, b, m, "readbench: slot a, ")
		f := readbenchRE.FindStringSubmatch(line)
		if f == nil {
			b.Fatalf("readbench line %q", line)
		}
		b.Logf("%s", line)
		n, _ := strconv.ParseFloat(f[1], 64)
		v, _ := strconv.ParseFloat(f[2], 64)
		w, _ := strconv.ParseFloat(f[3], 64)
		q, _ := strconv.ParseFloat(f[4], 64)
		mib, ver, raw, ratio = n, ver+v, raw+w, ratio+q
		m.Kill()
		m.Wait()
		cancel()
	}
	n := float64(b.N)
	b.ReportMetric(mib, "root-MiB")
	b.ReportMetric(ver/n, "verity-MB/s")
	b.ReportMetric(raw/n, "raw-MB/s")
	b.ReportMetric(ratio/n, "read-throughput-ratio")
}
