// Command probe is a test service for stage 2's e2e tests: "crash" exits 1
// at once; "probe" waits until the crasher has been restarted three times,
// checks that /var persists and / is read-only, shows the hostname and the
// files the device config wrote, prints `basalt-init status`
// and powers off.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "crash" {
		fmt.Println("crashing on purpose")
		os.Exit(1)
	}
	for i := 0; i < 600; i++ {
		out, _ := exec.Command("/sbin/basalt-init", "status").CombinedOutput()
		if strings.Contains(string(out), "ready:    true") && strings.Contains(string(out), "restarts 3") {
			break
		}
		time.Sleep(time.Second)
	}
	if _, err := os.Stat("/var/probe"); err == nil {
		fmt.Println("probe: var file present")
	} else if err := os.WriteFile("/var/probe", []byte("x"), 0o644); err == nil {
		fmt.Println("probe: var file created")
	} else {
		fmt.Println("probe: var file:", err)
	}
	host, _ := os.Hostname()
	fmt.Println("probe: hostname", host)
	for _, f := range []string{"/var/lib/e2e/hello", "/etc/basalt-e2e-baked"} {
		b, err := os.ReadFile(f)
		fi, serr := os.Stat(f)
		if err != nil || serr != nil {
			fmt.Println("probe:", f, err, serr)
			continue
		}
		fmt.Printf("probe: %s %v %q\n", f, fi.Mode(), b)
	}
	err := os.WriteFile("/root-probe", []byte("x"), 0o644)
	fmt.Println("probe: root write:", err)
	out, err := exec.Command("/sbin/basalt-init", "status").CombinedOutput()
	fmt.Printf("%s", out)
	fmt.Println("probe: status done", err)
	out, err = exec.Command("/sbin/basalt-init", "config", "reload").CombinedOutput()
	fmt.Printf("%s", out)
	fmt.Println("probe: config reload done", err)
	if err := exec.Command("/sbin/basalt-init", "poweroff").Run(); err != nil {
		fmt.Println("probe: poweroff:", err)
	}
}
