// Command probe is a test service for stage 2's e2e tests: "crash" exits 1
// at once; "probe" waits until the crasher has been restarted three times
// and the init reports an IPv6 SLAAC address (up to 30 s), checks that
// /var persists and / is read-only, shows the hostname, eth0's addresses,
// the default route, the IPv6 routes via a gateway, the resolv.conf
// nameservers and the files the device config wrote (under /var/lib/e2e
// and /etc/basalt-e2e-baked), prints `basalt-init status`, runs a config
// reload and powers off. It also counts the init's lines in the kernel
// log (/dev/kmsg).
package main

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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
	// QEMU's user network sends IPv6 router advertisements (fec0::/64):
	// wait until the init reports the SLAAC address, which it does after
	// any DHCPv6 exchange.
	for i := 0; i < 30; i++ {
		out, _ := exec.Command("/sbin/basalt-init", "status").CombinedOutput()
		if strings.Contains(string(out), "fec0:") {
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
	if ifc, err := net.InterfaceByName("eth0"); err != nil {
		fmt.Println("probe: eth0:", err)
	} else {
		addrs, err := ifc.Addrs()
		fmt.Println("probe: eth0 addresses", addrs, err)
	}
	fmt.Println("probe: default route", defaultRoute())
	fmt.Println("probe: ipv6 routes", ipv6Routes())
	fmt.Println("probe: resolv.conf nameservers", nameservers())
	var files []string
	filepath.WalkDir("/var/lib/e2e", func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	for _, f := range append(files, "/etc/basalt-e2e-baked") {
		b, err := os.ReadFile(f)
		fi, serr := os.Stat(f)
		if err != nil || serr != nil {
			fmt.Println("probe:", f, err, serr)
			continue
		}
		fmt.Printf("probe: %s %v %q\n", f, fi.Mode(), b)
	}
	n, first := kmsgLines()
	fmt.Printf("probe: kmsg has %d init lines, first %q\n", n, first)
	err := os.WriteFile("/root-probe", []byte("x"), 0o644)
	fmt.Println("probe: root write:", err)
	err = os.WriteFile("/root/.probe", []byte("x"), 0o600) // /root is on data
	fmt.Println("probe: root home write:", err)
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

// kmsgLines counts the kernel log's records from the init (message starting
// "basalt: ") and returns the first, read from /dev/kmsg like dmesg does.
func kmsgLines() (n int, first string) {
	f, err := os.OpenFile("/dev/kmsg", os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return 0, err.Error()
	}
	defer f.Close()
	buf := make([]byte, 8192)
	for {
		k, err := syscall.Read(int(f.Fd()), buf) // one record per read; EAGAIN at the end
		if err != nil || k <= 0 {
			if err == syscall.EPIPE { // overwritten records: go on with the next
				continue
			}
			return n, first
		}
		// "PRI,SEQ,USEC,FLAGS;message\n" then continuation lines.
		_, msg, _ := strings.Cut(string(buf[:k]), ";")
		msg, _, _ = strings.Cut(msg, "\n")
		if strings.HasPrefix(msg, "basalt: ") {
			if n == 0 {
				first = msg
			}
			n++
		}
	}
}

// defaultRoute is the IPv4 default route from /proc/net/route, "via GW dev
// IFACE", or "none".
func defaultRoute() string {
	b, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return err.Error()
	}
	for _, l := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) < 3 || f[1] != "00000000" {
			continue
		}
		var gw uint32
		fmt.Sscanf(f[2], "%X", &gw)
		return fmt.Sprintf("via %d.%d.%d.%d dev %s", byte(gw), byte(gw>>8), byte(gw>>16), byte(gw>>24), f[0])
	}
	return "none"
}

// ipv6Routes lists the IPv6 routes with a next hop from /proc/net/ipv6_route,
// "DST/LEN via NEXTHOP dev IFACE".
func ipv6Routes() []string {
	b, err := os.ReadFile("/proc/net/ipv6_route")
	if err != nil {
		return []string{err.Error()}
	}
	hexIP := func(s string) net.IP {
		ip := make(net.IP, 16)
		for i := range ip {
			fmt.Sscanf(s[2*i:2*i+2], "%02x", &ip[i])
		}
		return ip
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 10 || len(f[0]) != 32 || len(f[4]) != 32 || f[4] == strings.Repeat("0", 32) {
			continue
		}
		var plen int
		fmt.Sscanf(f[1], "%x", &plen)
		out = append(out, fmt.Sprintf("%s/%d via %s dev %s", hexIP(f[0]), plen, hexIP(f[4]), f[9]))
	}
	return out
}

// nameservers are the nameserver lines of /etc/resolv.conf.
func nameservers() []string {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "nameserver "); ok {
			out = append(out, v)
		}
	}
	return out
}
