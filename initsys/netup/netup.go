// Package netup brings the network up: loopback, the wired interfaces
// (physical, not lo, not virtual), addresses by DHCPv4 (renewed before the
// lease ends) or static ones (IPv4 and IPv6) from the device config, the
// default route, IPv6 by SLAAC and DHCPv6 where routers offer it (v6.go),
// and /etc/resolv.conf.
package netup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"

	"github.com/basaltos/basalt/contract/config"
	"github.com/basaltos/basalt/initsys/identity"
	"github.com/basaltos/basalt/initsys/say"
)

// Wired returns the physical network interfaces under sysNet
// (/sys/class/net): those with a device link, sorted. Virtual ones (lo,
// bridges, veth, tun) have none.
func Wired(sysNet string) ([]string, error) {
	ents, err := os.ReadDir(sysNet)
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var out []string
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(sysNet, e.Name(), "device")); err != nil {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(sysNet, e.Name(), "type")); err == nil && strings.TrimSpace(string(b)) != "1" {
			continue // not Ethernet (ARPHRD_ETHER)
		}
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out, nil
}

// Resolv returns /etc/resolv.conf content for nameservers and search domains.
func Resolv(servers []string, search []string) string {
	var b strings.Builder
	b.WriteString("# written by basalt-init\n")
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	return b.String()
}

// Net is the running network: it keeps DHCP leases renewed.
type Net struct {
	EtcDir string // where resolv.conf goes (/etc)

	// RAWait is how long an interface waits for an IPv6 router
	// advertisement (in the background); 0 means 10 s.
	RAWait time.Duration

	mu   sync.Mutex
	dns  map[string][]string // per interface: static and DHCPv4
	dns6 map[string][]string // per interface: DHCPv6
	// Addrs are the addresses configured, for status.
	Addrs map[string][]string
	// Unmatched says which config entries selected no interface (Up), for
	// the console and status.
	Unmatched []string
}

// Unmatched returns, for each entry of cfg that applies to none of the
// interfaces (by its key as a name, or by its match), why: an entry that
// selects nothing leaves the interface it was meant for on plain DHCP,
// which must not go unsaid.
func Unmatched(cfg *config.Network, ifaces []string, macs map[string]net.HardwareAddr) []string {
	if cfg == nil {
		return nil
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(cfg.Interfaces)) {
		ic := cfg.Interfaces[k]
		used := false
		for _, name := range ifaces {
			if got := ifaceConfig(cfg, name, macs[name]); name == k || (ic.Match != nil && matches(*ic.Match, name, macs[name]) && reflect.DeepEqual(got, ic)) {
				used = true
				break
			}
		}
		if used {
			continue
		}
		what := "no interface is named " + k
		if m := ic.Match; m != nil {
			var sel []string
			if m.Name != nil {
				sel = append(sel, "name "+*m.Name)
			}
			if m.MACAddress != nil {
				sel = append(sel, "macaddress "+*m.MACAddress)
			}
			what = "match {" + strings.Join(sel, ", ") + "} selects no interface"
		}
		out = append(out, fmt.Sprintf("config entry %s: %s", k, what))
	}
	return out
}

// Up brings up lo and every wired interface, configuring each from cfg
// (nil: DHCPv4 everywhere). DHCP gets dhcpTimeout per interface; renewals
// run until ctx ends. It returns an error when no wired interface got an
// address.
func (n *Net) Up(ctx context.Context, cfg *config.Network, wired []string, dhcpTimeout time.Duration) error {
	n.dns, n.dns6, n.Addrs = map[string][]string{}, map[string][]string{}, map[string][]string{}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	var errs []error
	ok := 0
	macs := map[string]net.HardwareAddr{}
	for _, name := range wired {
		if ifc, err := net.InterfaceByName(name); err == nil {
			macs[name] = ifc.HardwareAddr
		}
	}
	n.Unmatched = Unmatched(cfg, wired, macs)
	for _, u := range n.Unmatched {
		say.Printf("network: %s (interfaces here: %s; the others get DHCPv4)", u, strings.Join(wired, ", "))
	}
	for _, name := range wired {
		mac := macs[name]
		ic := ifaceConfig(cfg, name, mac)
		if err := n.configure(ctx, name, ic, dhcpTimeout); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		ok++
	}
	if err := n.writeResolv(); err != nil {
		errs = append(errs, err)
	}
	if ok == 0 {
		errs = append(errs, fmt.Errorf("no wired interface configured (found %v)", wired))
	}
	return errors.Join(errs...)
}

