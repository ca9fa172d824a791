//go:build e2e

package qemu_test

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"testing"
)

// The containerd proof's figures (initsys/k3s/testdata/containerd-proof).
var (
	usableRE    = regexp.MustCompile(`images usable: first container ran (\d+) ms after containerd was up`)
	referenceRE = regexp.MustCompile(`reference: plain ctr import of \d+ archives \(\d+ bytes\) into namespace \S+: (\d+) ms`)
	execRE      = regexp.MustCompile(`containerd-proof: start .*, (\d+) ms since kernel start`)
)

// benchPayload is the preloaded image's payload layer: 32 MiB of files
// (~24 MiB gzip'd), a small real image's size.
const benchPayload = 32 << 20

// BenchmarkContainerdPreload boots a k3s image whose "k3s" is the
// containerd proof (real containerd and runc) on qemu-x86_64 twice from one
// disk and reports, for the first and the second boot, the time from
// containerd up until a container from the preloaded image ran (the images
// usable: with the builder's seeded store there is no import, only the
// unpack at the first container), and, in the same boots, a plain `ctr
// images import` (with its unpack) of the same archive into a fresh
// namespace, the reference; ratios are device / reference. It also reports
// the time from kernel start to the orchestrator's exec (the proof's first
// line, /proc/uptime), which the device reaches as it would start k3s.
func BenchmarkContainerdPreload(b *testing.B) {
	const board = "qemu-x86_64"
	var first, second, ref1, ref2, exec1, exec2 float64
	for range b.N {
		b.StopTimer()
		img := containerdImage(b, board, "basalt.test/containerd-proof-hello", benchPayload)
		// Room on data for the image unpacked twice (k8s.io and the
		// reference's namespace) and the reference's ingest: the device
		// grows its data partition to the disk's end at first boot. The
		// file itself grows (not an overlay): the second boot sees the
		// first one's writes.
		if fi, err := os.Stat(img); err != nil {
			b.Fatal(err)
		} else if err := os.Truncate(img, fi.Size()+256<<20); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		boot := func() (usable, ref, exec float64) {
			ctx, cancel := context.WithTimeout(context.Background(), containerdDeadline)
			defer cancel()
			m := bootContainerd(ctx, b, board, img)
			defer func() { m.Kill(); m.Wait() }()
			lines, ok := proofLines(ctx, b, m)
			for _, l := range lines {
				b.Log(l)
				if r := usableRE.FindStringSubmatch(l); r != nil {
					usable, _ = strconv.ParseFloat(r[1], 64)
				}
				if r := execRE.FindStringSubmatch(l); r != nil {
					exec, _ = strconv.ParseFloat(r[1], 64)
				}
				if r := referenceRE.FindStringSubmatch(l); r != nil {
					ref, _ = strconv.ParseFloat(r[1], 64)
				}
			}
			if !ok || usable == 0 || ref == 0 || exec == 0 {
				b.Fatalf("no figures from the containerd proof (ok %v, usable %v, reference %v, exec %v):\n%s", ok, usable, ref, exec, m.Log())
			}
			return usable, ref, exec
		}
		u1, r1, e1 := boot()
		u2, r2, e2 := boot()
		first, second, ref1, ref2 = first+u1, second+u2, ref1+r1, ref2+r2
		exec1, exec2 = exec1+e1, exec2+e2
	}
	n := float64(b.N)
	b.ReportMetric(first/n, "first-boot-usable-ms")
	b.ReportMetric(second/n, "second-boot-usable-ms")
	b.ReportMetric((ref1+ref2)/2/n, "plain-import-ms")
	b.ReportMetric(exec1/n, "first-boot-exec-since-kernel-ms")
	b.ReportMetric(exec2/n, "second-boot-exec-since-kernel-ms")
	b.ReportMetric(first/ref1, "first-boot-time-ratio")
	b.ReportMetric(second/ref2, "second-boot-time-ratio")
}
