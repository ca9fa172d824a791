// Command updatebench is a test program, not part of basalt: BenchmarkUpdateApply
// (qemu/update_bench_e2e_test.go) runs it as a service of a QEMU VM to measure,
// in that same VM, the update's apply against a plain sequential write of the
// same bytes. On slot a it:
//
//  1. downloads the bundle at URL (the first argument) to the data partition;
//  2. writes its rootfs payload's bytes to slot b's partition the plain way
//     (4 MiB writes through the page cache, one fsync at the end: what
//     `dd bs=4M conv=fsync` does), the reference;
//     It also times reading the rootfs out of the file and hashing it,
//     each alone (what the apply does besides writing);
//  3. copies the rootfs payload from the bundle file to slot b the plain
//     way, cold (page cache dropped first): what `dd if=BUNDLE skip=...
//     of=SLOT bs=4M conv=fsync` does, the reference that reads the same
//     source the apply reads;
//  4. drops the page cache again and asks PID 1 to apply the downloaded file (the apply's own cost:
//     tar, sha256, write), then the URL with a reboot (the device's path).
//
// PID 1's step lines give the apply's times; this program prints its own
// ("updatebench: ..."). On slot b (the trial boot) it does nothing.
package main

import (
	"archive/tar"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/bundle"
	"github.com/basaltos/basalt/initsys/blockdev"
	"github.com/basaltos/basalt/initsys/update"
)

func main() {
	if err := run(os.Args[1]); err != nil {
		fmt.Println("updatebench: FAILED:", err)
		os.Exit(1)
	}
}

func run(url string) error {
	cmdline, _ := os.ReadFile("/proc/cmdline")
	if !strings.Contains(string(cmdline), contract.CmdlineSlot+"=a") {
		fmt.Println("updatebench: not on slot a: nothing to do")
		return nil
	}
	for i := 0; ; i++ {
		if _, err := os.Stat(update.Socket); err == nil {
			break
		} else if i > 600 {
			return err
		}
		time.Sleep(500 * time.Millisecond)
	}
	file := filepath.Join(contract.DataMountPoint, "updatebench.bundle")
	t0 := time.Now()
	n, err := download(url, file)
	if err != nil {
		return err
	}
	fmt.Printf("updatebench: downloaded %d bytes in %d ms\n", n, time.Since(t0).Milliseconds())

	// What the apply does besides writing, each alone: read the rootfs
	// out of the bundle file (tar), hash it.
	t0 = time.Now()
	root, err := rootfs(file)
	if err != nil {
		return err
	}
	fmt.Printf("updatebench: read %d bytes of rootfs from the bundle file in %d ms\n", len(root), time.Since(t0).Milliseconds())
	t0 = time.Now()
	sum := sha256.Sum256(root)
	fmt.Printf("updatebench: sha256 of %d bytes in %d ms (%x...)\n", len(root), time.Since(t0).Milliseconds(), sum[:4])
	devs, err := blockdev.List("/sys")
	if err != nil {
		return err
	}
	found, err := blockdev.Find(devs, contract.PartRootB)
	if err != nil {
		return err
	}
	dev := found[contract.PartRootB].Path("/dev")
	t0 = time.Now()
	if err := plainWrite(dev, root); err != nil {
		return err
	}
	fmt.Printf("updatebench: plain write of %d bytes to %s in %d ms\n", len(root), dev, time.Since(t0).Milliseconds())
	root = nil
	if err := dropCaches(); err != nil {
		return err
	}
	t0 = time.Now()
	n, err = plainCopy(file, dev)
	if err != nil {
		return err
	}
	fmt.Printf("updatebench: plain copy of %d bytes from the bundle file to %s in %d ms\n", n, dev, time.Since(t0).Milliseconds())

	for _, req := range []update.Request{{Source: file}, {Source: url, Reboot: true}} {
		kind := "file"
		if req.Reboot {
			kind = "url"
		}
		if err := dropCaches(); err != nil {
			return err
		}
		fmt.Printf("updatebench: apply %s %s\n", kind, req.Source)
		t0 = time.Now()
		rep, err := update.Ask(update.Socket, req, 30*time.Minute)
		if err == nil && rep.Error != "" {
			err = fmt.Errorf("%s", rep.Error)
		}
		if err != nil {
			return fmt.Errorf("apply %s: %w", req.Source, err)
		}
		fmt.Printf("updatebench: applied %s in %d ms\n", kind, time.Since(t0).Milliseconds())
	}
	return nil
}

// download GETs url into file (retrying while the network comes up).
func download(url, file string) (int64, error) {
	var resp *http.Response
	var err error
	for i := 0; i < 60; i++ {
		if resp, err = http.Get(url); err == nil {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, resp.Body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// rootfs reads the bundle's rootfs payload into memory.
func rootfs(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr, err := rootfsMember(f, file)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(tr)
}

// rootfsMember positions a tar reader of the bundle f at its rootfs payload.
func rootfsMember(f *os.File, file string) (*tar.Reader, error) {
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("%s: no %s: %w", file, bundle.RootFS, err)
		}
		if h.Name == bundle.RootFS {
			return tr, nil
		}
	}
}

// plainCopy copies the rootfs payload of the bundle file to dev in 4 MiB
// reads and writes, then fsyncs: dd's way, no hashing, no checks.
func plainCopy(file, dev string) (int64, error) {
	in, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	tr, err := rootfsMember(in, file)
	if err != nil {
		return 0, err
	}
	out, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	n, err := io.CopyBuffer(struct{ io.Writer }{out}, tr, make([]byte, 4<<20))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// dropCaches empties the page cache so the next read comes from the disk.
func dropCaches() error {
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
}

// plainWrite writes b to dev from offset 0 in 4 MiB writes, then fsyncs.
func plainWrite(dev string, b []byte) error {
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	for off := 0; off < len(b); off += 4 << 20 {
		if _, err := f.Write(b[off:min(off+4<<20, len(b))]); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
