package clock

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestBuildEpoch(t *testing.T) {
	p := filepath.Join(t.TempDir(), "basalt-release")
	os.WriteFile(p, []byte("NAME=basalt\nBUILD_EPOCH=1700000000\n"), 0o644)
	got, err := BuildEpoch(p)
	if err != nil || got.Unix() != 1700000000 {
		t.Errorf("BuildEpoch = %v, %v", got, err)
	}
	os.WriteFile(p, []byte("NAME=basalt\n"), 0o644)
	if _, err := BuildEpoch(p); err == nil {
		t.Error("missing BUILD_EPOCH accepted")
	}
}

// fakeServer answers SNTP on loopback with its clock shifted by skew.
func fakeServer(t *testing.T, skew time.Duration, stratum byte) string {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 48)
		for {
			n, addr, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 48 {
				continue
			}
			resp := make([]byte, 48)
			resp[0] = 0x24 // version 4, mode 4
			resp[1] = stratum
			copy(resp[24:32], buf[40:48])
			now := time.Now().Add(skew)
			putNTP(resp[32:], now)
			putNTP(resp[40:], now)
			c.WriteTo(resp, addr)
		}
	}()
	return c.LocalAddr().String()
}

func TestQuery(t *testing.T) {
	tests := []struct {
		name    string
		skew    time.Duration
		stratum byte
		wantErr bool
	}{
		{"ahead one hour", time.Hour, 2, false},
		{"behind", -90 * time.Second, 1, false},
		{"unsynchronised", 0, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			off, err := Query(ctx, deadResolver(t), fakeServer(t, tc.skew, tc.stratum))
			if tc.wantErr {
				if err == nil {
					t.Errorf("Query = %v, want error", off)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := off - tc.skew; d > time.Second || d < -time.Second {
				t.Errorf("offset %v, want about %v", off, tc.skew)
			}
		})
	}
}

// deadResolver asks a DNS server on loopback that never answers, as
// in QEMU with restrict=on: IP literals must not need it, names must fail
// with the context's deadline.
func deadResolver(t *testing.T) *net.Resolver {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", c.LocalAddr().String())
	}}
}

func TestQueryUnresolvable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := Query(ctx, deadResolver(t), "pool.ntp.example")
	if err == nil || !strings.Contains(err.Error(), "ntp pool.ntp.example: resolve:") {
		t.Errorf("Query via a dead DNS server: %v, want a resolve error", err)
	}
	if ctx.Err() == nil {
		t.Errorf("Query returned before its deadline: %v", err)
	}
}

func TestNTPTimestampRoundTrip(t *testing.T) {
	in := time.Unix(1700000000, 123456789)
	b := make([]byte, 8)
	putNTP(b, in)
	if d := getNTP(b).Sub(in); d > time.Microsecond || d < -time.Microsecond {
		t.Errorf("round trip off by %v", d)
	}
}

// TestDisciplineFollowsServers: each round asks for the servers again (a
// config reload reaches the running loop), a kick syncs at once, and a
// round without servers does not sync.
func TestDisciplineFollowsServers(t *testing.T) {
	synced := make(chan []string)
	old := syncClock
	syncClock = func(_ *net.Resolver, servers []string, _ time.Duration, _ time.Time) (time.Duration, error) {
		synced <- servers
		return 0, nil
	}
	t.Cleanup(func() { syncClock = old })
	var mu sync.Mutex
	current := []string{"a.example"}
	set := func(s ...string) { mu.Lock(); current = s; mu.Unlock() }
	get := func() []string { mu.Lock(); defer mu.Unlock(); return current }
	kick := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var reports [][]string
	go func() {
		Discipline(ctx, nil, get, kick, time.Hour, time.Second, time.Unix(0, 0), func(s []string, _ time.Duration, _ error) {
			reports = append(reports, s)
		})
		close(done)
	}()
	kick <- struct{}{}
	got := [][]string{<-synced}
	set("b.example", "pool.example")
	kick <- struct{}{}
	got = append(got, <-synced)
	set() // ntp disabled by a reload: the round is skipped
	kick <- struct{}{}
	set("c.example")
	kick <- struct{}{}
	got = append(got, <-synced)
	cancel()
	<-done
	want := [][]string{{"a.example"}, {"b.example", "pool.example"}, {"c.example"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("servers synced (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, reports); diff != "" {
		t.Errorf("servers reported (-want +got):\n%s", diff)
	}
}
