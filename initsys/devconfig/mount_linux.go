package devconfig

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// MountSeed mounts a seed volume found by FindSeed read-only at dir.
func MountSeed(dev, fstype, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mount seed %s: %w", dev, err)
	}
	if err := unix.Mount(dev, dir, fstype, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount seed %s on %s: %w", dev, dir, err)
	}
	return nil
}
