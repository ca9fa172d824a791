package k3s

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// ErrNoDefaultRoute is what Precheck reports without an IPv4 default
// route: k3s picks its node IP from that route, and without one a real
// k3s came up IPv6-only without saying so.
var ErrNoDefaultRoute = fmt.Errorf("no IPv4 default route: k3s picks its node IP from it and would silently come up IPv6-only; " +
	"give an interface dhcp4 with a router, or gateway4 (network.interfaces.NAME.gateway4)")

// DefaultRoute returns the interface of the IPv4 default route in the
// kernel's route table (/proc/net/route), "" when there is none.
func DefaultRoute(procNetRoute string) (string, error) {
	f, err := os.Open(procNetRoute)
	if err != nil {
		return "", fmt.Errorf("route table: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header: Iface Destination Gateway Flags ...
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		// Destination and Mask 00000000 is the default route; flag 0x1 is RTF_UP.
		if len(fl) >= 8 && fl[1] == "00000000" && fl[7] == "00000000" && hexFlag(fl[3])&1 != 0 {
			return fl[0], nil
		}
	}
	return "", sc.Err()
}

func hexFlag(s string) int {
	var n int
	fmt.Sscanf(s, "%x", &n)
	return n
}
