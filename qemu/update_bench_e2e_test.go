//go:build e2e

package qemu_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/qemu"
)

var (
	plainWriteRE = regexp.MustCompile(`updatebench: plain write of (\d+) bytes to \S+ in (\d+) ms`)
	downloadRE   = regexp.MustCompile(`updatebench: downloaded (\d+) bytes in (\d+) ms`)
	readRE       = regexp.MustCompile(`updatebench: read (\d+) bytes of rootfs from the bundle file in (\d+) ms`)
	hashRE       = regexp.MustCompile(`updatebench: sha256 of (\d+) bytes in (\d+) ms`)
	plainCopyRE  = regexp.MustCompile(`updatebench: plain copy of (\d+) bytes from the bundle file to \S+ in (\d+) ms`)
)

// BenchmarkUpdateApply measures the apply in one qemu-x86_64 VM (TCG)
// against a plain sequential write of the same bytes in that VM: v1 runs
// testdata/updatebench as a service, which downloads v2's bundle from
// `basalt serve` on the host, writes its rootfs to slot b the plain way
// (4 MiB writes, one fsync: the reference), then has PID 1 apply the
// downloaded file and then the URL (with a reboot, trial and commit).
//
//	root-copy-ratio       plain copy ms / the file apply's write-root step ms: the
//	                      reference copies the same rootfs bytes from the same
//	                      bundle file to the slot as dd would (4 MiB, fsync), both
//	                      cold (page cache dropped): the apply's own cost over
//	                      reading and writing (sha256, checks; goal >= 0.9)
//	root-write-ratio      plain write ms (from memory, no read) / the file
//	                      apply's write-root step ms
//	url-root-write-ratio  plain write ms / the URL apply's write-root step ms
//	                      (the device's path: bounded by the download)
//	url-download-ratio    the URL apply's write-root MB/s / a plain download's MB/s
//	                      in the same VM (what the one pass costs over the download)
//	bundle-root-ratio     bundle bytes / rootfs payload (the slot image) bytes
//	download-commit-s     from the URL apply's start to the commit after the reboot
//
// and, to tell where the apply's time goes, the VM's speed of each part
// alone: plain-write, plain-download (to the data partition), tar-read
// (the rootfs out of the bundle file) and sha256 (in memory), in MB/s.
//
//	go test -tags e2e -run '^$' -bench UpdateApply -benchtime 1x ./qemu
func BenchmarkUpdateApply(b *testing.B) {
	const board = "qemu-x86_64"
	bd, err := boards.Get(board)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	prog := filepath.Join(dir, "updatebench")
	crossBuild(b, bd.Arch, "./testdata/updatebench", prog)
	c := serveChannel(b)
	url := fmt.Sprintf("http://%s:%d/v2.bundle", qemu.GuestHost, channelPort)
	extra := fmt.Sprintf("overlays:\n  - {from: %s, to: /usr/bin/updatebench, mode: \"0755\"}\nservices:\n  - {name: updatebench, path: /usr/bin/updatebench, args: [%q], restart: once}\n", prog, url)
	_, v2 := buildVersion(b, board, "1.1.0", extra)
	raw, err := os.ReadFile(v2)
	if err != nil {
		b.Fatal(err)
	}
	os.WriteFile(filepath.Join(c.dir, "v2.bundle"), raw, 0o644) // not in the channel: nothing is pulled
	root := rootfsSize(b, v2)
	var plain, plainCopy, fileWrite, urlWrite, commit, dl, read, hash float64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		img, _ := buildVersion(b, board, "1.0.0", extra) // each round from a fresh v1
		b.StartTimer()
		ctx, cancel := context.WithTimeout(context.Background(), updateDeadline)
		m := bootDisk(ctx, b, board, img, c)
		step(ctx, b, m, contract.RootMountedMarker(contract.SlotA))
		d := downloadRE.FindStringSubmatch(step(ctx, b, m, "updatebench: downloaded"))
		r := readRE.FindStringSubmatch(step(ctx, b, m, "updatebench: read "))
		h := hashRE.FindStringSubmatch(step(ctx, b, m, "updatebench: sha256 of"))
		p := plainWriteRE.FindStringSubmatch(step(ctx, b, m, "updatebench: plain write"))
		pc := plainCopyRE.FindStringSubmatch(step(ctx, b, m, "updatebench: plain copy"))
		if d == nil || r == nil || h == nil || p == nil || pc == nil {
			b.Fatalf("no figures in the updatebench lines:\n%s", m.Log())
		}
		step(ctx, b, m, "updatebench: apply file")
		fileWrite += float64(stepMs(step(ctx, b, m, "basalt: update: step write-root ok")))
		step(ctx, b, m, "updatebench: apply url")
		t0 := time.Now()
		urlWrite += float64(stepMs(step(ctx, b, m, "basalt: update: step write-root ok")))
		step(ctx, b, m, contract.RootMountedMarker(contract.SlotB))
		step(ctx, b, m, "basalt: update: committed 1.1.0 in slot b")
		commit += time.Since(t0).Seconds()
		stop(m)
		cancel()
		num := func(s string) float64 { x, _ := strconv.ParseFloat(s, 64); return x }
		plain, dl, read, hash = plain+num(p[2]), dl+num(d[2]), read+num(r[2]), hash+num(h[2])
		plainCopy += num(pc[2])
	}
	n := float64(b.N)
	mb := float64(root) / (1 << 20)
	b.ReportMetric(plainCopy/fileWrite, "root-copy-ratio")
	b.ReportMetric(plain/fileWrite, "root-write-ratio")
	b.ReportMetric(mb/(plainCopy/n/1000), "plain-copy-MB/s")
	b.ReportMetric(plain/urlWrite, "url-root-write-ratio")
	b.ReportMetric(mb/(plain/n/1000), "plain-write-MB/s")
	b.ReportMetric(mb/(fileWrite/n/1000), "file-apply-MB/s")
	b.ReportMetric(mb/(urlWrite/n/1000), "url-apply-MB/s")
	b.ReportMetric(float64(len(raw))/(1<<20)/(dl/n/1000), "plain-download-MB/s")
	b.ReportMetric((float64(root)/urlWrite)/(float64(len(raw))/dl), "url-download-ratio")
	b.ReportMetric(mb/(read/n/1000), "tar-read-MB/s")
	b.ReportMetric(mb/(hash/n/1000), "sha256-MB/s")
	b.ReportMetric(float64(len(raw))/float64(root), "bundle-root-ratio")
	b.ReportMetric(commit/n, "download-commit-s")
}
