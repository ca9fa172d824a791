package say

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// handoffName names the memfd that carries stage 1's lines into stage 2:
// switch_root execs stage 2 with an empty environment and a fresh root, so
// an inherited descriptor is the one thing that crosses.
const handoffName = "basalt-stage1-log"

// HandOff puts the lines said so far in a memfd that stays open across
// exec, for stage 2's Logger to Inherit (TakeHandOff).
func HandOff() error {
	fd, err := unix.MemfdCreate(handoffName, 0) // no MFD_CLOEXEC: it must cross exec
	if err != nil {
		return fmt.Errorf("memfd: %w", err)
	}
	if _, err := unix.Write(fd, Early()); err != nil {
		unix.Close(fd)
		return fmt.Errorf("memfd: %w", err)
	}
	return nil
}

// TakeHandOff finds stage 1's memfd among the inherited descriptors, adds
// its lines in front of the kept log's early lines and closes it. Without
// one (stage 2 started some other way) it does nothing.
func TakeHandOff() error {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("stage 1 lines: %w", err)
	}
	for _, e := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil || target != "/memfd:"+handoffName+" (deleted)" {
			continue
		}
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f := os.NewFile(uintptr(fd), handoffName)
		b, err := os.ReadFile("/proc/self/fd/" + e.Name()) // the memfd's own offset is at its end
		f.Close()
		if err != nil {
			return fmt.Errorf("stage 1 lines: %w", err)
		}
		current().Inherit(b)
	}
	return nil
}