// ifaceConfig returns the config of the interface with this name and MAC
// address: the entry keyed by the name, else the first (by key) whose match
// selects it, else DHCPv4.
func ifaceConfig(cfg *config.Network, name string, mac net.HardwareAddr) config.Interface {
	if cfg != nil {
		if ic, ok := cfg.Interfaces[name]; ok {
			return ic
		}
		keys := make([]string, 0, len(cfg.Interfaces))
		for k := range cfg.Interfaces {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if ic := cfg.Interfaces[k]; ic.Match != nil && matches(*ic.Match, name, mac) {
				return ic
			}
		}
	}
	yes := true
	return config.Interface{DHCP4: &yes}
}

// matches tells whether m selects the interface: every key it sets (name
// glob, MAC address) must match.
func matches(m config.Match, name string, mac net.HardwareAddr) bool {
	if m.Name == nil && m.MACAddress == nil {
		return false
	}
	if m.Name != nil {
		if ok, _ := filepath.Match(*m.Name, name); !ok {
			return false
		}
	}
	if m.MACAddress != nil {
		hw, err := net.ParseMAC(*m.MACAddress)
		if err != nil || !bytes.Equal(hw, mac) {
			return false
		}
	}
	return true
}

func (n *Net) configure(ctx context.Context, name string, ic config.Interface, dhcpTimeout time.Duration) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	if ic.MTU != nil {
		if err := netlink.LinkSetMTU(link, *ic.MTU); err != nil {
			return fmt.Errorf("mtu %d: %w", *ic.MTU, err)
		}
	}
	v6 := true
	if err := acceptRA("/proc/sys/net", name); err != nil {
		say.Printf("%s: %v", name, err)
		v6 = false
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("link up: %w", err)
	}
	if v6 {
		wait := n.RAWait
		if wait == 0 {
			wait = 10 * time.Second
		}
		go n.v6(ctx, name, link, ic, wait)
	}
	for _, a := range ic.Addresses {
		addr, err := netlink.ParseAddr(a)
		if err != nil {
			return fmt.Errorf("address %q: %w", a, err)
		}
		if err := netlink.AddrReplace(link, addr); err != nil {
			return fmt.Errorf("address %s: %w", a, err)
		}
		n.addAddr(name, a)
	}
	for _, gw := range []*string{ic.Gateway4, ic.Gateway6} {
		if gw != nil {
			if err := defaultRoute(link, net.ParseIP(*gw)); err != nil {
				return err
			}
		}
	}
	for _, r := range ic.Routes {
		var dst *net.IPNet
		if r.To != "default" {
			if _, dst, err = net.ParseCIDR(r.To); err != nil {
				return fmt.Errorf("route to %q: %w", r.To, err)
			}
		}
		rt := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Gw: net.ParseIP(r.Via)}
		if r.Metric != nil {
			rt.Priority = *r.Metric
		}
		if err := netlink.RouteReplace(rt); err != nil {
			return fmt.Errorf("route to %s: %w", r.To, err)
		}
	}
	if ic.Nameservers != nil {
		n.mu.Lock()
		n.dns[name] = append(n.dns[name], ic.Nameservers.Addresses...)
		n.mu.Unlock()
	}
	if ic.DHCP4 != nil && *ic.DHCP4 {
		return n.dhcp4(ctx, name, link, dhcpTimeout)
	}
	return nil
}

func (n *Net) addAddr(name, a string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.Addrs[name] = append(n.Addrs[name], a)
}

