package config

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

const head = "apiVersion: basalt.dev/v1alpha1\nkind: DeviceConfig\n"

func errStrings(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"missing header", "hostname: a\n", []string{
			`f.yaml:1: no header: a drop-in starts with the lines "apiVersion: basalt.dev/v1alpha1" and "kind: DeviceConfig", or with "#cloud-config" as its first line (cloud-init user-data)`}},
		{"wrong header", "apiVersion: v1\nkind: Pod\n", []string{
			`f.yaml:1: .apiVersion: unsupported apiVersion "v1" (allowed: basalt.dev/v1alpha1)`,
			`f.yaml:2: .kind: unsupported kind "Pod" (allowed: DeviceConfig)`}},
		{"not YAML on line 1", "key: [1, 2]]\n", []string{`f.yaml:1: invalid YAML: did not find expected key`}},
		{"empty", "", []string{`f.yaml: empty document: want apiVersion: basalt.dev/v1alpha1, kind: DeviceConfig, or a first line "#cloud-config"`}},
		{"unknown key", head + "hostnam: a\n", []string{
			`f.yaml:3: .hostnam: unknown key (allowed: apiVersion, cluster, fqdn, hostname, kind, network, ntp, registries, ssh_authorized_keys, timezone, update, users, write_files)`}},
		{"nested unknown", head + "ntp:\n  server: [a]\n", []string{`f.yaml:4: .ntp.server: unknown key (allowed: enabled, pools, servers)`}},
		{"syntax", head + "hostname: [a\n", []string{`f.yaml:3: invalid YAML: did not find expected ',' or ']'`}},
		{"two docs", head + "---\n" + head, []string{`f.yaml:3: more than one YAML document`}},
		{"duplicate", head + "hostname: a\nhostname: b\n", []string{`f.yaml:4: .hostname: duplicate key`}},
		{"kind mismatch", head + "ntp:\n  enabled: maybe\n  servers: a\n", []string{
			`f.yaml:4: .ntp.enabled: must be a boolean, not "maybe"`, `f.yaml:5: .ntp.servers: must be a list`}},
		{"hostname", head + "hostname: -bad\n", []string{`f.yaml:3: .hostname: invalid hostname "-bad": 1-63 letters, digits and '-', not starting or ending with '-'`}},
		{"fqdn", head + "fqdn: a..b\n", []string{`f.yaml:3: .fqdn: invalid fqdn "a..b": dot-separated hostname labels, at most 253 characters`}},
		{"timezone", head + "timezone: ../etc\n", []string{`f.yaml:3: .timezone: invalid time zone "../etc" (allowed: UTC, an IANA name like Europe/Paris)`}},
		{"users", head + "users:\n  - name: Bad\n    groups: 'ok, B@d'\n    passwd: hunter2\n    shell: sh\n    homedir: home\n    uid: -1\n    ssh_authorized_keys: [nope]\n  - gecos: x\n", []string{
			`f.yaml:4: .users[0].name: invalid user name "Bad": lowercase letters, digits, '_' and '-', starting with a letter or '_', at most 32`,
			`f.yaml:5: .users[0].groups[1]: invalid group name "B@d"`,
			`f.yaml:10: .users[0].ssh_authorized_keys[0]: not an OpenSSH public key (authorized_keys line such as 'ssh-ed25519 AAAA... comment')`,
			`f.yaml:6: .users[0].passwd: not a crypt(3) password hash; plain-text passwords are not accepted (allowed: $6$..., $5$..., $y$..., $2b$..., !, *)`,
			`f.yaml:7: .users[0].shell: shell "sh" must be an absolute path`,
			`f.yaml:8: .users[0].homedir: homedir "home" must be an absolute path`,
			`f.yaml:9: .users[0].uid: uid -1 out of range 0-65533`,
			`f.yaml:11: .users[1].name: a user needs a name`}},
		{"write_files", head + "write_files:\n  - content: x\n  - path: /a/../b\n    encoding: rot13\n  - path: /c\n    encoding: b64\n    content: '!!!'\n    owner: 'Root'\n    permissions: '0999'\n", []string{
			`f.yaml:4: .write_files[0].path: a file needs a path`,
			`f.yaml:5: .write_files[1].path: path "/a/../b" must be absolute and clean (no '..', no trailing '/')`,
			`f.yaml:6: .write_files[1].encoding: unknown encoding "rot13" (allowed: text/plain, b64, base64, gzip, gz, gz+b64, gz+base64, gzip+b64, gzip+base64)`,
			`f.yaml:9: .write_files[2].content: content is not valid base64: illegal base64 data at input byte 0`,
			`f.yaml:10: .write_files[2].owner: invalid owner "Root": user or user:group`,
			`f.yaml:11: .write_files[2].permissions: invalid permissions "0999": an octal mode such as '0644'`}},
		{"ntp", head + "ntp:\n  servers: ['bad host']\n", []string{`f.yaml:4: .ntp.servers[0]: invalid host "bad host": a DNS name or an IP address`}},
		{"network", head + "network:\n  interfaces:\n    this-name-is-too-long:\n      addresses: [10.0.0.1]\n    eth0:\n      match: {macaddress: '52:54'}\n      gateway4: 'fe80::1'\n      gateway6: 10.0.0.1\n      routes: [{to: 10.0.0.0/33, via: x}]\n      nameservers: {addresses: [dns], search: ['a b']}\n      mtu: 10\n", []string{
			`f.yaml:8: .network.interfaces.eth0.match.macaddress: invalid MAC address "52:54": six hex pairs such as 52:54:00:12:34:56`,
			`f.yaml:9: .network.interfaces.eth0.gateway4: invalid gateway "fe80::1": an IPv4 address`,
			`f.yaml:10: .network.interfaces.eth0.gateway6: invalid gateway "10.0.0.1": an IPv6 address`,
			`f.yaml:11: .network.interfaces.eth0.routes[0].to: invalid route destination "10.0.0.0/33": a prefix such as 10.0.0.0/8, or default`,
			`f.yaml:11: .network.interfaces.eth0.routes[0].via: invalid gateway "x"`,
			`f.yaml:12: .network.interfaces.eth0.nameservers.addresses[0]: invalid IP address "dns"`,
			`f.yaml:12: .network.interfaces.eth0.nameservers.search[0]: invalid search domain "a b"`,
			`f.yaml:13: .network.interfaces.eth0.mtu: mtu 10 out of range 68-65535`,
			`f.yaml:5: .network.interfaces.this-name-is-too-long: invalid interface name "this-name-is-too-long": at most 15 characters, or set match`,
			`f.yaml:6: .network.interfaces.this-name-is-too-long.addresses[0]: invalid address "10.0.0.1": an address with prefix length such as 192.168.1.10/24`}},
		{"cluster", head + "cluster:\n  role: master\n  server: http://x:6443\n  token: t\n  token_file: rel\n  node_name: 'A B'\n  labels: {'bad key!': v, ok: 'bad value!'}\n  taints: [nocolon, 'k=v:Sometimes']\n  datastore: 'ftp://x'\n  extra_args: [debug]\n", []string{
			`f.yaml:4: .cluster.role: unknown role "master" (allowed: server, agent)`,
			`f.yaml:5: .cluster.server: server "http://x:6443" must be an https URL such as https://10.0.0.1:6443`,
			`f.yaml:7: .cluster.token_file: set token or token_file, not both`,
			`f.yaml:7: .cluster.token_file: token_file "rel" must be an absolute path`,
			`f.yaml:8: .cluster.node_name: invalid node name "A B": a DNS name`,
			`f.yaml:9: .cluster.labels["bad key!"]: invalid label key "bad key!"`,
			`f.yaml:9: .cluster.labels.ok: invalid label value "bad value!": at most 63 letters, digits, '-', '_', '.'`,
			`f.yaml:10: .cluster.taints[0]: invalid taint "nocolon": key[=value]:Effect`,
			`f.yaml:10: .cluster.taints[1]: invalid taint effect "Sometimes" (allowed: NoSchedule, PreferNoSchedule, NoExecute)`,
			`f.yaml:11: .cluster.datastore: invalid datastore endpoint (allowed: sqlite, etcd, postgres://..., mysql://..., https://etcd...)`,
			`f.yaml:12: .cluster.extra_args[0]: extra argument "debug" must start with '-' (one flag per entry, --flag=value)`}},
		{"update", head + "update:\n  channel: ftp://x\n  interval: 10s\n  window: {start: '25:00', duration: 48h, days: [monday]}\n", []string{
			`f.yaml:4: .update.channel: channel "ftp://x" must be an http or https URL`,
			`f.yaml:5: .update.interval: interval "10s" must be a duration of at least 1m, such as 6h`,
			`f.yaml:6: .update.window.start: start "25:00" must be HH:MM`,
			`f.yaml:6: .update.window.duration: duration "48h" must be a duration between 1s and 24h, such as 2h`,
			`f.yaml:6: .update.window.days[0]: unknown day "monday" (allowed: mon, tue, wed, thu, fri, sat, sun)`}},
		{"registries", head + "registries:\n  mirrors:\n    docker.io:\n      endpoint: [mirror]\n  configs:\n    r.example:\n      tls: {ca_file: ca.pem}\n", []string{
			`f.yaml:6: .registries.mirrors["docker.io"].endpoint[0]: endpoint "mirror" must be an http or https URL`,
			`f.yaml:9: .registries.configs["r.example"].tls.ca_file: "ca.pem" must be an absolute path`}},
		{"too big", "#cloud-config\n" + strings.Repeat("#", MaxDocumentSize), []string{`f.yaml: document is 1048590 bytes, more than the limit of 1048576`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse("f.yaml", []byte(tc.in))
			if diff := cmp.Diff(tc.want, errStrings(err)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	b, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := Parse("full.yaml", b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(d.Config.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"K10secret", "hunter2", "s3cret", "$6$rounds"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("Redacted() shows %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(string(out), "postgres://k3s:<redacted>@db.example.com:5432/k3s") {
		t.Errorf("datastore URL not redacted in place:\n%s", out)
	}
	if got := fmtV(d.Config.Cluster.Token); strings.Contains(got, "K10") {
		t.Errorf("fmt prints the token: %s", got)
	}
	// The original keeps its secrets (the last-good copy needs them).
	if string(*d.Config.Cluster.Token) != "K10secret::server:abc" {
		t.Errorf("Redacted changed the original")
	}
}

func TestCloudInitExamples(t *testing.T) {
	for _, tc := range []struct {
		file      string
		wantErrs  []string
		wantWarns []string
		check     func(t *testing.T, c *Config)
	}{
		{file: "cloudinit-users.yaml",
			wantErrs: []string{
				`testdata/cloudinit-users.yaml:29: .users[2].ssh_authorized_keys[0]: not an OpenSSH public key (authorized_keys line such as 'ssh-ed25519 AAAA... comment')`,
				`testdata/cloudinit-users.yaml:30: .users[2].ssh_authorized_keys[1]: not an OpenSSH public key (authorized_keys line such as 'ssh-ed25519 AAAA... comment')`},
			wantWarns: []string{
				`testdata/cloudinit-users.yaml:6: .groups: unsupported cloud-init key, ignored`,
				`testdata/cloudinit-users.yaml:17: .users[1].selinux_user: unsupported cloud-init key, ignored`,
				`testdata/cloudinit-users.yaml:18: .users[1].expiredate: unsupported cloud-init key, ignored`,
				`testdata/cloudinit-users.yaml:19: .users[1].ssh_import_id: unsupported cloud-init key, ignored`,
				`testdata/cloudinit-users.yaml:24: .users[2].sudo: unsupported cloud-init key, ignored`,
				`testdata/cloudinit-users.yaml:26: .users[2].ssh_import_id: unsupported cloud-init key, ignored`,
				`testdata/cloudinit-users.yaml:33: .users[3].inactive: unsupported cloud-init key, ignored`,
				`testdata/cloudinit-users.yaml:34: .users[3].system: unsupported cloud-init key, ignored`}},
		{file: "cloudinit-write-files.yaml", check: func(t *testing.T, c *Config) {
			var got []string
			for _, f := range c.WriteFiles {
				b, err := DecodeContent(f)
				if err != nil {
					t.Fatal(err)
				}
				m, _ := f.Mode()
				got = append(got, f.Path+" "+f.Owner+" "+strings.TrimSpace(string(b))+" "+fmtV(m))
			}
			want := []string{
				"/etc/resolv.conf root nameserver 8.8.8.8 420",
				"/etc/motd root Good news, everyone! 420",
				"/tmp/like_this root Pack my box with five dozen liquor jugs 420",
				"/tmp/or_like_this root Pack my box with five dozen liquor jugs 420",
				"/tmp/todolist root Pack my box with five dozen liquor jugs 420",
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile("testdata/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			d, warns, err := Parse("testdata/"+tc.file, b)
			if diff := cmp.Diff(tc.wantErrs, errStrings(err)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantWarns, errStrings(errOrNil(warns))); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
			if tc.check != nil && d != nil {
				tc.check(t, &d.Config)
			}
		})
	}
}

func errOrNil(is Issues) error {
	if len(is) == 0 {
		return nil
	}
	return is
}

func fmtV(v any) string { return strings.TrimSpace(yamlString(v)) }

func yamlString(v any) string {
	if s, ok := v.(interface{ String() string }); ok {
		return s.String()
	}
	b, _ := yaml.Marshal(v)
	return string(b)
}
