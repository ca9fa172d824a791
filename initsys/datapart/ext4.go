package datapart

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Superblock is what growth needs from an ext4 superblock.
type Superblock struct {
	BlockSize   int64
	BlocksCount uint64
	Label       string
}

// ext4IocResizeFS is EXT4_IOC_RESIZE_FS, _IOW('f', 16, __u64).
const ext4IocResizeFS = 0x40086610

// ReadSuperblock reads the ext4 superblock at offset 1024 of r.
func ReadSuperblock(r io.ReaderAt) (Superblock, error) {
	sb := make([]byte, 1024)
	if _, err := r.ReadAt(sb, 1024); err != nil {
		return Superblock{}, fmt.Errorf("read ext4 superblock: %w", err)
	}
	if binary.LittleEndian.Uint16(sb[56:]) != 0xEF53 {
		return Superblock{}, fmt.Errorf("no ext4 superblock (magic %#x)", binary.LittleEndian.Uint16(sb[56:]))
	}
	logBS := binary.LittleEndian.Uint32(sb[24:])
	if logBS > 6 {
		return Superblock{}, fmt.Errorf("ext4 block size 2^(10+%d)", logBS)
	}
	n := uint64(binary.LittleEndian.Uint32(sb[4:]))
	if binary.LittleEndian.Uint32(sb[96:])&0x80 != 0 { // INCOMPAT_64BIT
		n |= uint64(binary.LittleEndian.Uint32(sb[0x150:])) << 32
	}
	label := sb[120:136]
	for i, c := range label {
		if c == 0 {
			label = label[:i]
			break
		}
	}
	return Superblock{BlockSize: 1024 << logBS, BlocksCount: n, Label: string(label)}, nil
}

// GrowFS grows the ext4 filesystem on part, mounted at mountpoint, to fill
// the partition (online, EXT4_IOC_RESIZE_FS). It returns the block counts
// before and after; equal when there was nothing to do. steps > 1 grows in
// that many equal resizes, calling progress with the block count after
// each but the last (a debug aid: power-cut tests cut half way); growth
// interrupted at any point resumes on the next call.
func GrowFS(part, mountpoint string, steps int, progress func(blocks uint64)) (before, after uint64, bs int64, err error) {
	f, err := os.Open(part)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("grow filesystem: %w", err)
	}
	sb, err := ReadSuperblock(f)
	if err != nil {
		f.Close()
		return 0, 0, 0, fmt.Errorf("grow filesystem on %s: %w", part, err)
	}
	size, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKGETSIZE64)
	f.Close()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("grow filesystem: size of %s: %w", part, err)
	}
	want := uint64(int64(size) / sb.BlockSize)
	if want <= sb.BlocksCount {
		return sb.BlocksCount, sb.BlocksCount, sb.BlockSize, nil
	}
	d, err := os.Open(mountpoint)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("grow filesystem: %w", err)
	}
	defer d.Close()
	for _, n := range growSizes(sb.BlocksCount, want, steps) {
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, d.Fd(), ext4IocResizeFS, uintptr(unsafe.Pointer(&n))); e != 0 {
			return sb.BlocksCount, sb.BlocksCount, sb.BlockSize, fmt.Errorf("grow filesystem at %s to %d blocks: EXT4_IOC_RESIZE_FS: %w", mountpoint, n, e)
		}
		if n != want && progress != nil {
			progress(n)
		}
	}
	return sb.BlocksCount, want, sb.BlockSize, nil
}

// growSizes are the block counts of steps equal resizes from have to want
// (one resize for steps < 2), the last being want.
func growSizes(have, want uint64, steps int) []uint64 {
	if steps < 2 {
		return []uint64{want}
	}
	var out []uint64
	for i := 1; i <= steps; i++ {
		out = append(out, have+(want-have)*uint64(i)/uint64(steps))
	}
	return out
}
