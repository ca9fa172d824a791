// Command hello is the entrypoint of the containerd proof's test image
// (containerd-proof-hello:1, made by the e2e test): it prints the marker
// with what shows it runs in a container (its PID, cgroup, the root's
// mount).
package main

import (
	"fmt"
	"os"
	"strings"
)

func main() {
	cg, _ := os.ReadFile("/proc/self/cgroup")
	mnt := ""
	if b, err := os.ReadFile("/proc/self/mounts"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 2 && f[1] == "/" {
				mnt = f[2]
			}
		}
	}
	fmt.Printf("basalt-containerd-proof: hello from a container: pid %d, cgroup %s, root fs %s\n",
		os.Getpid(), strings.TrimSpace(string(cg)), mnt)
}
