package netup

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/dhcpv6/nclient6"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/basaltos/basalt/contract/config"
	"github.com/basaltos/basalt/initsys/say"
)

// IPv6 on a wired interface: the kernel does SLAAC from router
// advertisements (accept_ra=2, so it keeps doing it once k3s turns on
// forwarding); a DHCPv6 client runs when the RA's managed flag asks for
// addresses (stateful) or its other-config flag for DNS only (stateless).

// Flags the kernel keeps per interface from RAs (IFLA_INET6_FLAGS,
// include/uapi/linux/if_link.h).
const (
	raOtherConf = 0x80
	raManaged   = 0x40
	raReceived  = 0x20
)

// V6Mode is what the DHCPv6 client does on an interface.
type V6Mode int

const (
	V6None      V6Mode = iota // SLAAC only (or no IPv6 router)
	V6Stateless               // information-request: DNS
	V6Stateful                // solicit/request: addresses and DNS
)

func (m V6Mode) String() string {
	return [...]string{"none", "stateless", "stateful"}[m]
}

// DHCP6Mode decides the DHCPv6 client's job from the RA flags the kernel
// saw (flags; raReceived clear when no RA came) and the config's dhcp6:
// false disables the client; unset follows the RA; true asks for
// addresses even when no RA came or the RA does not say managed.
func DHCP6Mode(flags uint32, dhcp6 *bool) V6Mode {
	switch {
	case dhcp6 != nil && !*dhcp6:
		return V6None
	case dhcp6 != nil && *dhcp6:
		return V6Stateful
	case flags&raReceived == 0:
		return V6None
	case flags&raManaged != 0:
		return V6Stateful
	case flags&raOtherConf != 0:
		return V6Stateless
	}
	return V6None
}

// acceptRA makes the kernel accept RAs on name even with forwarding on
// (accept_ra=2) and autoconfigure addresses from them (SLAAC).
func acceptRA(procNet, name string) error {
	dir := filepath.Join(procNet, "ipv6", "conf", name)
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("ipv6: %w", err) // kernel without IPv6, or the interface went away
	}
	for k, v := range map[string]string{"accept_ra": "2", "autoconf": "1"} {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o644); err != nil {
			return fmt.Errorf("ipv6 %s: %w", k, err)
		}
	}
	return nil
}

// inet6Flags returns IFLA_INET6_FLAGS of the interface with this index.
func inet6Flags(index int) (uint32, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	req.AddData(msg)
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return 0, fmt.Errorf("ipv6 flags: %w", err)
	}
	for _, m := range msgs {
		if len(m) < unix.SizeofIfInfomsg {
			continue
		}
		if f, ok := parseInet6Flags(m[unix.SizeofIfInfomsg:]); ok {
			return f, nil
		}
	}
	return 0, fmt.Errorf("ipv6 flags: no IFLA_INET6_FLAGS for interface %d", index)
}

// parseInet6Flags finds IFLA_AF_SPEC > AF_INET6 > IFLA_INET6_FLAGS in the
// attributes of an RTM_NEWLINK message.
func parseInet6Flags(attrs []byte) (uint32, bool) {
	find := func(b []byte, typ uint16) ([]byte, bool) {
		as, err := nl.ParseRouteAttr(b)
		if err != nil {
			return nil, false
		}
		for _, a := range as {
			if a.Attr.Type&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER) == typ {
				return a.Value, true
			}
		}
		return nil, false
	}
	spec, ok := find(attrs, unix.IFLA_AF_SPEC)
	if !ok {
		return 0, false
	}
	in6, ok := find(spec, unix.AF_INET6)
	if !ok {
		return 0, false
	}
	f, ok := find(in6, unix.IFLA_INET6_FLAGS)
	if !ok || len(f) < 4 {
		return 0, false
	}
	return binary.NativeEndian.Uint32(f), true
}

