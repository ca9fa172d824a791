package flash

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/image/disk"
	"github.com/basaltos/basalt/internal/testutil"
)

// benchImage is a 256 MiB MBR image with 48 MiB of pseudo-random data in
// three places and holes elsewhere (a built image is ~20 % data).
func benchImage(b *testing.B) string {
	b.Helper()
	p := filepath.Join(b.TempDir(), "img")
	l := disk.Layout{Scheme: disk.MBR, DiskID: 1, Partitions: []disk.Partition{
		{Name: contract.PartBoot, MBRType: disk.MBRTypeFAT32LBA, Bootable: true, Size: 64 << 20},
		{Name: contract.PartRootA, MBRType: disk.MBRTypeLinux, Size: 128 << 20},
		{Name: contract.PartData, MBRType: disk.MBRTypeLinux, Size: 62 << 20},
	}}
	seed := uint64(1)
	rnd := func(n int) []byte {
		out := make([]byte, n)
		for i := range out {
			seed = seed*6364136223846793005 + 1442695040888963407
			out[i] = byte(seed >> 56)
		}
		return out
	}
	err := disk.Write(p, l, func(part disk.Partition, w io.WriterAt) error {
		_, err := w.WriteAt(rnd(16<<20), 0)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// nonZero counts the bytes of img in 4 KiB blocks that are not all zero.
func nonZero(b *testing.B, img string) int64 {
	data, err := os.ReadFile(img)
	if err != nil {
		b.Fatal(err)
	}
	zero := make([]byte, 4096)
	var n int64
	for off := 0; off < len(data); off += 4096 {
		if !bytes.Equal(data[off:min(off+4096, len(data))], zero[:min(4096, len(data)-off)]) {
			n += 4096
		}
	}
	return n
}

// benchFlash flashes img onto target b.N times with ours (write + fsync,
// then the read-back verify apart) and with dd bs=4M conv=fsync (and
// conv=sparse on a file, which skips zero blocks as ours skips holes),
// reporting ours/dd for the write and MB/s of both.
func benchFlash(b *testing.B, img, target string, ddFlags ...string) {
	dd := testutil.NeedTool(b, "dd")
	fi, _ := os.Stat(img)
	var tOurs, tVerify, tDD time.Duration
	var written int64
	for b.Loop() {
		tg, err := Check(target)
		if err != nil {
			b.Fatal(err)
		}
		r, err := Write(context.Background(), img, tg, Options{})
		if err != nil {
			b.Fatal(err)
		}
		tOurs += r.Write
		tVerify += r.Verify
		written = r.Written
		s := time.Now()
		args := append([]string{"if=" + img, "of=" + target, "bs=4M", "status=none"}, ddFlags...)
		if out, err := exec.Command(dd, args...).CombinedOutput(); err != nil {
			b.Fatalf("dd: %v\n%s", err, out)
		}
		tDD += time.Since(s)
	}
	n := float64(b.N)
	b.ReportMetric(float64(tOurs)/float64(tDD), "time-ratio")
	b.ReportMetric(float64(fi.Size())/1e6/(tOurs.Seconds()/n), "ours-MB/s")
	b.ReportMetric(float64(fi.Size())/1e6/(tDD.Seconds()/n), "dd-MB/s")
	b.ReportMetric(float64(tVerify.Milliseconds())/n, "verify-ms/op")
	b.ReportMetric(float64(written)/1e6, "written-MB")
	b.ReportMetric(float64(nonZero(b, img))/1e6, "nonzero-MB")
}

func BenchmarkFlashFile(b *testing.B) {
	img := benchImage(b)
	dst := filepath.Join(b.TempDir(), "card")
	os.WriteFile(dst, nil, 0o644)
	benchFlash(b, img, dst, "conv=sparse,fsync")
}

func BenchmarkFlashLoop(b *testing.B) {
	if os.Getuid() != 0 {
		b.Skip("loop devices need root")
	}
	img := benchImage(b)
	back := filepath.Join(b.TempDir(), "card")
	os.WriteFile(back, nil, 0o644)
	os.Truncate(back, 300<<20)
	out, err := exec.Command(testutil.NeedTool(b, "losetup"), "-f", "--show", back).Output()
	if err != nil {
		b.Skipf("losetup: %v", err)
	}
	dev := string(bytes.TrimSpace(out))
	b.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	benchFlash(b, img, dev, "conv=fsync")
}
