package flash

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/basaltos/basalt/image/disk"
)

// chunk is the write size: large enough for a card's erase blocks.
const chunk = 4 << 20

// head is what is written last: the partition table (MBR, or protective
// MBR and primary GPT) and the gap before the first partition. A card
// pulled out mid-flash then has no table and is not mistaken for a good
// basalt card.
const head = disk.Align

// blkZeroOut is BLKZEROOUT (_IO(0x12, 127)): the kernel zeroes a range of
// a block device (WRITE ZEROES, discard that reads back zeros, or written
// zeros), reading back zeros guaranteed.
const blkZeroOut = 0x127f

// Options tune a flash.
type Options struct {
	// Progress is called after each chunk with the bytes done (holes
	// included) of total.
	Progress func(done, total int64)
	// writerAt, in tests, stands between flash and the target (a card
	// that drops writes).
	writerAt func(*os.File) io.WriterAt
}

// Result is what a flash did.
type Result struct {
	// Size is the image size; Written the bytes written from the image's
	// data; Zeroed the hole bytes zeroed on a block device (a file's holes
	// need nothing: it was truncated).
	Size, Written, Zeroed int64
	SHA256                string
	Write, Verify         time.Duration
}

// Write writes the image at img onto t and verifies it. A block device is
// opened with O_EXCL (the kernel refuses it while mounted or open
// exclusively elsewhere); a regular file is truncated to the image size.
func Write(ctx context.Context, img string, t Target, o Options) (Result, error) {
	src, err := os.Open(img)
	if err != nil {
		return Result{}, err
	}
	defer src.Close()
	size, err := src.Seek(0, io.SeekEnd)
	if err != nil {
		return Result{}, err
	}
	if t.Block && t.Size < size {
		return Result{}, refuse("%s has %d bytes, the image %d: too small", t.Path, t.Size, size)
	}
	ext, err := disk.DataExtents(src, size)
	if err != nil {
		return Result{}, err
	}
	dst, err := openTarget(t, size)
	if err != nil {
		return Result{}, err
	}
	defer dst.Close()
	var w io.WriterAt = dst
	if o.writerAt != nil {
		w = o.writerAt(dst)
	}

	r := Result{Size: size}
	t0 := time.Now()
	buf := make([]byte, chunk)
	zeros := make([]byte, chunk)
	done := int64(0)
	i := 0 // the first extent that ends after done
	for done < size {
		if err := ctx.Err(); err != nil {
			return r, err
		}
		for i < len(ext) && ext[i].End <= done {
			i++
		}
		if i < len(ext) && ext[i].Start <= done { // data
			n := min(chunk, ext[i].End-done)
			if _, err := src.ReadAt(buf[:n], done); err != nil {
				return r, fmt.Errorf("%s: read at %d: %w", img, done, err)
			}
			from := max(done, head) // the head is written last
			if end := done + n; from < end {
				if err := writeFull(w, buf[from-done:n], from); err != nil {
					return r, fmt.Errorf("%s: write at %d: %w", t.Path, from, err)
				}
				r.Written += end - from
			}
			done += n
		} else { // a hole up to the next extent
			end := size
			if i < len(ext) {
				end = ext[i].Start
			}
			n := min(chunk, end-done)
			if t.Block {
				if err := zeroOut(dst, w, done, n, zeros); err != nil {
					return r, fmt.Errorf("%s: zero %d bytes at %d: %w", t.Path, n, done, err)
				}
				r.Zeroed += n
			}
			done += n
		}
		if o.Progress != nil {
			o.Progress(done, size)
		}
	}
	hb := make([]byte, min(head, size))
	if _, err := src.ReadAt(hb, 0); err != nil {
		return r, fmt.Errorf("%s: read the partition table: %w", img, err)
	}
	if err := writeFull(w, hb, 0); err != nil {
		return r, fmt.Errorf("%s: write the partition table: %w", t.Path, err)
	}
	r.Written += int64(len(hb))
	if err := dst.Sync(); err != nil {
		return r, fmt.Errorf("%s: fsync: %w", t.Path, err)
	}
	r.Write = time.Since(t0)

	// The image's sha256 is computed while the card is read back (two
	// streams, two cores), not in the write loop: hashing the holes would
	// make writing slower than dd.
	t1 := time.Now()
	sum := make(chan error, 1)
	go func() {
		h := sha256.New()
		_, err := io.Copy(h, io.NewSectionReader(src, 0, size))
		r.SHA256 = hex.EncodeToString(h.Sum(nil))
		sum <- err
	}()
	got, err := readBack(dst, size)
	if herr := <-sum; herr != nil {
		return r, fmt.Errorf("%s: hash: %w", img, herr)
	}
	if err != nil {
		return r, fmt.Errorf("%s: read back: %w", t.Path, err)
	}
	r.Verify = time.Since(t1)
	if got != r.SHA256 {
		return r, fmt.Errorf("verify failed: the first %d bytes of %s have sha256 %s, the image %s: the write did not land (a failing or fake-capacity card?)", size, t.Path, got, r.SHA256)
	}
	return r, nil
}

// openTarget opens t for writing: O_EXCL on a block device, a file
// truncated to size (its holes then read as zeros).
func openTarget(t Target, size int64) (*os.File, error) {
	flag := os.O_RDWR
	if t.Block {
		flag |= unix.O_EXCL
	}
	f, err := os.OpenFile(t.Path, flag, 0)
	switch {
	case errors.Is(err, syscall.EBUSY):
		return nil, refuse("%s is in use (the kernel refused an exclusive open: mounted, or opened by another program)", t.Path)
	case errors.Is(err, os.ErrPermission):
		return nil, permission(t.Path, err)
	case err != nil:
		return nil, err
	}
	if !t.Block {
		err := f.Truncate(0)
		if err == nil {
			err = f.Truncate(size)
		}
		if err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// permission says which permission is missing to write path.
func permission(path string, err error) error {
	var st unix.Stat_t
	who := fmt.Sprintf("uid %d, gid %d", os.Getuid(), os.Getgid())
	if unix.Stat(path, &st) != nil {
		return fmt.Errorf("%s: %w (you are %s)", path, err, who)
	}
	return fmt.Errorf("%s: %w: writing it needs write permission on the node (owner uid %d, group gid %d, mode %04o; you are %s): run as root, or join the group that owns it (often \"disk\")",
		path, err, st.Uid, st.Gid, st.Mode&0o7777, who)
}

func writeFull(w io.WriterAt, p []byte, off int64) error {
	n, err := w.WriteAt(p, off)
	if err == nil && n != len(p) {
		err = io.ErrShortWrite
	}
	return err
}

// zeroOut zeroes [off, off+n) of a block device: BLKZEROOUT, else zeros
// written through w.
func zeroOut(f *os.File, w io.WriterAt, off, n int64, zeros []byte) error {
	rng := [2]uint64{uint64(off), uint64(n)}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), blkZeroOut, uintptr(unsafe.Pointer(&rng[0]))); e == 0 {
		return nil
	}
	return writeFull(w, zeros[:n], off)
}

// readBack hashes the first size bytes of f as the medium has them: the
// page cache is dropped first (BLKFLSBUF on a block device, FADV_DONTNEED
// on a file) so that the reads reach the card.
func readBack(f *os.File, size int64) (string, error) {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKFLSBUF, 0); e != 0 {
		unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
