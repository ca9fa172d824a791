package datapart

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Device is a partition found by its GPT name, with the disk it is on.
type Device struct {
	Part    string // /dev/vda4
	Disk    string // /dev/vda
	PartNum int
}

// Find looks for the partition named label (PARTNAME in sysfs uevent)
// under sysBlock (/sys/class/block); device nodes are under devDir (/dev).
func Find(sysBlock, devDir, label string) (Device, error) {
	ents, err := os.ReadDir(sysBlock)
	if err != nil {
		return Device{}, fmt.Errorf("find partition %s: %w", label, err)
	}
	for _, e := range ents {
		ue, err := os.ReadFile(filepath.Join(sysBlock, e.Name(), "uevent"))
		if err != nil {
			continue
		}
		kv := map[string]string{}
		for _, l := range strings.Split(string(ue), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				kv[k] = v
			}
		}
		if kv["DEVTYPE"] != "partition" || kv["PARTNAME"] != label {
			continue
		}
		n, err := strconv.Atoi(kv["PARTN"])
		if err != nil {
			return Device{}, fmt.Errorf("partition %s (%s): PARTN %q", label, e.Name(), kv["PARTN"])
		}
		real, err := filepath.EvalSymlinks(filepath.Join(sysBlock, e.Name()))
		if err != nil {
			return Device{}, fmt.Errorf("partition %s: %w", label, err)
		}
		disk := filepath.Base(filepath.Dir(real))
		return Device{Part: filepath.Join(devDir, e.Name()), Disk: filepath.Join(devDir, disk), PartNum: n}, nil
	}
	return Device{}, fmt.Errorf("no partition labelled %s (PARTLABEL) in %s", label, sysBlock)
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

// GrowTable reads the GPT from f (a disk of size bytes) and, when the
// partition named label does not reach the end yet, rewrites it. It returns
// whether it wrote and the partition as it now is.
func GrowTable(f readerWriterAt, sync func() error, size, sectorSize int64, label string) (bool, Partition, error) {
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
