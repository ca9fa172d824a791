// Package readbench is `basalt-init readbench`, a diagnostic (make bench:
// qemu BenchmarkVerityRead): it reads the running slot's root sequentially
// twice, through dm-verity (contract/verity.MapperName) and from the raw
// partition under it, the same bytes each time from a cold page cache, and
// prints both throughputs and their ratio on one line. It only reads; it is
// no part of the boot.
package readbench

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/basaltos/basalt/contract/verity"
	"github.com/basaltos/basalt/initsys/blockdev"
	"github.com/basaltos/basalt/initsys/stage1"
)

// Marker starts the result line.
const Marker = "readbench: "

// Run measures the booted slot's root and writes the result line to w.
func Run(w io.Writer) error {
	cmd, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	c, err := stage1.ParseCmdline(string(cmd))
	if err != nil {
		return err
	}
	devs, err := blockdev.List("/sys")
	if err != nil {
		return err
	}
	found, err := blockdev.Find(devs, c.Slot.PartLabel())
	if err != nil {
		return err
	}
	raw := found[c.Slot.PartLabel()].Path("/dev")
	mapped := filepath.Join("/dev/mapper", verity.MapperName)
	if _, err := os.Stat(mapped); err != nil {
		return fmt.Errorf("root %s is not verified (%w): nothing to compare", c.Slot, err)
	}
	n, err := size(mapped)
	if err != nil {
		return err
	}
	rawT, err := readCold(raw, n)
	if err != nil {
		return err
	}
	verT, err := readCold(mapped, n)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%sslot %s, %d MiB: verity %.1f MB/s, raw %.1f MB/s, verity/raw %.3f\n", Marker, c.Slot, n>>20,
		mbps(n, verT), mbps(n, rawT), rawT.Seconds()/verT.Seconds())
	return nil
}

func mbps(n int64, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }

func size(dev string) (int64, error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Seek(0, io.SeekEnd)
}

// readCold drops the page cache and reads the first n bytes of dev in
// 1 MiB reads.
func readCold(dev string, n int64) (time.Duration, error) {
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		return 0, fmt.Errorf("drop the page cache: %w", err)
	}
	f, err := os.Open(dev)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	start := time.Now()
	got, err := io.CopyBuffer(io.Discard, io.LimitReader(onlyReader{f}, n), buf)
	d := time.Since(start)
	if err == nil && got != n {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("read %s: %w", dev, err)
	}
	return d, nil
}

// onlyReader hides *os.File's WriterTo (io.Copy would use it to sendfile).
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }
