package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

const keyA = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl a"
const keyB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbKcVQ3B4ZxPYLCtdNbt/xkOYAP0lY3tHg1Wk6wGEm9 b"

func mustParse(t testing.TB, file, in string) *Document {
	t.Helper()
	d, _, err := Parse(file, []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestMerge(t *testing.T) {
	baked := mustParse(t, "baked", head+`hostname: baked
timezone: UTC
users:
  - name: ops
    groups: [wheel]
    ssh_authorized_keys: ["`+keyA+`"]
ssh_authorized_keys: ["`+keyA+`"]
write_files: [{path: /etc/a, content: baked}]
ntp: {servers: [a.example], enabled: true}
network:
  interfaces:
    eth0: {dhcp4: true}
cluster:
  role: server
  token: baked-token
  labels: {site: x, rack: "1"}
  extra_args: [--a]
`)
	boot := mustParse(t, "basalt/config.yaml", head+`hostname: boot
users:
  - name: ops
    groups: [video]
    ssh_authorized_keys: ["`+keyB+`"]
  - name: dev
ssh_authorized_keys: ["`+keyA+`", "`+keyB+`"]
write_files: [{path: /etc/a, content: boot, append: true}]
ntp: {servers: []}
network:
  interfaces:
    eth0: {addresses: [10.0.2.15/24]}
    eth1: {dhcp4: true}
cluster:
  token_file: /data/token
  labels: {site: y}
  extra_args: [--b]
`)
	seed := mustParse(t, "CIDATA/user-data", "#cloud-config\nhostname: seed\n")
	cmd, _, err := ParseCmdline("console=ttyS0 basalt.hostname=cmd basalt.ntp.enabled=false")
	if err != nil {
		t.Fatal(err)
	}
	m := Merge(baked, boot, seed, cmd)
	want := `hostname: cmd
timezone: UTC
users:
    - name: ops
      groups:
        - video
      ssh_authorized_keys:
        - ` + keyA + `
        - ` + keyB + `
    - name: dev
ssh_authorized_keys:
    - ` + keyA + `
    - ` + keyB + `
write_files:
    - path: /etc/a
      content: baked
    - path: /etc/a
      content: boot
      append: true
ntp:
    enabled: false
network:
    interfaces:
        eth0:
            dhcp4: true
            addresses:
                - 10.0.2.15/24
        eth1:
            dhcp4: true
cluster:
    role: server
    token_file: /data/token
    labels:
        rack: "1"
        site: "y"
    extra_args:
        - --b
`
	got, _ := yaml.Marshal(&m.Config)
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("merged (-want +got):\n%s", diff)
	}
	if m.Config.NTP.Servers == nil || m.Config.Cluster.Token != nil {
		t.Errorf("servers: [] must clear (got nil), token_file must clear token (got %v)", m.Config.Cluster.Token)
	}
	origins := map[string]string{}
	for _, p := range []string{".hostname", ".timezone", ".users[0].groups", ".users[0].ssh_authorized_keys[1]", ".users[1]",
		".ssh_authorized_keys[1]", ".write_files[1]", ".ntp.enabled", ".ntp.servers", ".network.interfaces.eth0.dhcp4",
		".network.interfaces.eth0.addresses", ".cluster.labels.rack", ".cluster.labels.site", ".cluster.token_file"} {
		o, _ := m.Source(p)
		origins[p] = o.String()
	}
	wantOrigins := map[string]string{
		".hostname": "cmdline", ".timezone": "baked:4",
		".users[0].groups": "basalt/config.yaml:6", ".users[0].ssh_authorized_keys[1]": "basalt/config.yaml:7", ".users[1]": "basalt/config.yaml:8",
		".ssh_authorized_keys[1]": "basalt/config.yaml:9", ".write_files[1]": "basalt/config.yaml:10",
		".ntp.enabled": "cmdline", ".ntp.servers": "basalt/config.yaml:11",
		".network.interfaces.eth0.dhcp4": "baked:14", ".network.interfaces.eth0.addresses": "basalt/config.yaml:14",
		".cluster.labels.rack": "baked:18", ".cluster.labels.site": "basalt/config.yaml:18",
		".cluster.token_file": "basalt/config.yaml:17",
	}
	if diff := cmp.Diff(wantOrigins, origins); diff != "" {
		t.Errorf("origins (-want +got):\n%s", diff)
	}
}

func TestMergedValidate(t *testing.T) {
	a := mustParse(t, "a.yaml", head+"cluster:\n  role: agent\n")
	m := Merge(a)
	want := []string{
		"a.yaml:4: .cluster.role: an agent needs cluster.server",
		"a.yaml:4: .cluster.role: an agent needs cluster.token or cluster.token_file",
	}
	if diff := cmp.Diff(want, errStrings(errOrNil(m.Validate()))); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	b := mustParse(t, "b.yaml", head+"cluster:\n  server: https://s:6443\n  token_file: /t\n")
	if errs := Merge(a, b).Validate(); len(errs) != 0 {
		t.Errorf("complete agent: %v", errs)
	}
	server := mustParse(t, "c.yaml", head+"cluster:\n  role: server\n")
	if diff := cmp.Diff([]string{"b.yaml:4: .cluster.server: a server joins another server only with embedded etcd (datastore: etcd); with SQLite it runs alone"},
		errStrings(errOrNil(Merge(a, b, server).Validate()))); diff != "" {
		t.Errorf("server joining on SQLite (-want +got):\n%s", diff)
	}
	etcd := mustParse(t, "d.yaml", head+"cluster:\n  datastore: etcd\n")
	if errs := Merge(a, b, server, etcd).Validate(); len(errs) != 0 {
		t.Errorf("HA server joining with embedded etcd: %v", errs)
	}
}

func TestEffectiveUsers(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"keys only", "ssh_authorized_keys: [\"" + keyA + "\"]\n", []string{"basalt keys=1"}},
		{"default entry", "users: [default, {name: ops}]\nssh_authorized_keys: [\"" + keyA + "\"]\n", []string{"basalt keys=1", "ops keys=0"}},
		{"no default", "users: [{name: ops}]\nssh_authorized_keys: [\"" + keyA + "\"]\n", []string{"ops keys=0"}},
		{"none", "hostname: x\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := mustParse(t, "f", "#cloud-config\n"+tc.in)
			var got []string
			for _, u := range d.Config.EffectiveUsers() {
				got = append(got, u.Name+" keys="+string(rune('0'+len(u.SSHAuthorizedKeys))))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestCmdline(t *testing.T) {
	d, warns, err := ParseCmdline(`root=PARTLABEL=x basalt.slot=a basalt.hostname=edge7 basalt.timezone="Europe/Paris" basalt.ntp.servers=a.example,b.example ` +
		`basalt.net.eth0.addresses=10.0.2.15/24 basalt.net.eth0.gateway4=10.0.2.2 basalt.net.eth0.nameservers=10.0.2.3 basalt.net.eth0.dhcp4=false ` +
		`basalt.cluster.role=agent basalt.cluster.server=https://s:6443 basalt.cluster.token=x basalt.cluster.bogus=1`)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := yaml.Marshal(&d.Config)
	want := `hostname: edge7
timezone: Europe/Paris
ntp:
    servers:
        - a.example
        - b.example
network:
    interfaces:
        eth0:
            dhcp4: false
            addresses:
                - 10.0.2.15/24
            gateway4: 10.0.2.2
            nameservers:
                addresses:
                    - 10.0.2.3
cluster:
    role: agent
    server: https://s:6443
`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	wantWarns := []string{
		"cmdline: basalt.cluster.token: secrets are not read from the world-readable kernel command line; use basalt.cluster.token_file",
		"cmdline: basalt.cluster.bogus: unknown kernel command-line key, ignored",
	}
	if diff := cmp.Diff(wantWarns, errStrings(errOrNil(warns))); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	_, _, err = ParseCmdline("basalt.hostname=-x")
	if diff := cmp.Diff([]string{`cmdline: .hostname: invalid hostname "-x": 1-63 letters, digits and '-', not starting or ending with '-'`}, errStrings(err)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestMetaData(t *testing.T) {
	d, id, warns, err := ParseMetaData("meta-data", []byte("instance-id: iid-local01\nlocal-hostname: cloudimg.example.com\npublic-keys: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if id != "iid-local01" || *d.Config.Hostname != "cloudimg" || *d.Config.FQDN != "cloudimg.example.com" {
		t.Errorf("got id %q hostname %q fqdn %q", id, *d.Config.Hostname, *d.Config.FQDN)
	}
	if diff := cmp.Diff([]string{"meta-data:3: .public-keys: unsupported cloud-init key, ignored"}, errStrings(errOrNil(warns))); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestAliasBomb checks that a small document whose aliases expand to a huge
// tree ("billion laughs") fails fast with a clear error instead of expanding.
func TestAliasBomb(t *testing.T) {
	doc := "#cloud-config\nx: &u {name: a, groups: [" + strings.Repeat("g, ", 300) + "g]}\nusers: [" + strings.Repeat("*u, ", 1000) + "*u]\n"
	if len(doc) > 8000 {
		t.Fatalf("bomb is %d bytes", len(doc))
	}
	_, _, err := Parse("bomb", []byte(doc))
	want := []string{"bomb:2: .users[657].groups[266]: document too large: more than 200000 nodes after alias expansion"}
	if diff := cmp.Diff(want, errStrings(err)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
