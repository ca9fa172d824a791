package netup

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/basaltos/basalt/contract/config"
)

func TestWired(t *testing.T) {
	sys := t.TempDir()
	mk := func(name, typ string, device bool) {
		d := filepath.Join(sys, name)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "type"), []byte(typ+"\n"), 0o644)
		if device {
			os.Mkdir(filepath.Join(d, "device"), 0o755)
		}
	}
	mk("lo", "772", false)
	mk("eth1", "1", true)
	mk("enp0s3", "1", true)
	mk("cni0", "1", false)
	mk("wwan0", "519", true)
	got, err := Wired(sys)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"enp0s3", "eth1"}, got); diff != "" {
		t.Errorf("wired (-want +got):\n%s", diff)
	}
}

func TestResolv(t *testing.T) {
	got := Resolv([]string{"10.0.2.3", "1.1.1.1"}, []string{"lan"})
	want := "# written by basalt-init\nsearch lan\nnameserver 10.0.2.3\nnameserver 1.1.1.1\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resolv.conf (-want +got):\n%s", diff)
	}
}

func TestIfaceConfig(t *testing.T) {
	no, pat, mac, macPat := false, "enp*", "52:54:00:12:34:56", "eth*"
	cfg := &config.Network{Interfaces: map[string]config.Interface{
		"eth0":  {DHCP4: &no, Addresses: []string{"192.168.1.10/24"}},
		"wired": {Match: &config.Match{Name: &pat}, DHCP4: &no},
		"lan":   {Match: &config.Match{MACAddress: &mac}, DHCP4: &no, Addresses: []string{"10.0.2.50/24", "10.0.2.51/24"}},
		"both":  {Match: &config.Match{Name: &macPat, MACAddress: &mac}, DHCP4: &no, Addresses: []string{"10.0.3.50/24"}},
	}}
	qemuMAC := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	other := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x57}
	tests := []struct {
		name     string
		mac      net.HardwareAddr
		cfg      *config.Network
		wantDHCP bool
		wantAddr int
	}{
		{"eth0", qemuMAC, cfg, false, 1}, // the key wins
		{"enp0s3", other, cfg, false, 0},
		{"eth1", other, cfg, true, 0},
		{"eth1", qemuMAC, cfg, false, 1}, // "both" sorts before "lan"
		{"ens3", qemuMAC, cfg, false, 2}, // MAC only: "lan"
		{"eth1", nil, cfg, true, 0},
		{"eth0", nil, nil, true, 0},
	}
	for _, tc := range tests {
		ic := ifaceConfig(tc.cfg, tc.name, tc.mac)
		if got := ic.DHCP4 != nil && *ic.DHCP4; got != tc.wantDHCP || len(ic.Addresses) != tc.wantAddr {
			t.Errorf("%s: dhcp4 %v addrs %v, want %v and %d", tc.name, got, ic.Addresses, tc.wantDHCP, tc.wantAddr)
		}
	}
}

func TestNameserversAndResolver(t *testing.T) {
	n := &Net{dns: map[string][]string{"eth1": {"10.0.3.3", "10.0.2.3"}, "eth0": {"10.0.2.3"}}}
	if diff := cmp.Diff([]string{"10.0.2.3", "10.0.3.3"}, n.Nameservers()); diff != "" {
		t.Errorf("Nameservers (-want +got):\n%s", diff)
	}
	empty := &Net{}
	_, err := empty.Resolver().LookupNetIP(context.Background(), "ip", "pool.ntp.example")
	if err == nil || !strings.Contains(err.Error(), "no DNS server learned") {
		t.Errorf("lookup with no nameserver: %v", err)
	}
}

// TestUnmatched: the retail example's `match: {name: "en*"}` on QEMU's eth0
// once fell back to DHCP without a word; entries that select nothing are
// named, those that select an interface are not.
func TestUnmatched(t *testing.T) {
	en, eth, mac := "en*", "eth*", "52:54:00:12:34:99"
	cfg := &config.Network{Interfaces: map[string]config.Interface{
		"lan":  {Match: &config.Match{Name: &en}},
		"wan":  {Match: &config.Match{Name: &eth}},
		"eth5": {},
		"mgmt": {Match: &config.Match{MACAddress: &mac}},
	}}
	got := Unmatched(cfg, []string{"eth0"}, map[string]net.HardwareAddr{"eth0": {0x52, 0x54, 0, 0x12, 0x34, 0x56}})
	want := []string{
		"config entry eth5: no interface is named eth5",
		"config entry lan: match {name en*} selects no interface",
		"config entry mgmt: match {macaddress 52:54:00:12:34:99} selects no interface",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("unmatched (-want +got):\n%s", diff)
	}
	if got := Unmatched(nil, []string{"eth0"}, nil); got != nil {
		t.Errorf("no network config: %v", got)
	}
}
