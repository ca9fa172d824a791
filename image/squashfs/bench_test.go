//go:build unix

package squashfs

import (
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/basaltos/basalt/image/tree"
	"github.com/basaltos/basalt/internal/testutil"
)

// benchLevels are the zstd levels compared with mksquashfs: 3 is what basalt
// ships for root slots (image/build), 15 is mksquashfs's default; 1 and 6
// are the edges of klauspost/compress's other encoder levels.
var benchLevels = []int{3, 1, 6, 15}

// benchTree writes a ~270 MB mixed tree under dir: large compressible
// binaries, thousands of small text-like files and some duplicates.
func benchTree(b testing.TB, dir string) {
	b.Helper()
	write := func(p string, seed uint64, size int64) {
		must(b, os.MkdirAll(filepath.Dir(p), 0o755))
		f, err := os.Create(p)
		must(b, err)
		_, err = io.Copy(f, &genReader{rng: rand.New(rand.NewPCG(seed, 7)), left: size})
		must(b, err)
		must(b, f.Close())
	}
	for i := range 6 {
		write(filepath.Join(dir, "usr/lib", fmt.Sprintf("big%d.so", i)), uint64(100+i), 25<<20+int64(i)*12345)
	}
	write(filepath.Join(dir, "opt/copy-of-big0.so"), 100, 25<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 8000 {
		size := int64(rng.IntN(28 << 10))
		seed := uint64(i)
		if i%10 == 0 {
			seed = 7 // duplicates
			size = 9000
		}
		write(filepath.Join(dir, fmt.Sprintf("usr/share/d%02d/f%05d.txt", i%40, i)), seed, size)
	}
}

func hostTree(b testing.TB, dir string) *tree.Tree {
	tr := tree.New(epoch)
	must(b, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			return tr.Mkdir(rel, 0o755)
		}
		return tr.AddHostFile(rel, p, 0o644)
	}))
	return tr
}

// BenchmarkWriteVsMksquashfs writes the same ~270 MB tree with our writer and
// with mksquashfs at each zstd level, one sub-benchmark per level, and
// reports wall time, CPU time (user+sys) and size with their ratios. The
// mksquashfs options match ours: 128 KiB blocks, all cores, tails of large
// files packed into fragments (-always-use-fragments), duplicates found, no
// export table, no xattrs, root-owned files at the epoch.
// BASALT_BENCH_SQUASHFS_DIR names a host directory (regular files and
// directories only, e.g. an unpacked kernel package) to write instead of the
// generated tree.
func BenchmarkWriteVsMksquashfs(b *testing.B) {
	mk := testutil.NeedTool(b, "mksquashfs")
	src := os.Getenv("BASALT_BENCH_SQUASHFS_DIR")
	if src == "" {
		src = filepath.Join(b.TempDir(), "src")
		benchTree(b, src)
	}
	tr := hostTree(b, src)
	out := b.TempDir()
	for _, level := range benchLevels {
		b.Run(fmt.Sprintf("zstd-%d", level), func(b *testing.B) {
			var ours, ref, oursCPU, refCPU time.Duration
			var oursSize, refSize int64
			for range b.N {
				// Write to a plain file, as mksquashfs does: WriteFile's
				// fsync (~30 ms here) is a durability choice, not writing.
				start, cpu0 := time.Now(), cpuTime(b)
				f, err := os.Create(filepath.Join(out, "ours.sqfs"))
				must(b, err)
				st, err := Write(f, tr, Options{Level: level})
				must(b, err)
				must(b, f.Close())
				ours += time.Since(start)
				oursCPU += cpuTime(b) - cpu0
				oursSize = st.Size

				img := filepath.Join(out, "ref.sqfs")
				start = time.Now()
				cmd := exec.Command(mk, src, img, "-noappend", "-no-progress", "-quiet",
					"-comp", "zstd", "-Xcompression-level", fmt.Sprint(level), "-b", "131072",
					"-processors", fmt.Sprint(runtime.GOMAXPROCS(0)), "-always-use-fragments",
					"-no-exports", "-no-xattrs", "-all-root", "-all-time", fmt.Sprint(epoch),
					"-mkfs-time", fmt.Sprint(epoch), "-reproducible")
				if o, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("mksquashfs: %v\n%s", err, o)
				}
				ref += time.Since(start)
				refCPU += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
				fi, err := os.Stat(img)
				must(b, err)
				refSize = fi.Size()
			}
			n := float64(b.N)
			b.ReportMetric(ours.Seconds()/n, "ours-s")
			b.ReportMetric(ref.Seconds()/n, "mksquashfs-s")
			b.ReportMetric(ours.Seconds()/ref.Seconds(), "time-ratio")
			b.ReportMetric(oursCPU.Seconds()/refCPU.Seconds(), "cpu-ratio")
			b.ReportMetric(float64(oursSize), "ours-bytes")
			b.ReportMetric(float64(refSize), "mksquashfs-bytes")
			b.ReportMetric(float64(oursSize)/float64(refSize), "size-ratio")
		})
	}
}

// cpuTime returns the user+system CPU time this process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	must(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
