package netup

import (
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

func TestDHCP6Mode(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name  string
		flags uint32
		dhcp6 *bool
		want  V6Mode
	}{
		{"no RA", 0, nil, V6None},
		{"RA, SLAAC only", raReceived, nil, V6None},
		{"RA other: DNS", raReceived | raOtherConf, nil, V6Stateless},
		{"RA managed", raReceived | raManaged, nil, V6Stateful},
		{"RA managed and other", raReceived | raManaged | raOtherConf, nil, V6Stateful},
		{"flags without RA received", raManaged | raOtherConf, nil, V6None},
		{"dhcp6 false beats managed", raReceived | raManaged, &no, V6None},
		{"dhcp6 true without RA", 0, &yes, V6Stateful},
		{"dhcp6 true with SLAAC-only RA", raReceived, &yes, V6Stateful},
	}
	for _, tt := range tests {
		if got := DHCP6Mode(tt.flags, tt.dhcp6); got != tt.want {
			t.Errorf("%s: DHCP6Mode(%#x) = %v, want %v", tt.name, tt.flags, got, tt.want)
		}
	}
}

func TestParseInet6Flags(t *testing.T) {
	flags := make([]byte, 4)
	binary.NativeEndian.PutUint32(flags, raReceived|raOtherConf)
	in6 := nl.NewRtAttr(unix.AF_INET6, nil)
	in6.AddRtAttr(unix.IFLA_INET6_FLAGS, flags)
	spec := nl.NewRtAttr(unix.IFLA_AF_SPEC|unix.NLA_F_NESTED, nil)
	spec.AddChild(nl.NewRtAttr(unix.AF_INET, []byte{1, 2, 3, 4}))
	spec.AddChild(in6)
	msg := append(nl.NewRtAttr(unix.IFLA_MTU, []byte{0, 5, 0, 0}).Serialize(), spec.Serialize()...)
	tests := []struct {
		name   string
		attrs  []byte
		want   uint32
		wantOK bool
	}{
		{"af spec with inet6 flags", msg, raReceived | raOtherConf, true},
		{"no af spec", nl.NewRtAttr(unix.IFLA_MTU, []byte{0, 5, 0, 0}).Serialize(), 0, false},
		{"truncated", msg[:len(msg)-3], 0, false},
		{"empty", nil, 0, false},
	}
	for _, tt := range tests {
		got, ok := parseInet6Flags(tt.attrs)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("%s: parseInet6Flags = %#x, %v; want %#x, %v", tt.name, got, ok, tt.want, tt.wantOK)
		}
	}
}

// FuzzParseInet6Flags: link attributes come from the kernel, but the
// parser must not panic on any bytes.
func FuzzParseInet6Flags(f *testing.F) {
	spec := nl.NewRtAttr(unix.IFLA_AF_SPEC, nil)
	spec.AddRtAttr(unix.AF_INET6, nil).AddRtAttr(unix.IFLA_INET6_FLAGS, []byte{0xa0, 0, 0, 0})
	f.Add(spec.Serialize())
	f.Add([]byte{4, 0, 26, 0})
	f.Fuzz(func(t *testing.T, b []byte) { parseInet6Flags(b) })
}

// TestNameserversV6: DHCPv6 servers follow the interface's static and
// DHCPv4 ones, interfaces in name order, duplicates dropped.
func TestNameserversV6(t *testing.T) {
	n := &Net{dns: map[string][]string{"eth1": {"10.0.0.1"}, "eth0": {"10.0.2.3"}},
		dns6: map[string][]string{"eth0": {"fec0::3", "10.0.0.1"}, "eth2": {"fd00::53"}}}
	want := []string{"10.0.2.3", "fec0::3", "10.0.0.1", "fd00::53"}
	if diff := cmp.Diff(want, n.Nameservers()); diff != "" {
		t.Errorf("Nameservers (-want +got):\n%s", diff)
	}
}
