package qcow2

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/basaltos/basalt/internal/testutil"
)

const MiB = 1 << 20

type extent struct {
	off  int64
	data []byte
}

func rnd(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// rawImage writes a sparse raw image of size bytes holding the extents.
func rawImage(t testing.TB, dir string, size int64, exts []extent) string {
	t.Helper()
	p := filepath.Join(dir, "disk.raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for _, e := range exts {
		if _, err := f.WriteAt(e.data, e.off); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func TestConvert(t *testing.T) {
	qemuImg := testutil.NeedTool(t, "qemu-img")
	tests := []struct {
		name     string
		size     int64
		exts     []extent
		clusters int // allocated data clusters
	}{
		{"empty", 10 * MiB, nil, 0},
		{"one byte", 10 * MiB, []extent{{5*MiB + 3, []byte{1}}}, 1},
		{"written zeros are not allocated", 10 * MiB, []extent{{0, make([]byte, 2*MiB)}, {3 * MiB, rnd(1, 100000)}}, 2},
		{"partial last cluster", 10*MiB + 1000, []extent{{10*MiB + 999, []byte{7}}}, 1},
		{"several L2 tables", 1536 * MiB, []extent{{0, rnd(2, 1*MiB)}, {700 * MiB, rnd(3, 3*MiB+17)}, {1536*MiB - 10, rnd(4, 10)}}, 16 + 49 + 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			raw := rawImage(t, dir, tc.size, tc.exts)
			q := filepath.Join(dir, "disk.qcow2")
			if err := Convert(q, raw); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(qemuImg, "check", q).CombinedOutput(); err != nil || !strings.Contains(string(out), "No errors were found") {
				t.Fatalf("qemu-img check: %v\n%s", err, out)
			}
			if out, err := exec.Command(qemuImg, "compare", "-f", "raw", "-F", "qcow2", raw, q).CombinedOutput(); err != nil {
				t.Fatalf("qemu-img compare: %v\n%s", err, out)
			}
			out, err := exec.Command(qemuImg, "info", "--output=json", q).CombinedOutput()
			if err != nil || !strings.Contains(string(out), fmt.Sprintf(`"virtual-size": %d`, (tc.size+511)/512*512)) || !strings.Contains(string(out), `"compat": "1.1"`) {
				t.Errorf("qemu-img info: %v\n%s", err, out)
			}
			out, err = exec.Command(qemuImg, "check", "--output=json", q).CombinedOutput()
			want := fmt.Sprintf(`"allocated-clusters": %d,`, tc.clusters)
			if tc.clusters == 0 {
				want = `"check-errors": 0` // qemu-img omits a zero count
			}
			if err != nil || !strings.Contains(string(out), want) || (tc.clusters == 0 && strings.Contains(string(out), "allocated-clusters")) {
				t.Errorf("qemu-img check: %v, want %s:\n%s", err, want, out)
			}
		})
	}
}

func TestReproducible(t *testing.T) {
	dir := t.TempDir()
	raw := rawImage(t, dir, 64*MiB, []extent{{MiB, rnd(5, 5*MiB)}, {40 * MiB, []byte("x")}})
	var sums []string
	for i := range 2 {
		q := filepath.Join(dir, fmt.Sprintf("%d.qcow2", i))
		if err := Convert(q, raw); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(q)
		sums = append(sums, fmt.Sprintf("%x", sha256.Sum256(b)))
	}
	if sums[0] != sums[1] {
		t.Errorf("two conversions differ: %v", sums)
	}
}

func TestConvertErrors(t *testing.T) {
	dir := t.TempDir()
	if err := Convert(filepath.Join(dir, "x.qcow2"), filepath.Join(dir, "missing.raw")); err == nil {
		t.Error("missing input: no error")
	}
	empty := filepath.Join(dir, "empty.raw")
	os.WriteFile(empty, nil, 0o644)
	err := Convert(filepath.Join(dir, "x.qcow2"), empty)
	if err == nil || !strings.Contains(err.Error(), empty) {
		t.Errorf("empty input: got %v, want an error naming it", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
}

// BenchmarkConvert converts a 2 GiB sparse image holding ~200 MB of data
// with ours and with `qemu-img convert -O qcow2`, reporting ours/theirs.
func BenchmarkConvert(b *testing.B) {
	qemuImg := testutil.NeedTool(b, "qemu-img")
	dir := b.TempDir()
	var exts []extent
	for i := range 10 {
		exts = append(exts, extent{int64(i) * 200 * MiB, rnd(uint64(i), 20*MiB)})
	}
	raw := rawImage(b, dir, 2048*MiB, exts)
	ours, theirs := filepath.Join(dir, "ours.qcow2"), filepath.Join(dir, "theirs.qcow2")
	var tOurs, tTheirs time.Duration
	for b.Loop() {
		s := time.Now()
		if err := Convert(ours, raw); err != nil {
			b.Fatal(err)
		}
		tOurs += time.Since(s)
		s = time.Now()
		if out, err := exec.Command(qemuImg, "convert", "-f", "raw", "-O", "qcow2", raw, theirs).CombinedOutput(); err != nil {
			b.Fatalf("qemu-img convert: %v\n%s", err, out)
		}
		tTheirs += time.Since(s)
	}
	so, _ := os.Stat(ours)
	st, _ := os.Stat(theirs)
	b.ReportMetric(float64(tOurs)/float64(tTheirs), "time-ratio")
	b.ReportMetric(float64(so.Size())/float64(st.Size()), "size-ratio")
	b.ReportMetric(float64(tOurs.Milliseconds())/float64(b.N), "ours-ms/op")
	b.ReportMetric(float64(tTheirs.Milliseconds())/float64(b.N), "qemu-img-ms/op")
	if a, c := mustRead(b, ours), mustRead(b, theirs); bytes.Equal(a, c) {
		b.Log("byte-identical to qemu-img's output")
	}
}

func mustRead(b *testing.B, p string) []byte {
	d, err := os.ReadFile(p)
	if err != nil {
		b.Fatal(err)
	}
	return d
}
