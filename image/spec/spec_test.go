package spec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/basaltos/basalt/internal/errclass"
)

const head = "apiVersion: basalt.dev/v1alpha1\nkind: Image\nname: demo\nversion: 1.0.0\n"

func issues(err error) []string {
	var e *Error
	if !errors.As(err, &e) {
		if err != nil {
			return []string{"not a spec error: " + err.Error()}
		}
		return nil
	}
	var out []string
	for _, is := range e.Issues {
		out = append(out, is.String())
	}
	return out
}

func TestParseErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "k.deb"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "basalt.yaml")
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"empty", "", []string{"F: empty spec (want apiVersion, kind, name, version, boards)"}},
		{"syntax", head + "boards: [a, b\n", []string{"F:5: did not find expected ',' or ']'"}},
		{"unknown keys all at once", head + "boards: [qemu-x86_64]\nbord: x\ndisk:\n  bot: 1MiB\n", []string{
			"F:6: .bord: unknown key (allowed: apiVersion, kind, name, version, boards, kernel, bootloader, debian, overlays, disk, configTrust, configKey, secureBoot, verity, config, services, debug, timezones, orchestrator, images, manifests, update)",
			"F:8: .disk.bot: unknown key (allowed: boot, rootSlot, data, total)",
		}},
		{"missing required", "apiVersion: basalt.dev/v1alpha1\nkind: Image\n", []string{
			`F:1: .: missing required key "name"`,
			`F:1: .: missing required key "version"`,
			`F:1: .: missing required key "boards"`,
		}},
		{"enum and kinds", "apiVersion: basalt.dev/v2\nkind: Image\nname: demo\nversion: 1.0.0\nboards: qemu-x86_64\noverlays: {from: x}\n", []string{
			`F:1: .apiVersion: "basalt.dev/v2" is not allowed (allowed: basalt.dev/v1alpha1)`,
			"F:5: .boards: want a list, got the scalar \"qemu-x86_64\"",
			"F:6: .overlays: want a list, got a mapping",
		}},
		{"scalars", head + "boards: [qemu-x86_64]\ndisk: {boot: 12XB, data: [1]}\noverlays:\n  - {from: k.deb, to: /x, mode: \"0999\", uid: -1}\n", []string{
			`F:6: .disk.boot: size "12XB": want a whole number with a unit (allowed: B, KiB, MiB, GiB, TiB), e.g. 256MiB`,
			"F:6: .disk.data: want a scalar, got a list",
			`F:8: .overlays[0].mode: mode "0999": want octal permissions up to 07777, e.g. "0644"`,
			`F:8: .overlays[0].uid: want a whole number from 0 to 4294967295, got "-1"`,
		}},
		{"duplicate key", head + "boards: [qemu-x86_64]\nname: again\n", []string{
			"F:6: .name: duplicate key (first at line 3)",
		}},
		{"semantic, all at once", "apiVersion: basalt.dev/v1alpha1\nkind: Image\nname: Demo_1\nversion: v1\nboards: [qemu-x86_64, rpi9, qemu-x86_64]\n" +
			"kernel:\n  qemu-x86_64: {package: linux-image-cloud-amd64, deb: k.deb}\n  qemu-armv7: {vmlinuz: nope/vmlinuz}\n" +
			"bootloader:\n  qemu-armv7: {file: k.deb}\n" +
			"overlays:\n  - {from: missing, to: etc/x}\n" +
			"disk: {boot: 32MiB, rootSlot: 100MiB, data: 64MiB, total: 200MiB}\n", []string{
			`F:3: .name: "Demo_1": want lower-case letters, digits and '-', starting with a letter, at most 63 bytes`,
			`F:4: .version: "v1": want MAJOR.MINOR.PATCH with optional -PRERELEASE and +BUILD, e.g. 1.4.0`,
			`F:5: .boards[1]: unknown board "rpi9" (allowed: pc-x86_64, qemu-arm64, qemu-armv7, qemu-x86_64, rpi3, rpi4, rpi4-tryboot, rpi5, uefi-arm64)`,
			`F:5: .boards[2]: board "qemu-x86_64" listed twice`,
			`F:8: .kernel.qemu-armv7: vmlinuz needs modules (the lib/modules directory of that kernel)`,
			`F:8: .kernel.qemu-armv7.vmlinuz: D/nope/vmlinuz: no such file or directory`,
			`F:7: .kernel.qemu-x86_64: want exactly one of package, deb, vmlinuz (got 2)`,
			`F:10: .bootloader.qemu-armv7: board "qemu-armv7" boots with uboot-script, which has no bootloader file to override (allowed on systemd-boot boards)`,
			`F:12: .overlays[0].to: "etc/x": want a clean absolute path in the root, e.g. /etc/app`,
			`F:12: .overlays[0].from: D/missing: no such file or directory`,
			`F:13: .disk.boot: 32MiB is too small (at least 64MiB)`,
			`F:13: .disk.total: 200MiB cannot hold boot 32MiB + 2 x rootSlot 100MiB + data 64MiB + 2MiB of tables (298MiB)`,
		}},
		{"later sections", head + "boards: [qemu-x86_64]\ncluster: {role: agent}\nimages: [{ref: nginx:latest}]\nupdate: {channel: ftp://x, interval: soon}\n", []string{
			"F:6: .cluster: moved to config.cluster (the device config, so that drop-ins can change it; see docs/config.md)",
			"F:7: .images: preloaded images need orchestrator kind k3s (set orchestrator: {kind: k3s, version: ...})",
			`F:8: .update.channel: "ftp://x": want a URL (allowed schemes: http, https)`,
			`F:8: .update.interval: "soon": want a positive Go duration, e.g. 6h`,
		}},
		{"structural and semantic in one pass", "apiVersion: basalt.dev/v1alpha1\nkind: Image\nname: Bad_Name\nversion: 1.0.0\nboards: [rpi9]\ndisk: {bot: 1MiB}\n", []string{
			`F:3: .name: "Bad_Name": want lower-case letters, digits and '-', starting with a letter, at most 63 bytes`,
			`F:5: .boards[0]: unknown board "rpi9" (allowed: pc-x86_64, qemu-arm64, qemu-armv7, qemu-x86_64, rpi3, rpi4, rpi4-tryboot, rpi5, uefi-arm64)`,
			"F:6: .disk.bot: unknown key (allowed: boot, rootSlot, data, total)",
		}},
		{"config section, with the spec's lines", head + "boards: [qemu-x86_64]\nconfig:\n  hostname: \"not a host\"\n  # a comment\n  ntp: {servers: [\"\"]}\n  users:\n    - name: ops\n      shel: /bin/sh\ndisk: {data: 64MiB}\n", []string{
			"F:12: .config.users[0].shel: unknown key (allowed: gecos, groups, hashed_passwd, homedir, lock_passwd, name, passwd, primary_group, shell, ssh_authorized_keys, uid)",
		}},
		{"config semantic errors", head + "boards: [qemu-x86_64]\nconfig:\n  hostname: \"not a host\"\n  ntp: {servers: [\"a b\"]}\n", []string{
			`F:7: .config.hostname: invalid hostname "not a host": 1-63 letters, digits and '-', not starting or ending with '-'`,
			`F:8: .config.ntp.servers[0]: invalid host "a b": a DNS name or an IP address`,
		}},
		{"config flow style", head + "boards: [qemu-x86_64]\nconfig: {hostname: \"-x\"}\n", []string{
			`F:6: .config.hostname: invalid hostname "-x": 1-63 letters, digits and '-', not starting or ending with '-'`,
		}},
		{"services", head + "boards: [qemu-x86_64]\nservices:\n  - {name: app, path: usr/bin/app, env: [NOEQUALS]}\n  - {name: app, path: /bin/app, restart: sometimes}\n", []string{
			`F:7: .services[0].path: "usr/bin/app": want a clean absolute path in the root, e.g. /usr/bin/app`,
			`F:7: .services[0].env[0]: "NOEQUALS": want KEY=VALUE`,
			`F:8: .services[1].restart: "sometimes" is not allowed (allowed: always, on-failure, once)`,
			`F:8: .services[1].name: service "app" listed twice`,
		}},
		{"time zones the device could not set", head + "boards: [qemu-x86_64]\ntimezones: [Europe/Paris, Mars/Olympus, all]\nconfig:\n  timezone: Europe/Pariss\n", []string{
			`F:6: .timezones[1]: unknown time zone "Mars/Olympus" (want an IANA name like Europe/Paris, or "all" for every zone)`,
			`F:7: .config.timezone: unknown time zone "Europe/Pariss" (want an IANA name like Europe/Paris or UTC)`,
		}},
		{"orchestrator", head + "boards: [qemu-x86_64]\norchestrator: {kind: k3s, version: 1.33, path: nope, airgap: {path: x, none: true}}\nimages: [{ref: a, path: b}]\n", []string{
			`F:6: .orchestrator.version: "1.33": want a k3s release like v1.33.1+k3s1`,
			"F:6: .orchestrator.path: D/nope: no such file or directory",
			"F:6: .orchestrator.airgap: want one of path, none",
			"F:6: .orchestrator.airgap.path: D/x: no such file or directory",
			"F:7: .images[0]: want exactly one of ref, path",
			"F:7: .images[0].path: D/b: no such file or directory",
		}},
		{"config trust", head + "boards: [qemu-x86_64]\nconfigTrust: signed\nverity: maybe\n", []string{
			"F:6: .configTrust: signed needs configKey: the public key(s) config sources are signed with (basalt keygen)",
			"F:7: .verity: \"maybe\" is not allowed (allowed: on, off)",
		}},
		{"config key without trust", head + "boards: [qemu-x86_64]\nconfigKey: k.pub\n", []string{
			"F:6: .configKey: only used with configTrust: signed",
			"F:6: .configKey: D/k.pub: no such file or directory",
		}},
		{"orchestrator none", head + "boards: [qemu-x86_64]\norchestrator: {kind: none, version: v1.33.1+k3s1}\nmanifests: [{path: m.yaml}]\n", []string{
			"F:6: .orchestrator: kind none takes no version, path, mirror or airgap",
			"F:7: .manifests: manifests need orchestrator kind k3s (set orchestrator: {kind: k3s, version: ...})",
			"F:7: .manifests[0].path: D/m.yaml: no such file or directory",
		}},
		{"secure boot on a Pi, key without cert", head + "boards: [rpi4]\nsecureBoot:\n  key: db.key\n", []string{
			`F:5: .boards[0]: board "rpi4" boots with uboot-script: secureBoot needs a UEFI board (allowed: pc-x86_64, qemu-arm64, qemu-x86_64, uefi-arm64)`,
			"F:6: .secureBoot: want dir (from basalt keygen --secure-boot) or both key and cert (PEM RSA key and its certificate)",
		}},
		{"secure boot dir and key", head + "boards: [qemu-x86_64]\nsecureBoot: {dir: sb, key: k}\n", []string{
			"F:6: .secureBoot: want dir (from basalt keygen --secure-boot) or key and cert, not both",
		}},
		{"secure boot dir missing", head + "boards: [qemu-x86_64]\nsecureBoot:\n  dir: sb\n  stub: no.stub\n", []string{
			"F:7: .secureBoot.dir: D/sb: no such file or directory",
			"F:8: .secureBoot.stub: D/no.stub: no such file or directory",
		}},
		{"orchestrator kind", head + "boards: [qemu-x86_64]\norchestrator: {kind: k8s}\n", []string{
			`F:6: .orchestrator.kind: "k8s" is not allowed (allowed: k3s, none)`,
		}},
		{"two documents", head + "boards: [qemu-x86_64]\n---\nname: x\n", []string{"F:6: a second YAML document; a spec is one document"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _, err := Parse(file, []byte(tc.yaml))
			if err == nil {
				t.Fatalf("Parse = %+v, want errors", s)
			}
			if !errors.Is(err, errclass.ErrInvalid) {
				t.Errorf("error does not match errclass.ErrInvalid: %v", err)
			}
			var got []string
			for _, l := range issues(err) {
				got = append(got, strings.ReplaceAll(strings.ReplaceAll(l, file, "F"), dir, "D"))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("issues (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWarningsAndDefaults(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "basalt.yaml")
	y := head + "boards: [qemu-x86_64]\nkernel:\n  qemu-arm64: {package: linux-image-arm64}\n"
	s, warns, err := Parse(file, []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range warns {
		got = append(got, strings.ReplaceAll(w.String(), file, "F"))
	}
	want := []string{
		`F:7: .kernel.qemu-arm64: board "qemu-arm64" is not in .boards; this override is unused`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Disk{Boot: DefaultBootSize, Data: DefaultDataSize}, s.Disk); diff != "" {
		t.Errorf("disk defaults (-want +got):\n%s", diff)
	}
	if s.Debian.Suite != DefaultSuite {
		t.Errorf("suite = %q, want %q", s.Debian.Suite, DefaultSuite)
	}
	if got, want := s.Where(".kernel.qemu-arm64.package"), file+":7: .kernel.qemu-arm64.package"; got != want {
		t.Errorf("Where = %q, want %q", got, want)
	}
}

func TestDefault(t *testing.T) {
	s := Default(".")
	if diff := cmp.Diff([]string{"qemu-x86_64"}, s.Boards); diff != "" {
		t.Errorf("boards (-want +got):\n%s", diff)
	}
	if s.Name != "basalt-demo" || s.Disk.Boot != DefaultBootSize {
		t.Errorf("default spec = %+v", s)
	}
}

func TestSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
		str  string
		err  bool
	}{
		{"256MiB", 256 << 20, "256MiB", false},
		{"2GiB", 2 << 30, "2GiB", false},
		{"1536MiB", 1536 << 20, "1536MiB", false},
		{"1048576", 1 << 20, "1MiB", false},
		{"100B", 100, "100B", false},
		{"1 GiB", 1 << 30, "1GiB", false},
		{"-1MiB", 0, "", true},
		{"1.5GiB", 0, "", true},
		{"1GB", 0, "", true},
	} {
		var s Size
		err := s.parseScalar(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("parse %q: err = %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if tc.err {
			continue
		}
		if s != tc.want || s.String() != tc.str {
			t.Errorf("parse %q = %d (%s), want %d (%s)", tc.in, s, s, tc.want, tc.str)
		}
	}
}

func TestMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want os.FileMode
	}{
		{"0644", 0o644},
		{"755", 0o755},
		{"0o4755", 0o755 | os.ModeSetuid},
		{"1777", 0o777 | os.ModeSticky},
	} {
		var m Mode
		if err := m.parseScalar(tc.in); err != nil || m.FileMode() != tc.want {
			t.Errorf("parse %q = %v, %v; want %v", tc.in, m.FileMode(), err, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(head + "boards: [qemu-x86_64]\n"))
	f.Add([]byte(head + "boards: [qemu-x86_64]\ndisk: {boot: 256MiB}\noverlays: [{from: x, to: /y, mode: '0644'}]\n"))
	f.Add([]byte("a: &x [1]\nb: *x\n"))
	f.Add([]byte("{"))
	f.Add(defaultYAML)
	f.Add([]byte(head + "boards: [qemu-x86_64]\nconfig:\n  hostname: a\n  users:\n    - ops\n  # c\nservices: [{name: a, path: /a}]\n"))
	f.Add([]byte(head + "boards: [rpi9]\nconfig: {ntp: {servers: [x]}}\nconfig: 1\nname: again\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, _, err := Parse("f.yaml", data)
		if err == nil && s == nil {
			t.Fatal("nil spec without error")
		}
		if err != nil && !errors.Is(err, errclass.ErrInvalid) {
			t.Fatalf("error does not match errclass.ErrInvalid: %v", err)
		}
	})
}

func TestConfigSection(t *testing.T) {
	y := head + "boards: [qemu-x86_64]\nconfig:\n  hostname: store-1\n  users:\n    - name: ops\n      ssh_authorized_keys: [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN63+wLCBRhT/QFTm4TOMEelpf1sUpz2IVU2ytwZIxUa ops\"]\n  cluster: {role: agent, server: \"https://10.0.0.1:6443\", token: s3cret}\n"
	s, _, err := Parse("basalt.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if s.Config == nil || s.Config.Config.Hostname == nil || *s.Config.Config.Hostname != "store-1" {
		t.Fatalf("config = %+v", s.Config)
	}
	if !s.Config.HasSecrets() {
		t.Error("HasSecrets = false with a cluster token")
	}
	doc, err := s.Config.Document()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"apiVersion: basalt.dev/v1alpha1\n", "kind: DeviceConfig\n", "hostname: store-1\n", "token: s3cret\n"} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("document lacks %q:\n%s", want, doc)
		}
	}
	s.Config.Config.Cluster.Token = nil
	if s.Config.HasSecrets() {
		t.Error("HasSecrets = true without secrets")
	}
}

// The shipped examples validate, config: section included.
func TestExamples(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*/basalt.yaml")
	if len(files) == 0 {
		t.Fatal("no examples")
	}
	for _, f := range files {
		s, _, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if f == "../../examples/retail-store/basalt.yaml" {
			c := s.Config
			if c == nil || c.Config.Cluster == nil || *c.Config.Cluster.Role != "server" || c.Config.Update == nil || len(c.Config.Users) != 1 {
				t.Errorf("%s: config = %+v", f, c)
			}
		}
	}
}
