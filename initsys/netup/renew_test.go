package netup

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"

	"github.com/basaltos/basalt/initsys/say"
)

// fakeDHCP is a DHCPv4 server on loopback. It answers as server id;
// with ignoreRenewals it drops requests that extend a lease (ciaddr set).
type fakeDHCP struct {
	mu             sync.Mutex
	id             net.IP
	ignoreRenewals bool
}

func (f *fakeDHCP) set(id string, ignoreRenewals bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.id, f.ignoreRenewals = net.ParseIP(id).To4(), ignoreRenewals
}

func (f *fakeDHCP) handle(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
	f.mu.Lock()
	id, ignore := f.id, f.ignoreRenewals
	f.mu.Unlock()
	typ := dhcpv4.MessageTypeAck
	switch {
	case m.MessageType() == dhcpv4.MessageTypeDiscover:
		typ = dhcpv4.MessageTypeOffer
	case m.MessageType() != dhcpv4.MessageTypeRequest:
		return
	case !m.ClientIPAddr.IsUnspecified() && ignore:
		return
	}
	r, err := dhcpv4.NewReplyFromRequest(m, dhcpv4.WithMessageType(typ), dhcpv4.WithYourIP(net.IPv4(10, 0, 0, 15)),
		dhcpv4.WithServerIP(id), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(id)),
		dhcpv4.WithNetmask(net.CIDRMask(24, 32)), dhcpv4.WithLeaseTime(100))
	if err == nil {
		conn.WriteTo(r.ToBytes(), peer)
	}
}

// TestRenewal runs the lease keeper against a DHCP server on loopback,
// with a fake clock (lease 100 s: T1 50 s, T2 87.5 s): the lease is
// renewed with its server at T1; when that server stops answering (another
// one answers instead), renewal is retried until T2, then the other
// server's answer to rebinding is taken; when no server extends the lease,
// a new one is requested once it has run out.
func TestRenewal(t *testing.T) {
	srv := &fakeDHCP{}
	srv.set("10.0.0.1", false)
	sconn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := server4.NewServer("", nil, srv.handle, server4.WithConn(sconn))
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Close() })
	cconn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := nclient4.NewWithConn(cconn, net.HardwareAddr{2, 0, 0, 0, 0, 1},
		nclient4.WithServerAddr(sconn.LocalAddr().(*net.UDPAddr)), nclient4.WithTimeout(100*time.Millisecond), nclient4.WithRetry(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lease, err := c.Request(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	base := time.Unix(1700000000, 0)
	var mu sync.Mutex
	now := base
	type applied struct {
		At     time.Duration
		Server string
	}
	var got []applied
	var logs []string
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &renewal{Client: client4{c}, Retry: 10 * time.Second,
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now },
		Sleep: func(ctx context.Context, d time.Duration) bool {
			mu.Lock()
			defer mu.Unlock()
			now = now.Add(d)
			return ctx.Err() == nil
		},
		Link: "eth0",
		Apply: func(l *nclient4.Lease) error {
			mu.Lock()
			got = append(got, applied{now.Sub(base), l.ACK.ServerIdentifier().String()})
			n := len(got)
			mu.Unlock()
			switch n {
			case 1: // the first server goes away; another answers
				srv.set("10.0.0.2", false)
			case 2: // nobody extends leases any more
				srv.set("10.0.0.2", true)
			case 3:
				cancel()
			}
			return nil
		}}
	retryRE := regexp.MustCompile(`^basalt: eth0: dhcp4 (\w+): .*; retry in (\S+)\n$`)
	defer say.Use(say.New(writerFunc(func(line string) {
		mu.Lock()
		defer mu.Unlock()
		if m := retryRE.FindStringSubmatch(line); m != nil {
			logs = append(logs, fmt.Sprintf("%v %s failed, retry in %s", now.Sub(base), m[1], m[2]))
		}
	}), ""))()
	done := make(chan struct{})
	go func() { r.run(ctx, lease); close(done) }()
	<-done
	want := []applied{
		{50 * time.Second, "10.0.0.1"},          // renewed at T1
		{137500 * time.Millisecond, "10.0.0.2"}, // rebound at T2 = 50 s + 87.5 s
		{237500 * time.Millisecond, "10.0.0.2"}, // new lease at expiry = 137.5 s + 100 s
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("leases applied at (-want +got):\n%s", diff)
	}
	wantLogs := []string{
		"1m40s renew failed, retry in 10s", "1m50s renew failed, retry in 10s", "2m0s renew failed, retry in 10s",
		"2m10s renew failed, retry in 7.5s", // until T2
		"3m7.5s renew failed, retry in 10s", "3m17.5s renew failed, retry in 10s", "3m27.5s renew failed, retry in 10s",
		"3m37.5s renew failed, retry in 7.5s",
		"3m45s rebind failed, retry in 10s", "3m55s rebind failed, retry in 2.5s", // until the lease ends
	}
	if diff := cmp.Diff(wantLogs, logs); diff != "" {
		t.Errorf("failed attempts (-want +got):\n%s", diff)
	}
}

func TestLeaseTimes(t *testing.T) {
	ack := func(mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		m, _ := dhcpv4.New(mods...)
		return m
	}
	tests := []struct {
		name       string
		ack        *dhcpv4.DHCPv4
		t1, t2, lt time.Duration
	}{
		{"defaults", ack(dhcpv4.WithLeaseTime(100)), 50 * time.Second, 87500 * time.Millisecond, 100 * time.Second},
		{"server's T1 T2", ack(dhcpv4.WithLeaseTime(100), dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(30*time.Second)),
			dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(60*time.Second))), 30 * time.Second, 60 * time.Second, 100 * time.Second},
		{"T2 past the lease", ack(dhcpv4.WithLeaseTime(100), dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(200*time.Second))),
			50 * time.Second, 87500 * time.Millisecond, 100 * time.Second},
		{"no lease time", ack(), 30 * time.Minute, 52*time.Minute + 30*time.Second, time.Hour},
	}
	for _, tt := range tests {
		t1, t2, lt := leaseTimes(tt.ack)
		if t1 != tt.t1 || t2 != tt.t2 || lt != tt.lt {
			t.Errorf("%s: leaseTimes = %v %v %v, want %v %v %v", tt.name, t1, t2, lt, tt.t1, tt.t2, tt.lt)
		}
	}
}

// writerFunc receives each line the logger writes (one Write per message).
type writerFunc func(line string)

func (f writerFunc) Write(p []byte) (int, error) { f(string(p)); return len(p), nil }
