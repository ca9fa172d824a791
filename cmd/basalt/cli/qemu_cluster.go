package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/basaltos/basalt/contract/config"
	"github.com/basaltos/basalt/image/tree"
	"github.com/basaltos/basalt/qemu"
)

// The cluster's private segment (a qemu.Hub on 127.0.0.1). clusterGateway
// has no host behind it: it gives each VM the IPv4 default route k3s takes
// its node IP from, while nothing on the segment reaches outside.
const (
	clusterPrefix   = "10.77.0."
	clusterGateway  = clusterPrefix + "1"
	clusterServerIP = clusterPrefix + "10"
)

// clusterNode is one VM of `basalt qemu --cluster N`: node 0 is the server.
type clusterNode struct {
	name, role, ip, mac, token string
	// rootKey is an authorized_keys line the seed gives root ("": none).
	rootKey string
}

// clusterNodes plans n VMs: one server, n-1 agents, one token.
func clusterNodes(n int, token string) []clusterNode {
	var out []clusterNode
	for i := range n {
		c := clusterNode{name: "basalt-server", role: config.RoleServer, ip: fmt.Sprintf("%s%d", clusterPrefix, 10+i),
			mac: fmt.Sprintf("52:54:00:b5:00:%02x", i+1), token: token}
		if i > 0 {
			c.name, c.role = fmt.Sprintf("basalt-agent-%d", i), config.RoleAgent
		}
		out = append(out, c)
	}
	return out
}

// userData is the node's NoCloud user-data: its name, its static address
// on the cluster segment with the default route, its cluster role, server
// and token, and root's SSH key. The user-network NIC (port forwards) gets
// QEMU's usual address without a route, so k3s' node IP is the cluster one.
func (c clusterNode) userData() ([]byte, error) {
	str := func(s string) *string { return &s }
	no := false
	tok := config.Secret(c.token)
	// Keyed by interface name, which wins over the image's match entries
	// (QEMU puts the user NIC first: eth0, then the hub NIC); every key is
	// set but gateway4 (an image whose config gives eth0 a gateway keeps it), as
	// drop-ins merge per key into the image's entry of that name.
	cfg := config.Config{
		Hostname: str(c.name),
		Network: &config.Network{Interfaces: map[string]config.Interface{
			"eth0": {Addresses: []string{"10.0.2.15/24"}, DHCP4: &no, DHCP6: &no, Routes: []config.Route{}},
			"eth1": {Addresses: []string{c.ip + "/24"}, Gateway4: str(clusterGateway), DHCP4: &no, DHCP6: &no, Routes: []config.Route{}},
		}},
		Cluster: &config.Cluster{Role: str(c.role), Token: &tok, NodeName: str(c.name)},
	}
	if c.rootKey != "" {
		cfg.Users = []config.User{{Name: "root", SSHAuthorizedKeys: []string{c.rootKey}}}
	}
	if c.role == config.RoleAgent {
		cfg.Cluster.Server = str("https://" + clusterServerIP + ":6443")
	}
	return userData(c.name, &cfg)
}

// userData is cfg as NoCloud user-data, checked as the device parses it.
func userData(name string, cfg *config.Config) ([]byte, error) {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	doc := append([]byte(config.CloudConfigHeader+"\n"), b...)
	if _, _, err := config.Parse("user-data", doc); err != nil {
		return nil, fmt.Errorf("user-data for %s: %w", name, err)
	}
	return doc, nil
}

// seed writes the node's NoCloud seed image (it holds the token: in a
// private 0700 directory).
func (c clusterNode) seed(dir string) (string, error) {
	ud, err := c.userData()
	if err != nil {
		return "", err
	}
	return writeUserDataSeed(dir, c.name, ud)
}

// writeUserDataSeed writes dir/NAME-seed.img, a NoCloud seed with user-data
// ud and instance-id name.
func writeUserDataSeed(dir, name string, ud []byte) (string, error) {
	t := tree.New(epoch())
	if err := t.AddBytes("user-data", 0o600, ud); err != nil {
		return "", err
	}
	if err := t.AddBytes("meta-data", 0o600, []byte("instance-id: "+name+"\n")); err != nil {
		return "", err
	}
	p := filepath.Join(dir, name+"-seed.img")
	return p, writeSeed(p, t)
}

func newToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// runCluster boots the nodes on one hub: each VM gets its own disk (an
// overlay of the image), its seed, and a user-network NIC whose forwards
// (127.0.0.1 only) reach its SSH and, for the server, its API on 6443 and
// base's own forwards. The seeds give root a fresh SSH key kept in state
// (a directory), where qemu.json lists the forwarded addresses while the
// VMs run (`basalt kubeconfig --qemu`). The consoles go to w, each line
// prefixed with [node]. It returns when every VM has exited or ctx ends.
func runCluster(ctx context.Context, base qemu.Config, nodes []clusterNode, w io.Writer, state string) error {
	hub, err := qemu.NewHub()
	if err != nil {
		return fmt.Errorf("cluster network: %w", err)
	}
	defer hub.Close()
	key, pub, err := newVMKey(state)
	if err != nil {
		return fmt.Errorf("cluster state: %w", err)
	}
	defer os.Remove(filepath.Join(state, vmStateFile))
	dir, err := os.MkdirTemp("", "basalt-cluster-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st := vmState{Key: key}
	var out sync.Mutex
	var machines []*qemu.Machine
	for i, n := range nodes {
		n.rootKey = pub
		seed, err := n.seed(dir)
		if err != nil {
			return err
		}
		sshPort, err := freeLoopbackPort()
		if err != nil {
			return err
		}
		c := base
		c.ExtraDrives = append(append([]string(nil), base.ExtraDrives...), seed)
		c.Net = qemu.Net{User: true, Hub: hub.Addr(), HubMAC: n.mac, Forwards: []qemu.Forward{{Proto: "tcp", HostPort: sshPort, GuestPort: 22}}}
		if i == 0 {
			apiPort, err := freeLoopbackPort()
			if err != nil {
				return err
			}
			c.Net.Outside = base.Net.Outside
			c.Net.Forwards = append(append(c.Net.Forwards, qemu.Forward{Proto: "tcp", HostPort: apiPort, GuestPort: 6443}), base.Net.Forwards...)
			st.API = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
		}
		c.Stdin = nil
		c.Console = &prefixWriter{prefix: "[" + n.name + "] ", w: w, mu: &out}
		m, err := qemu.Start(ctx, c)
		if err != nil {
			return fmt.Errorf("%s: %w", n.name, err)
		}
		machines = append(machines, m)
		st.Nodes = append(st.Nodes, vmNode{Name: n.name, Role: n.role, IP: n.ip, SSH: fmt.Sprintf("127.0.0.1:%d", sshPort)})
		fmt.Fprintf(w, "basalt: cluster: %s (%s) %s on %s, ssh 127.0.0.1:%d\n", n.name, n.role, n.ip, hub.Addr(), sshPort)
	}
	if err := st.write(state); err != nil {
		return fmt.Errorf("cluster state: %w", err)
	}
	fmt.Fprintf(w, "basalt: cluster: API %s; state in %s (basalt kubeconfig --qemu %s)\n", st.API, state, state)
	var errs []error
	for i, m := range machines {
		if err := m.Wait(); err != nil && ctx.Err() == nil {
			errs = append(errs, fmt.Errorf("%s: %w", nodes[i].name, err))
		}
	}
	return errors.Join(errs...)
}

// prefixWriter writes whole lines to w, each prefixed; mu serialises the
// VMs' consoles.
type prefixWriter struct {
	prefix string
	w      io.Writer
	mu     *sync.Mutex
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		p.mu.Lock()
		_, err := fmt.Fprintf(p.w, "%s%s\n", p.prefix, bytes.TrimRight(p.buf[:i], "\r"))
		p.mu.Unlock()
		p.buf = p.buf[i+1:]
		if err != nil {
			return len(b), err
		}
	}
}