// v6 waits up to raWait for a router advertisement on the interface, runs
// the DHCPv6 client as DHCP6Mode says, and reports the global addresses
// SLAAC and DHCPv6 gave. It runs beside the rest of the boot.
func (n *Net) v6(ctx context.Context, name string, link netlink.Link, ic config.Interface, raWait time.Duration) {
	var flags uint32
	deadline := time.Now().Add(raWait)
	for {
		f, err := inet6Flags(link.Attrs().Index)
		if err != nil {
			say.Printf("%s: %v", name, err)
			return
		}
		if flags = f; flags&raReceived != 0 || time.Now().After(deadline) || !sleep(ctx, 100*time.Millisecond) {
			break
		}
	}
	mode := DHCP6Mode(flags, ic.DHCP6)
	if flags&raReceived != 0 {
		say.Printf("%s: ipv6 router advertisement (managed %v, other %v): dhcp6 %v",
			name, flags&raManaged != 0, flags&raOtherConf != 0, mode)
	} else {
		say.Printf("%s: no ipv6 router advertisement in %v: dhcp6 %v", name, raWait, mode)
	}
	if mode == V6Stateful {
		err := n.dhcp6(ctx, name, link, V6Stateful)
		if err == nil {
			mode = V6None
		} else { // no addresses offered: ask for DNS at least
			say.Printf("%s: dhcp6 stateful: %v; trying stateless", name, err)
			mode = V6Stateless
		}
	}
	if mode == V6Stateless {
		if err := n.dhcp6(ctx, name, link, V6Stateless); err != nil {
			say.Printf("%s: dhcp6 stateless: %v", name, err)
		}
	}
	if flags&raReceived == 0 {
		return
	}
	// SLAAC adds its address once duplicate address detection is done.
	for i := 0; i < 50; i++ {
		var slaac []string
		n.mu.Lock()
		for _, a := range globalV6(link) {
			if !slices.Contains(n.Addrs[name], a) { // not static, not DHCPv6
				slaac = append(slaac, a)
			}
		}
		n.mu.Unlock()
		if len(slaac) > 0 {
			n.mu.Lock()
			n.Addrs[name] = append(n.Addrs[name], slaac...)
			n.mu.Unlock()
			say.Printf("%s: ipv6 %v", name, slaac)
			return
		}
		if !sleep(ctx, 100*time.Millisecond) {
			return
		}
	}
	say.Printf("%s: no ipv6 address from the router advertisement", name)
}

// globalV6 lists the interface's global IPv6 addresses.
func globalV6(link netlink.Link) []string {
	addrs, _ := netlink.AddrList(link, netlink.FAMILY_V6)
	var out []string
	for _, a := range addrs {
		if a.IP.IsGlobalUnicast() && a.Flags&unix.IFA_F_TENTATIVE == 0 {
			out = append(out, a.IPNet.String())
		}
	}
	return out
}

// dhcp6 asks the DHCPv6 servers for DNS (stateless) or for addresses and
// DNS (stateful) and applies the answer.
func (n *Net) dhcp6(ctx context.Context, name string, link netlink.Link, mode V6Mode) error {
	c, err := nclient6.New(name, nclient6.WithTimeout(time.Second), nclient6.WithRetry(3))
	if err != nil {
		return err
	}
	defer c.Close()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var reply *dhcpv6.Message
	if mode == V6Stateful {
		reply, err = c.RapidSolicit(rctx)
	} else {
		reply, err = informationRequest(rctx, c)
	}
	if err != nil {
		return err
	}
	var addrs []string
	for _, ia := range reply.Options.IANA() {
		for _, a := range ia.Options.Addresses() {
			ipn := &net.IPNet{IP: a.IPv6Addr, Mask: net.CIDRMask(128, 128)}
			na := &netlink.Addr{IPNet: ipn, ValidLft: int(a.ValidLifetime.Seconds()), PreferedLft: int(a.PreferredLifetime.Seconds())}
			if err := netlink.AddrReplace(link, na); err != nil {
				return fmt.Errorf("address %s: %w", ipn, err)
			}
			addrs = append(addrs, ipn.String())
		}
	}
	var dns []string
	for _, ip := range reply.Options.DNS() {
		dns = append(dns, ip.String())
	}
	n.mu.Lock()
	n.dns6[name] = dns
	n.Addrs[name] = append(n.Addrs[name], addrs...)
	n.mu.Unlock()
	say.Printf("%s: dhcp6 %v addresses %v dns %v", name, mode, addrs, dns)
	return n.writeResolv()
}

// informationRequest asks for DNS servers only (RFC 8415 18.2.6).
func informationRequest(ctx context.Context, c *nclient6.Client) (*dhcpv6.Message, error) {
	duid := &dhcpv6.DUIDLL{HWType: 1, LinkLayerAddr: c.InterfaceAddr()}
	m, err := dhcpv6.NewMessage(dhcpv6.WithClientID(duid),
		dhcpv6.WithRequestedOptions(dhcpv6.OptionDNSRecursiveNameServer, dhcpv6.OptionDomainSearchList))
	if err != nil {
		return nil, err
	}
	m.MessageType = dhcpv6.MessageTypeInformationRequest
	m.AddOption(dhcpv6.OptElapsedTime(0))
	return c.SendAndRead(ctx, nclient6.AllDHCPRelayAgentsAndServers, m, nclient6.IsMessageType(dhcpv6.MessageTypeReply))
}
