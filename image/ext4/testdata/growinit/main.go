// Command growinit is the /init of the online-growth e2e test: it loads the
// virtio block modules, mounts /dev/vda (an image.ext4 filesystem smaller
// than the disk), grows it with EXT4_IOC_RESIZE_FS as the device does on
// first boot, writes a file, prints a marker and powers off.
package main

import (
	"fmt"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const ext4IocResizeFS = 0x40086610 // _IOW('f', 16, __u64)

func main() {
	if err := run(); err != nil {
		fmt.Println("BASALT-GROW-FAIL:", err)
	}
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

func run() error {
	os.MkdirAll("/dev", 0o755)
	if err := unix.Mount("devtmpfs", "/dev", "devtmpfs", 0, ""); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	for _, m := range []string{"virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci", "virtio_blk"} {
		f, err := os.Open("/lib/modules/" + m + ".ko")
		if err != nil {
			return err
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && err != unix.EEXIST {
			return fmt.Errorf("load %s: %w", m, err)
		}
	}
	var disk *os.File
	for i := 0; ; i++ {
		var err error
		if disk, err = os.Open("/dev/vda"); err == nil {
			break
		} else if i == 100 {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	size, err := unix.IoctlGetUint64(int(disk.Fd()), unix.BLKGETSIZE64)
	if err != nil {
		return fmt.Errorf("BLKGETSIZE64: %w", err)
	}
	os.MkdirAll("/mnt", 0o755)
	if err := unix.Mount("/dev/vda", "/mnt", "ext4", 0, ""); err != nil {
		return fmt.Errorf("mount /dev/vda: %w", err)
	}
	dir, err := os.Open("/mnt")
	if err != nil {
		return err
	}
	blocks := size / 4096
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, dir.Fd(), ext4IocResizeFS, uintptr(unsafe.Pointer(&blocks))); e != 0 {
		return fmt.Errorf("EXT4_IOC_RESIZE_FS to %d blocks: %w", blocks, e)
	}
	if err := os.WriteFile("/mnt/var/grown", make([]byte, 1<<20), 0o644); err != nil {
		return err
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/mnt", &st); err != nil {
		return err
	}
	dir.Close()
	if err := unix.Unmount("/mnt", 0); err != nil {
		return fmt.Errorf("unmount: %w", err)
	}
	fmt.Printf("BASALT-GROW-OK available blocks=%d\n", st.Blocks)
	return nil
}
