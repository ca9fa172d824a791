package build

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/image/k3s"
	"github.com/basaltos/basalt/image/spec"
)

// BenchmarkBuildK3sAirgap measures a warm build of a k3s image (the stand-in
// k3s release, its data pre-extracted) with an air-gap archive of k3s' size
// (~200 MB, locally made in its format, incompressible like the real
// .tar.zst; the build seeds containerd's store from it) against
// the same build without it (airgap: {none: true}), in the same run. It
// reports both times, time-ratio (with/without), the root squashfs sizes
// and size-ratio, and the image file sizes.
func BenchmarkBuildK3sAirgap(b *testing.B) {
	rel := b.TempDir()
	k3sRelease(b, rel)
	a, _ := k3s.AssetsFor(boards.AMD64)
	if err := os.WriteFile(filepath.Join(rel, a.Airgap), airgapArchive(b, 200<<20), 0o644); err != nil {
		b.Fatal(err)
	}
	b.Setenv(K3sEnv, rel)
	keyring := caMirror(b)
	dir := b.TempDir()
	cacheDir := filepath.Join(dir, "cache")
	with := writeSpec(b, dir, k3sSpec)
	withoutDir := filepath.Join(dir, "none")
	os.MkdirAll(withoutDir, 0o755)
	without := writeSpec(b, withoutDir, "orchestrator: {kind: k3s, version: v1.33.1+k3s1, airgap: {none: true}}\n")
	build := func(s *spec.Spec, out string) (time.Duration, int64, int64) {
		start := time.Now()
		arts, err := Build(context.Background(), s, Options{OutDir: out, CacheDir: cacheDir, Keyring: keyring})
		if err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		var m Manifest
		if err := json.Unmarshal(must(os.ReadFile(arts[0].Manifest)), &m); err != nil {
			b.Fatal(err)
		}
		var root int64
		for _, p := range m.Partitions {
			if p.Name == contract.PartRootA {
				root = p.Content
			}
		}
		os.RemoveAll(out)
		return d, root, m.Image.Size
	}
	build(with, filepath.Join(dir, "warm1")) // warm: device binary, caches
	build(without, filepath.Join(dir, "warm2"))
	var tw, tn time.Duration
	var rw, rn, iw, in int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, r, im := build(with, filepath.Join(dir, "with"))
		tw, rw, iw = tw+d, r, im
		d, r, im = build(without, filepath.Join(dir, "without"))
		tn, rn, in = tn+d, r, im
	}
	n := float64(b.N)
	b.ReportMetric(tw.Seconds()/n, "airgap-s/op")
	b.ReportMetric(tn.Seconds()/n, "no-airgap-s/op")
	b.ReportMetric(tw.Seconds()/tn.Seconds(), "time-ratio")
	b.ReportMetric(float64(rw), "airgap-root-bytes")
	b.ReportMetric(float64(rn), "no-airgap-root-bytes")
	b.ReportMetric(float64(rw)/float64(rn), "size-ratio")
	b.ReportMetric(float64(iw), "airgap-image-bytes")
	b.ReportMetric(float64(in), "no-airgap-image-bytes")
}
