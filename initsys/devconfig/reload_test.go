package devconfig

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/crypto/ssh"

	"github.com/basaltos/basalt/contract/config"
	"github.com/basaltos/basalt/initsys/sshd"
)

func clientKey(t *testing.T) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey())))
}

func canLogin(srv *sshd.Server, user string, key ssh.Signer) bool {
	if srv.Addr() == nil {
		return false
	}
	c, err := ssh.Dial("tcp", srv.Addr().String(), &ssh.ClientConfig{
		User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(key)}, HostKeyCallback: ssh.FixedHostKey(srv.HostKey()),
	})
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// TestReload boots with a config (no SSH key: sshd disabled), then
// reloads three times: a drop-in that changes runtime and reboot keys, a
// broken drop-in (kept), and the drop-ins removed.
func TestReload(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	src := Sources{BootDir: filepath.Join(dir, "boot"), LastGood: filepath.Join(dir, "data/last-good.yaml")}
	dropIn := filepath.Join(src.BootDir, "basalt/config.d/50-site.yaml")
	broken := filepath.Join(src.BootDir, "basalt/config.d/60-broken.yaml")
	key, line := clientKey(t)
	write(t, filepath.Join(src.BootDir, "basalt/config.yaml"), head+`hostname: first
users: [{name: alice}]
write_files: [{path: /etc/motd, content: "hi\n", append: true}]
ntp: {servers: [ntp1.example]}
`)
	boot, err := Load(ctx, src)
	if err != nil || len(boot.Errors) > 0 {
		t.Fatalf("boot load: %v %v", err, boot.Errors)
	}
	if err := Apply(ctx, boot.Config, ApplyOptions{Root: root}); err != nil {
		t.Fatal(err)
	}
	srv, err := sshd.Start(sshd.Options{Addr: "127.0.0.1:0", HostKey: filepath.Join(dir, "data/ssh_host_ed25519_key"), EtcDir: filepath.Join(root, "etc")}, sshd.Users(boot.Config))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if srv.Addr() != nil {
		t.Fatal("sshd listens with no key configured")
	}
	var hostnames []string
	opts := ReloadOptions{Sources: src, Apply: ApplyOptions{Root: root}, SSH: srv,
		SetHostname: func(n string) error { hostnames = append(hostnames, n); return nil }}

	write(t, dropIn, head+`hostname: second
users: [{name: alice, ssh_authorized_keys: ["`+line+`"]}]
write_files: [{path: /etc/site, content: "store 7\n", permissions: "0600"}]
ntp: {servers: [ntp2.example], pools: [pool.example]}
network: {interfaces: {eth0: {dhcp4: true}}}
cluster: {role: server}
`)
	r1, err := Reload(ctx, boot.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := ReloadResult{
		Sources:     []string{"basalt/config.yaml", "basalt/config.d/50-site.yaml"},
		Changed:     []string{"hostname", "users", "write_files", "ntp", "network", "cluster"},
		Applied:     []string{"hostname", "write_files", "users", "ntp"},
		NeedsReboot: []string{"network", "cluster"},
		NTPChanged:  true,
		NTPServers:  []string{"ntp2.example", "pool.example"},
	}
	if d := cmp.Diff(want, r1, cmpopts.IgnoreFields(ReloadResult{}, "Config")); d != "" {
		t.Errorf("reload 1 (-want +got):\n%s", d)
	}
	if !canLogin(srv, "alice", key) {
		t.Error("reload 1: alice cannot log in with her new key")
	}
	for path, want := range map[string]string{"etc/motd": "hi\n", "etc/site": "store 7\n", "var/home/alice/.ssh/authorized_keys": line + "\n"} {
		if b, err := os.ReadFile(filepath.Join(root, path)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", path, b, err, want)
		}
	}
	if lg, err := os.ReadFile(src.LastGood); err != nil || !strings.Contains(string(lg), "hostname: second") {
		t.Errorf("last good not updated: %v\n%s", err, lg)
	}

	write(t, broken, head+"hostname: [not, a, name]\n")
	r2, err := Reload(ctx, r1.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !r2.Kept || r2.Config != r1.Config || len(r2.Applied) != 0 || len(r2.Errors) != 1 || !strings.HasPrefix(r2.Errors[0], "basalt/config.d/60-broken.yaml:3: .hostname:") {
		t.Errorf("reload 2 with a broken drop-in: %+v", r2)
	}
	if !canLogin(srv, "alice", key) {
		t.Error("reload 2: a broken drop-in revoked alice's key")
	}

	for _, p := range []string{dropIn, broken} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	r3, err := Reload(ctx, r2.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"hostname", "users", "write_files", "ntp", "network", "cluster"}, r3.Changed); d != "" {
		t.Errorf("reload 3 changed (-want +got):\n%s", d)
	}
	if srv.Addr() != nil {
		t.Error("reload 3: sshd still listens after the last key was removed")
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/motd")); string(b) != "hi\n" {
		t.Errorf("append entry written again: motd = %q", b)
	}
	if d := cmp.Diff([]string{"second", "first"}, hostnames); d != "" {
		t.Errorf("SetHostname calls (-want +got):\n%s", d)
	}
	if d := cmp.Diff("config reloaded: changed hostname, users, write_files, ntp, network, cluster\napplied: hostname, write_files, users, ntp\nneeds a reboot: network, cluster\n", r3.Summary()); d != "" {
		t.Errorf("summary (-want +got):\n%s", d)
	}
	if d := cmp.Diff("error: "+r2.Errors[0]+"\nconfig unchanged: the current config stays in effect\n", r2.Summary()); d != "" {
		t.Errorf("summary (-want +got):\n%s", d)
	}
}

// TestReloadRestartsOrchestrator: with the init's hook, a cluster change
// restarts k3s with the new config instead of waiting for a reboot; a
// failing restart is an error and the key stays a reboot key.
func TestReloadRestartsOrchestrator(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := Sources{BootDir: filepath.Join(dir, "boot")}
	write(t, filepath.Join(src.BootDir, "basalt/config.yaml"), head+"cluster: {role: server}\n")
	boot, err := Load(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(src.BootDir, "basalt/config.yaml"), head+"cluster: {role: server, labels: {site: paris}}\n")
	var got []*config.Config
	restart := func(next *config.Config) error { got = append(got, next); return nil }
	r, err := Reload(ctx, boot.Config, ReloadOptions{Sources: src, Apply: ApplyOptions{Root: dir}, RestartOrchestrator: restart})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Cluster.Labels["site"] != "paris" {
		t.Errorf("restart hook got %v", got)
	}
	if d := cmp.Diff([]string{"cluster"}, r.Applied); d != "" || len(r.NeedsReboot) != 0 {
		t.Errorf("applied (-want +got):\n%s\nneeds reboot %v", d, r.NeedsReboot)
	}
	failing := func(*config.Config) error { return fmt.Errorf("role changed") }
	r, err = Reload(ctx, boot.Config, ReloadOptions{Sources: src, Apply: ApplyOptions{Root: dir}, RestartOrchestrator: failing})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"cluster"}, r.NeedsReboot); d != "" || len(r.Errors) != 1 {
		t.Errorf("failing hook: needs reboot (-want +got):\n%s\nerrors %v", d, r.Errors)
	}
}
