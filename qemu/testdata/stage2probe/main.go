// Command stage2probe stands in for stage 2 (/sbin/basalt-init in the slot
// root) in boot tests: it shows that switch_root ran, then stays up as PID 1.
package main

import (
	"fmt"
	"os"
	"strings"
	"time"
)

func main() {
	root := "unknown"
	data, _ := os.ReadFile("/proc/self/mounts")
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[1] == "/" {
			root = f[2] // the last mount on / is the one in use
		}
	}
	fmt.Printf("stage2probe: pid %d, / is %s\n", os.Getpid(), root)
	for {
		time.Sleep(time.Hour)
	}
}