func defaultRoute(link netlink.Link, gw net.IP) error {
	if gw == nil {
		return errors.New("default route: gateway is not an IP")
	}
	rt := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw}
	if err := netlink.RouteReplace(rt); err != nil {
		return fmt.Errorf("default route via %s: %w", gw, err)
	}
	return nil
}

func (n *Net) dhcp4(ctx context.Context, name string, link netlink.Link, timeout time.Duration) error {
	c, err := nclient4.New(name, nclient4.WithTimeout(timeout/3), nclient4.WithRetry(3))
	if err != nil {
		return fmt.Errorf("dhcp4: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	lease, err := c.Request(rctx)
	cancel()
	if err != nil {
		c.Close()
		return fmt.Errorf("dhcp4: %w", err)
	}
	if err := n.apply(name, link, lease); err != nil {
		c.Close()
		return err
	}
	r := &renewal{Client: client4{Client: c}, Retry: 10 * time.Second, Now: time.Now, Sleep: sleep,
		Apply: func(l *nclient4.Lease) error {
			if err := n.apply(name, link, l); err != nil {
				return err
			}
			return n.writeResolv()
		},
		Link: name}
	go func() {
		defer c.Close()
		r.run(ctx, lease)
	}()
	return nil
}

// apply puts a lease's address, default route and DNS in place.
func (n *Net) apply(name string, link netlink.Link, lease *nclient4.Lease) error {
	ack := lease.ACK
	ipn := &net.IPNet{IP: ack.YourIPAddr, Mask: ack.SubnetMask()}
	addr := &netlink.Addr{IPNet: ipn, ValidLft: int(ack.IPAddressLeaseTime(time.Hour).Seconds()), PreferedLft: int(ack.IPAddressLeaseTime(time.Hour).Seconds())}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("dhcp4 address %s: %w", ipn, err)
	}
	if r := ack.Router(); len(r) > 0 {
		if err := defaultRoute(link, r[0]); err != nil {
			return err
		}
	}
	var dns []string
	for _, ip := range ack.DNS() {
		dns = append(dns, ip.String())
	}
	n.mu.Lock()
	n.dns[name] = dns
	keep := []string{ipn.String()}
	for _, a := range n.Addrs[name] {
		if strings.Contains(a, ":") { // IPv6, not the lease's
			keep = append(keep, a)
		}
	}
	n.Addrs[name] = keep
	n.mu.Unlock()
	say.Printf("%s: dhcp4 %s via %v dns %v lease %v", name, ipn, ack.Router(), dns, ack.IPAddressLeaseTime(time.Hour))
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Nameservers are the DNS servers learned so far (static and DHCP), in
// interface order, without duplicates.
func (n *Net) Nameservers() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var names []string
	for k := range n.dns {
		names = append(names, k)
	}
	for k := range n.dns6 {
		if _, ok := n.dns[k]; !ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	var servers []string
	seen := map[string]bool{}
	for _, k := range names {
		for _, s := range slices.Concat(n.dns[k], n.dns6[k]) {
			if !seen[s] {
				seen[s] = true
				servers = append(servers, s)
			}
		}
	}
	return servers
}

// Resolver returns a resolver that asks the current Nameservers in turn
// (port 53), independent of /etc/resolv.conf and of when the Go resolver
// first read it. With no nameserver learned, lookups fail at once.
func (n *Net) Resolver() *net.Resolver {
	next := 0
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		servers := n.Nameservers()
		if len(servers) == 0 {
			return nil, errors.New("no DNS server learned from the network config or DHCP")
		}
		n.mu.Lock()
		s := servers[next%len(servers)]
		next++
		n.mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, network, net.JoinHostPort(s, "53"))
	}}
}

func (n *Net) writeResolv() error {
	servers := n.Nameservers()
	return identity.WriteFile(filepath.Join(n.EtcDir, "resolv.conf"), []byte(Resolv(servers, nil)), 0o644)
}
