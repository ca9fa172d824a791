//go:build e2e

package stage2

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/image/fat"
)

// v6DropIn keeps DHCPv4 on eth0, asks for DHCPv6 and adds a static IPv6
// address and route.
const v6DropIn = `apiVersion: basalt.dev/v1alpha1
kind: DeviceConfig
network:
  interfaces:
    eth0:
      dhcp4: true
      dhcp6: true
      addresses: ["fd00:5::10/64"]
      routes: [{to: "fd00:6::/64", via: "fd00:5::1"}]
`

// addBootFile writes name into the e2e disk's boot FAT.
func addBootFile(t *testing.T, img, name, content string) {
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = fat.AddFile(f, 2048*512, 64*MiB, name, []byte(content), 1700000000)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestE2EIPv6: QEMU user networking (restrict=on) sends router
// advertisements for fec0::/64 with the managed and other-config flags
// clear. The device accepts the RA (SLAAC: a global fec0:: address on
// eth0, default route via the router); with dhcp6: true it solicits
// addresses, gets no answer, and falls back to an information request
// (which slirp with restrict=on does not answer either, so DNS learned by
// DHCPv6 is not exercised here); the config's static IPv6 address and
// route are in place.
func TestE2EIPv6(t *testing.T) {
	img, rd := prepare(t, x86_64, "basalt-data")
	addBootFile(t, img, contract.BootConfigDir+"/50-v6.yaml", v6DropIn)
	v := bootVM(t, x86_64, img, rd, nil, "")
	v.expect(t, "basalt: ready", "probe: resolv.conf nameservers", "poweroff now")
	v.m.Wait()
	log := v.m.Log()
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "eth0") || strings.Contains(l, "dhcp") || strings.Contains(l, "probe: ipv6") || strings.Contains(l, "probe: resolv") {
			t.Log(strings.TrimSpace(l))
		}
	}
	for _, re := range []string{
		`probe: eth0 addresses \[.*fec0::[0-9a-f:]+/64`, // SLAAC
		`probe: eth0 addresses \[.*fd00:5::10/64`,       // static
		`probe: ipv6 routes \[.*fd00:6::/64 via fd00:5::1 dev eth0`,
		`basalt: eth0: ipv6 router advertisement \(managed false, other false\): dhcp6 stateful`,
		`basalt: eth0: ipv6 \[fec0::[0-9a-f:]+/64\]`,
		`basalt: eth0: dhcp6 stateful: .*; trying stateless`,
		`basalt: eth0: dhcp6 stateless: `,
		`probe: ipv6 routes \[.*::/0 via fe80::2 dev eth0`,
	} {
		if !regexp.MustCompile(re).MatchString(log) {
			t.Errorf("console does not match %s", re)
		}
	}
	if t.Failed() {
		t.Log(log)
	}
}

// TestE2EIPv6NoDHCP6 is the negative twin: without dhcp6: true the RA's
// clear flags mean no DHCPv6 client (dhcp6 none); the RA still gives a
// SLAAC address, and no IPv6 DNS server reaches resolv.conf.
func TestE2EIPv6NoDHCP6(t *testing.T) {
	img, rd := prepare(t, x86_64, "basalt-data")
	addBootFile(t, img, contract.BootConfigDir+"/50-v6.yaml", strings.Replace(v6DropIn, "      dhcp6: true\n", "", 1))
	v := bootVM(t, x86_64, img, rd, nil, "")
	v.expect(t, "basalt: ready", "probe: resolv.conf nameservers", "poweroff now")
	v.m.Wait()
	log := v.m.Log()
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "eth0") || strings.Contains(l, "probe: resolv") {
			t.Log(strings.TrimSpace(l))
		}
	}
	for _, re := range []string{`probe: eth0 addresses \[.*fec0::[0-9a-f:]+/64`, `router advertisement \(managed false, other false\): dhcp6 none`} {
		if !regexp.MustCompile(re).MatchString(log) {
			t.Errorf("console does not match %s", re)
		}
	}
	if strings.Contains(log, "basalt: eth0: dhcp6 ") || regexp.MustCompile(`probe: resolv.conf nameservers \[.*fec0::3`).MatchString(log) {
		t.Errorf("DHCPv6 ran or its DNS arrived without dhcp6: true:\n%s", log)
	}
}
