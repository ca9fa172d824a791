package datapart

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/basaltos/basalt/initsys/blockdev"
)

// Device is a partition found by its GPT name, with the disk it is on.
type Device struct {
	Part    string // /dev/vda4
	Disk    string // /dev/vda
	PartNum int
}

// DeviceOf is the partition d (from blockdev.List) with its device nodes
// under devDir (/dev).
func DeviceOf(d blockdev.Dev, devDir string) Device {
	return Device{Part: d.Path(devDir), Disk: filepath.Join(devDir, d.Disk), PartNum: d.PartN}
}

// GrowPartition makes the partition at dev end at the end of its disk:
// rewrites the GPT when needed and tells the kernel the new size with
// BLKPG_RESIZE_PARTITION when its view differs. It reports what it did.
func GrowPartition(dev Device, label string) (string, error) {
	f, err := os.OpenFile(dev.Disk, os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("grow %s: %w", label, err)
	}
	defer f.Close()
	size, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKGETSIZE64)
	if err != nil {
		return "", fmt.Errorf("grow %s: size of %s: %w", label, dev.Disk, err)
	}
	ss, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
	if err != nil {
		return "", fmt.Errorf("grow %s: sector size of %s: %w", label, dev.Disk, err)
	}
	did, p, err := GrowTable(f, f.Sync, int64(size), int64(ss), label)
	if err != nil {
		return "", fmt.Errorf("grow %s on %s: %w", label, dev.Disk, err)
	}
	msg := "table already grown"
	if did {
		msg = "table rewritten"
	}
	start, length := int64(p.FirstLBA)*int64(ss), int64(p.LastLBA-p.FirstLBA+1)*int64(ss)
	cur, err := kernelSize(dev.Part)
	if err != nil {
		return msg, fmt.Errorf("grow %s: %w", label, err)
	}
	if cur == length {
		return msg + ", kernel up to date", nil
	}
	bp := unix.BlkpgPartition{Start: start, Length: length, Pno: int32(dev.PartNum)}
	arg := unix.BlkpgIoctlArg{Op: unix.BLKPG_RESIZE_PARTITION, Datalen: int32(unsafe.Sizeof(bp)), Data: (*byte)(unsafe.Pointer(&bp))}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKPG, uintptr(unsafe.Pointer(&arg))); e != 0 {
		return msg, fmt.Errorf("grow %s: BLKPG resize partition %d of %s: %w", label, dev.PartNum, dev.Disk, e)
	}
	return fmt.Sprintf("%s, kernel told %d -> %d bytes", msg, cur, length), nil
}

// GrowTable reads the MBR or GPT from f (a disk of size bytes) and, when the
// partition named label does not reach the end yet, rewrites it. It returns
// whether it wrote and the partition as it now is.
func GrowTable(f readerWriterAt, sync func() error, size, sectorSize int64, label string) (bool, Partition, error) {
	if did, p, err := growMBR(f, sync, size, sectorSize, label); !errors.Is(err, errNoMBR) {
		return did, p, err // the Pi boards' MBR
	}
	t, err := ReadTable(f, size, sectorSize)
	if err != nil {
		return false, Partition{}, err
	}
	p, changed, err := t.Plan(size, label)
	if err != nil {
		return false, p, err
	}
	if !changed { // a cut may have come before the MBR's update
		return false, p, fixProtectiveMBR(f, size/sectorSize-1)
	}
	return true, p, t.Write(f, sync, size)
}

// kernelSize returns the size in bytes the kernel has for a partition.
func kernelSize(part string) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/sys/class/block", filepath.Base(part), "size"))
	if err != nil {
		return 0, fmt.Errorf("kernel size of %s: %w", part, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("kernel size of %s: %w", part, err)
	}
	return n * 512, nil
}
