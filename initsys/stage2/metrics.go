package stage2

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/basaltos/basalt/initsys/boot"
)

// waitSteps wait on the network (DHCP) and NTP servers; the init's own
// time excludes them.
var waitSteps = map[string]bool{"network": true, "clock": true}

// ownTime is the sum of the step durations except the waiting ones.
func ownTime(results []boot.Result) time.Duration {
	var d time.Duration
	for _, r := range results {
		if !waitSteps[r.Name] {
			d += r.Duration
		}
	}
	return d
}

// vmRSS reads VmRSS (in bytes) from a /proc/PID/status.
func vmRSS(r io.Reader) (uint64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("VmRSS: unexpected %q", v)
			}
			kb, err := strconv.ParseUint(f[0], 10, 64)
			return kb << 10, err
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no VmRSS line")
}

// sinceKernelStart is CLOCK_BOOTTIME: the time since the kernel started.
func sinceKernelStart() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
