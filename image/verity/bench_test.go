package verity

import (
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	cv "github.com/basaltos/basalt/contract/verity"
	"github.com/basaltos/basalt/internal/testutil"
)

// BenchmarkBuild times the hash tree of a 256 MiB data area (a root slot's
// squashfs: BASALT_BENCH_VERITY_FILE names a real one) written after the
// data in the same file, against `veritysetup format` doing the same in the
// same run. Both read the data from the page cache.
func BenchmarkBuild(b *testing.B) {
	vs := testutil.NeedTool(b, "veritysetup")
	dir := b.TempDir()
	src := os.Getenv("BASALT_BENCH_VERITY_FILE")
	if src == "" {
		src = filepath.Join(dir, "data")
		if err := os.WriteFile(src, testData(256<<20), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	data, err := os.ReadFile(src)
	if err != nil {
		b.Fatal(err)
	}
	blocks := DataBlocks(int64(len(data)))
	padded := make([]byte, int64(blocks)*cv.BlockSize)
	copy(padded, data)
	ours, ref := filepath.Join(dir, "ours"), filepath.Join(dir, "ref")
	var tOurs, tRef time.Duration
	for range b.N {
		for _, p := range []string{ours, ref} {
			if err := os.WriteFile(p, padded, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		start := time.Now()
		f, err := os.OpenFile(ours, os.O_RDWR, 0)
		if err != nil {
			b.Fatal(err)
		}
		tr, err := Build(f, int64(len(padded)), testSalt, testUUID)
		if err == nil {
			_, err = f.WriteAt(tr.Area, tr.Offset())
		}
		if err == nil {
			err = f.Close()
		}
		if err != nil {
			b.Fatal(err)
		}
		tOurs += time.Since(start)

		start = time.Now()
		out, err := exec.Command(vs, "format", fmt.Sprintf("--hash-offset=%d", len(padded)), fmt.Sprintf("--data-blocks=%d", blocks),
			"--salt="+hex.EncodeToString(testSalt), "--uuid="+uuidString(testUUID), ref, ref).CombinedOutput()
		if err != nil {
			b.Fatalf("veritysetup format: %v\n%s", err, out)
		}
		tRef += time.Since(start)
	}
	n := float64(b.N)
	b.ReportMetric(tOurs.Seconds()/n, "ours-s")
	b.ReportMetric(tRef.Seconds()/n, "veritysetup-s")
	b.ReportMetric(tOurs.Seconds()/tRef.Seconds(), "time-ratio")
	b.ReportMetric(float64(len(data))/(1<<20), "data-MiB")
}
