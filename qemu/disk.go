package qemu

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

var qcow2Magic = []byte{'Q', 'F', 'I', 0xfb}

// DetectFormat returns QCOW2 when the file starts with the qcow2 magic, else
// Raw, with the disk's virtual size.
func DetectFormat(image string) (Format, int64, error) {
	f, err := os.Open(image)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	hdr := make([]byte, 32)
	n, err := io.ReadFull(f, hdr)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", 0, fmt.Errorf("%s: %w", image, err)
	}
	if n == len(hdr) && bytes.Equal(hdr[:4], qcow2Magic) {
		return QCOW2, int64(binary.BigEndian.Uint64(hdr[24:32])), nil
	}
	st, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	return Raw, st.Size(), nil
}

// growDisk makes a disk of size bytes in dir that starts with image: a qcow2
// overlay backed by image when qemu-img is there, else a sparse raw copy.
func growDisk(image string, format Format, virtual, size int64, dir string) (string, Format, error) {
	if size < virtual {
		return "", "", fmt.Errorf("disk size %d is smaller than image %s (%d bytes)", size, image, virtual)
	}
	abs, err := filepath.Abs(image)
	if err != nil {
		return "", "", err
	}
	if qimg, err := exec.LookPath("qemu-img"); err == nil {
		out := filepath.Join(dir, "disk.qcow2")
		cmd := exec.Command(qimg, "create", "-q", "-f", "qcow2", "-F", string(format), "-b", abs, out, fmt.Sprint(size))
		if msg, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("qemu-img create overlay of %s: %w: %s", image, err, msg)
		}
		return out, QCOW2, nil
	}
	if format != Raw {
		return "", "", fmt.Errorf("growing %s image %s needs qemu-img (Debian package qemu-utils)", format, image)
	}
	out := filepath.Join(dir, "disk.raw")
	if err := sparseCopy(abs, out, size); err != nil {
		return "", "", fmt.Errorf("copy %s: %w", image, err)
	}
	return out, Raw, nil
}

// sparseCopy copies src to dst, leaving holes for all-zero blocks, and
// extends dst to size.
func sparseCopy(src, dst string, size int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	var off int64
	for {
		n, rerr := io.ReadFull(in, buf)
		if n > 0 && !allZero(buf[:n]) {
			if _, err := out.WriteAt(buf[:n], off); err != nil {
				out.Close()
				return err
			}
		}
		off += int64(n)
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			out.Close()
			return rerr
		}
	}
	if err := out.Truncate(size); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// copyFile copies a firmware vars template into the VM's directory.
func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}
