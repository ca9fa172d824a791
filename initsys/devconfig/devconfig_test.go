package devconfig

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/basaltos/basalt/contract/config"
	"github.com/basaltos/basalt/internal/testutil"
	"github.com/google/go-cmp/cmp"
)

const head = "apiVersion: basalt.dev/v1alpha1\nkind: DeviceConfig\n"

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadOrderAndLastGood(t *testing.T) {
	dir := t.TempDir()
	src := Sources{
		Baked:    filepath.Join(dir, "root/etc/basalt/config.yaml"),
		BootDir:  filepath.Join(dir, "boot"),
		SeedDir:  filepath.Join(dir, "seed"),
		Cmdline:  "console=ttyS0 basalt.timezone=UTC",
		LastGood: filepath.Join(dir, "data/basalt/config.last-good.yaml"),
	}
	write(t, src.Baked, head+"hostname: baked\nntp: {servers: [pool.example]}\n")
	write(t, filepath.Join(src.BootDir, "basalt/config.yaml"), head+"hostname: boot\n")
	write(t, filepath.Join(src.BootDir, "basalt/config.d/20-b.yaml"), head+"hostname: twenty\n")
	write(t, filepath.Join(src.BootDir, "basalt/config.d/10-a.yaml"), head+"hostname: ten\ncluster: {role: server, token: sekrit}\n")
	write(t, filepath.Join(src.SeedDir, "meta-data"), "instance-id: iid-1\nlocal-hostname: meta\n")
	write(t, filepath.Join(src.SeedDir, "user-data"), "#cloud-config\nhostname: seed\npackages: [vim]\n")

	r, err := Load(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	wantSources := []string{"baked:" + src.Baked, "basalt/config.yaml", "basalt/config.d/10-a.yaml", "basalt/config.d/20-b.yaml", "CIDATA/meta-data", "CIDATA/user-data", "cmdline"}
	if diff := cmp.Diff(wantSources, r.Sources); diff != "" {
		t.Errorf("sources (-want +got):\n%s", diff)
	}
	if got := *r.Config.Hostname + " " + *r.Config.Timezone + " " + r.InstanceID; got != "seed UTC iid-1" {
		t.Errorf("got %q", got)
	}
	if o, _ := r.Merged.Source(".hostname"); o.String() != "CIDATA/user-data:2" {
		t.Errorf("hostname origin %v", o)
	}
	if diff := cmp.Diff([]string{"CIDATA/user-data:3: .packages: unsupported cloud-init key, ignored"}, issueStrings(r.Warnings)); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	st, err := os.Stat(src.LastGood)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("last good: %v %v", st, err)
	}

	// A broken drop-in: reported with file and line, last good used.
	write(t, filepath.Join(src.BootDir, "basalt/config.d/30-bad.yaml"), head+"hostname: ok\nntp:\n  servers: [\"bad host\"]\n")
	r, err = Load(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{`basalt/config.d/30-bad.yaml:5: .ntp.servers[0]: invalid host "bad host": a DNS name or an IP address`}, issueStrings(r.Errors)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	if !r.UsedLastGood || *r.Config.Hostname != "seed" || string(*r.Config.Cluster.Token) != "sekrit" {
		t.Errorf("used last good %v, hostname %q", r.UsedLastGood, *r.Config.Hostname)
	}
	if rep := r.Report(); !strings.Contains(rep, "config error: basalt/config.d/30-bad.yaml:5:") || strings.Contains(rep, "sekrit") {
		t.Errorf("report:\n%s", rep)
	}

	// First boot (no last good) with the broken drop-in: the valid sources.
	os.Remove(src.LastGood)
	r, err = Load(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if r.UsedLastGood || *r.Config.Hostname != "seed" || len(r.Errors) != 1 {
		t.Errorf("first boot: used last good %v, hostname %q, errors %v", r.UsedLastGood, *r.Config.Hostname, r.Errors)
	}
	if _, err := os.Stat(src.LastGood); err == nil {
		t.Errorf("a config with errors became the last good one")
	}
}

func issueStrings(is config.Issues) []string {
	var s []string
	for _, i := range is {
		s = append(s, i.Error())
	}
	return s
}

const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl a"

func TestApply(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")
	write(t, filepath.Join(root, "etc/group"), "root:x:0:\nwheel:x:10:\n")
	write(t, filepath.Join(root, "etc/motd"), "hello\n")
	d, _, err := config.Parse("f", []byte(`#cloud-config
ssh_authorized_keys: ["`+key+`"]
users:
  - default
  - name: ops
    groups: [wheel, video]
    passwd: $6$salt$hash
    lock_passwd: false
  - name: root
    ssh_authorized_keys: ["`+key+`"]
write_files:
  - {path: /etc/motd, content: "more\n", append: true}
  - {path: /etc/app/conf, content: aGk=, encoding: b64, permissions: '0600'}
  - {path: /var/home/ops/notes, content: deferred, defer: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(context.Background(), &d.Config, ApplyOptions{Root: root}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, want string
		mode       os.FileMode
	}{
		{"etc/motd", "hello\nmore\n", 0o644},
		{"etc/app/conf", "hi", 0o600},
		{"var/home/ops/notes", "deferred", 0o644},
		{"etc/passwd", "root:x:0:0:root:/root:/bin/sh\nbasalt:x:1000:1000::/var/home/basalt:/bin/sh\nops:x:1001:1001::/var/home/ops:/bin/sh\n", 0o644},
		{"etc/group", "root:x:0:\nwheel:x:10:ops\nbasalt:x:1000:\nops:x:1001:\nvideo:x:1002:ops\n", 0o644},
		{"etc/shadow", "basalt:!:0:0:99999:7:::\nops:$6$salt$hash:0:0:99999:7:::\nroot:!:0:0:99999:7:::\n", 0o600},
		{"var/home/basalt/.ssh/authorized_keys", key + "\n", 0o600},
		{"root/.ssh/authorized_keys", key + "\n", 0o600}, // root keeps /root (bound from data)
	} {
		b, err := os.ReadFile(filepath.Join(root, tc.path))
		if err != nil {
			t.Error(err)
			continue
		}
		if diff := cmp.Diff(tc.want, string(b)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.path, diff)
		}
		if st, _ := os.Stat(filepath.Join(root, tc.path)); st.Mode().Perm() != tc.mode {
			t.Errorf("%s: mode %v, want %v", tc.path, st.Mode().Perm(), tc.mode)
		}
	}
	// Applying again changes nothing (reload).
	if err := Apply(context.Background(), &d.Config, ApplyOptions{Root: root}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/passwd")); strings.Count(string(b), "\nops:x:") != 1 {
		t.Errorf("second apply duplicated users:\n%s", b)
	}
}

func TestProbeFAT(t *testing.T) {
	mkfs := testutil.NeedTool(t, "mkfs.vfat")
	for _, tc := range []struct{ args []string }{{[]string{"-F", "32"}}, {[]string{"-F", "12"}}} {
		img := filepath.Join(t.TempDir(), "seed.img")
		f, _ := os.Create(img)
		f.Truncate(40 << 20)
		f.Close()
		if out, err := exec.Command(mkfs, append(tc.args, "-n", "cidata", img)...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		f, err := os.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		typ, label, err := Probe(f)
		f.Close()
		if err != nil || typ != "vfat" || !strings.EqualFold(label, SeedLabel) {
			t.Errorf("%v: got %q %q %v", tc.args, typ, label, err)
		}
	}
}

func TestProbeISO(t *testing.T) {
	b := make([]byte, 17*2048)
	copy(b[16*2048:], "\x01CD001\x01")
	copy(b[16*2048+40:], "cidata                          ")
	typ, label, err := Probe(strings.NewReader(string(b)))
	if err != nil || typ != "iso9660" || label != "cidata" {
		t.Errorf("got %q %q %v", typ, label, err)
	}
	typ, _, err = Probe(strings.NewReader(string(make([]byte, 4096))))
	if err != nil || typ != "" {
		t.Errorf("zeros: got %q %v", typ, err)
	}
}
