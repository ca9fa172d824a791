package update

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/basaltos/basalt/contract/ab"
)

// BenchmarkApply applies a bundle with a 64 MiB rootfs into a file-backed
// slot and compares the root write pass (read bundle, hash, write, sync)
// with a plain sequential write of the same bytes to the same kind of file
// and a sync, on the same machine: root-write-ratio (goal >= 0.9 means the
// hashing and tar reading cost little). The whole apply reads the bundle
// twice (verify pass, then write pass): apply-ratio.
func BenchmarkApply(b *testing.B) {
	big := make([]byte, 64<<20)
	rand.Read(big)
	saved := rootfs
	rootfs = big
	defer func() { rootfs = saved }()
	var tApply, tWrite, tPlain time.Duration
	for range b.N {
		f := newFake(b, ab.BLSName)
		os.Truncate(f.root["b"], int64(len(big))+1<<20)
		bun := makeBundle(b, "1.1.0", nil, key)
		start := time.Now()
		if _, err := f.u.Apply(context.Background(), bun, Options{}); err != nil {
			b.Fatal(err)
		}
		tApply += time.Since(start)
		tWrite += writeRootDuration(f.console.String())

		plain := filepath.Join(b.TempDir(), "plain")
		start = time.Now()
		w, _ := os.Create(plain)
		if _, err := io.CopyBuffer(onlyWriter{w}, bytes.NewReader(big), make([]byte, 4<<20)); err != nil {
			b.Fatal(err)
		}
		w.Sync()
		w.Close()
		tPlain += time.Since(start)
	}
	n := float64(b.N)
	b.ReportMetric(tPlain.Seconds()/tWrite.Seconds(), "root-write-ratio")
	b.ReportMetric(tPlain.Seconds()/tApply.Seconds(), "apply-ratio")
	b.ReportMetric(float64(len(big))/(1<<20)/(tWrite.Seconds()/n), "root-write-MB/s")
}

// writeRootDuration reads the update-write-root step's duration from the
// step runner's console line.
func writeRootDuration(console string) time.Duration {
	i := strings.Index(console, "update: step write-root ok (")
	if i < 0 {
		return 0
	}
	var ms int
	fmt.Sscanf(console[i+len("update: step write-root ok ("):], "%d", &ms)
	return time.Duration(ms) * time.Millisecond
}
