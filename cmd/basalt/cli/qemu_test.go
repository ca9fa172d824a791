package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/basaltos/basalt/contract/config"
	"github.com/basaltos/basalt/internal/errclass"
	"github.com/basaltos/basalt/qemu"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"4G": 4 << 30, "4GiB": 4 << 30, "512M": 512 << 20, "1T": 1 << 40, "1048576": 1 << 20, "64KiB": 64 << 10} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1G", "1.5G", "4X", "0"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q): no error", in)
		}
	}
}

func TestQemuConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// An empty MBR: the least that is a disk image.
	mbr := make([]byte, 1024)
	mbr[510], mbr[511] = 0x55, 0xaa
	byName := write("demo-0.1.0-qemu-arm64.img", string(mbr))
	byManifest := write("demo.img", string(mbr))
	write("demo.manifest.json", `{"name":"demo","board":"qemu-armv7"}`)
	anon := write("disk.qcow2", "QFI\xfb"+strings.Repeat("\x00", 28))
	passwd := write("passwd-qemu-x86_64", "root:x:0:0:root:/root:/bin/sh\n")
	seed := write("seed.img", "")

	tests := []struct {
		name      string
		o         qemuOptions
		image     string
		wantBoard string
		check     func(t *testing.T, c qemu.Config)
		wantErr   string
	}{
		{name: "board from file name", o: qemuOptions{net: "none", accel: "auto"}, image: byName, wantBoard: "qemu-arm64"},
		{name: "board from manifest", o: qemuOptions{net: "none", accel: "auto"}, image: byManifest, wantBoard: "qemu-armv7"},
		{name: "flags", image: anon, wantBoard: "qemu-x86_64",
			o: qemuOptions{board: "qemu-x86_64", diskSize: "4G", net: "none", forwards: []string{"127.0.0.1:2222-:22"}, accel: "tcg", memory: 2048},
			check: func(t *testing.T, c qemu.Config) {
				want := qemu.Net{User: true, Forwards: []qemu.Forward{{Proto: "tcp", HostPort: 2222, GuestPort: 22}}}
				if diff := cmp.Diff(want, c.Net); diff != "" {
					t.Errorf("net (-want +got):\n%s", diff)
				}
				if c.DiskSize != 4<<30 || c.Accel != qemu.TCG || c.Memory != 2048 {
					t.Errorf("config = %+v", c)
				}
			}},
		{name: "outside network and a seed", image: byName, wantBoard: "qemu-arm64",
			o: qemuOptions{net: "outside", seed: seed, accel: "auto"},
			check: func(t *testing.T, c qemu.Config) {
				if !c.Net.User || !c.Net.Outside || len(c.ExtraDrives) != 1 || c.ExtraDrives[0] != seed {
					t.Errorf("net %+v, drives %v; want an outside user network and the seed", c.Net, c.ExtraDrives)
				}
			}},
		{name: "not an image", image: passwd, wantErr: "is not a disk image", o: qemuOptions{net: "none", accel: "auto"}},
		{name: "missing seed", image: byName, wantErr: "--seed", o: qemuOptions{net: "none", seed: filepath.Join(dir, "nope"), accel: "auto"}},
		{name: "unknown board", image: anon, wantErr: "use --board", o: qemuOptions{net: "none", accel: "auto"}},
		{name: "wide forward", image: byName, wantErr: "only 127.0.0.1", o: qemuOptions{net: "user", forwards: []string{"0.0.0.0:22-:22"}, accel: "auto"}},
		{name: "bad net", image: byName, wantErr: `--net "tap"`, o: qemuOptions{net: "tap", accel: "auto"}},
		{name: "missing image", image: filepath.Join(dir, "nope.img"), wantErr: "no such file", o: qemuOptions{net: "none"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.o.config(tt.image)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, errclass.ErrInvalid) {
					t.Fatalf("err = %v, want invalid input with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Board.Name != tt.wantBoard {
				t.Errorf("board = %s, want %s", c.Board.Name, tt.wantBoard)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

// TestClusterUserData: the seeds of `basalt qemu --cluster 3` are valid
// device config: one server, agents with the server's address and the
// same token, each with its address and the default route on the hub NIC
// (eth1; eth0 is the user network of the forwards, without a route) and
// root's SSH key.
func TestClusterUserData(t *testing.T) {
	nodes := clusterNodes(3, "t0ken")
	if len(nodes) != 3 || nodes[0].role != "server" || nodes[2].role != "agent" || nodes[2].ip != "10.77.0.12" {
		t.Fatalf("plan: %+v", nodes)
	}
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEIQczXkVx9q test"
	for _, n := range nodes {
		n.rootKey = key
		ud, err := n.userData()
		if err != nil {
			t.Fatal(err)
		}
		d, _, err := config.Parse("user-data", ud)
		if err != nil {
			t.Fatalf("%s: %v\n%s", n.name, err, ud)
		}
		c := d.Config
		if string(*c.Cluster.Token) != "t0ken" || *c.Cluster.Role != n.role || *c.Hostname != n.name {
			t.Errorf("%s: %s", n.name, ud)
		}
		if got := c.Network.Interfaces["eth1"]; len(got.Addresses) != 1 || got.Addresses[0] != n.ip+"/24" || *got.Gateway4 != clusterGateway {
			t.Errorf("%s: eth1: %+v", n.name, got)
		}
		if got := c.Network.Interfaces["eth0"]; got.Gateway4 != nil || len(got.Addresses) != 1 {
			t.Errorf("%s: eth0 (user network): %+v", n.name, got)
		}
		if len(c.Users) != 1 || c.Users[0].Name != "root" || len(c.Users[0].SSHAuthorizedKeys) != 1 || c.Users[0].SSHAuthorizedKeys[0] != key {
			t.Errorf("%s: users %+v", n.name, c.Users)
		}
		if (n.role == "agent") != (c.Cluster.Server != nil && *c.Cluster.Server == "https://10.77.0.10:6443") {
			t.Errorf("%s: server %v", n.name, c.Cluster.Server)
		}
	}
}
