package fat

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/basaltos/basalt/image/tree"
	"github.com/basaltos/basalt/internal/testutil"
)

// BenchmarkWrite256MiB writes ~80 MB (three big files, 200 small ones) as a
// 256 MiB FAT32 with ours and with mkfs.vfat + mcopy -s from a host
// directory, and reports ours/theirs.
func BenchmarkWrite256MiB(b *testing.B) {
	mkfs := testutil.NeedTool(b, "mkfs.vfat")
	mcopy := testutil.NeedTool(b, "mcopy")
	const size = 256 * MiB
	src := b.TempDir()
	tr := tree.New(epoch)
	files := map[string][]byte{"vmlinuz": pseudo(1, 12*MiB), "initrd": pseudo(2, 60*MiB), "firmware.bin": pseudo(3, 6*MiB)}
	for i := range 200 {
		files[fmt.Sprintf("dtbs/vendor%d/board-%03d.dtb", i%10, i)] = pseudo(uint64(10+i), 10000)
	}
	var total int
	for p, d := range files {
		total += len(d)
		host := filepath.Join(src, "a", p)
		os.MkdirAll(filepath.Dir(host), 0o755)
		if err := os.WriteFile(host, d, 0o644); err != nil {
			b.Fatal(err)
		}
		if err := tr.AddHostFile("a/"+p, host, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	dir := b.TempDir()
	ours, theirs := filepath.Join(dir, "ours.img"), filepath.Join(dir, "theirs.img")
	var tOurs, tTheirs time.Duration
	for b.Loop() {
		os.Remove(ours)
		os.Remove(theirs)
		s := time.Now()
		f, err := os.Create(ours)
		if err != nil {
			b.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			b.Fatal(err)
		}
		if err := Write(f, size, tr, Options{Label: "BASALT", VolumeID: 1}); err != nil {
			b.Fatal(err)
		}
		f.Close()
		tOurs += time.Since(s)

		s = time.Now()
		if out, err := exec.Command(mkfs, "-C", "-F", "32", "-n", "BASALT", "-i", "00000001", theirs, fmt.Sprint(size/1024)).CombinedOutput(); err != nil {
			b.Fatalf("mkfs.vfat: %v\n%s", err, out)
		}
		if out, err := exec.Command(mcopy, "-s", "-i", theirs, filepath.Join(src, "a"), "::/").CombinedOutput(); err != nil {
			b.Fatalf("mcopy: %v\n%s", err, out)
		}
		tTheirs += time.Since(s)
	}
	b.ReportMetric(float64(tOurs)/float64(tTheirs), "time-ratio")
	b.ReportMetric(float64(tOurs.Milliseconds())/float64(b.N), "ours-ms/op")
	b.ReportMetric(float64(tTheirs.Milliseconds())/float64(b.N), "mkfs+mcopy-ms/op")
	b.ReportMetric(float64(total)/1e6, "MB-of-files")
}
