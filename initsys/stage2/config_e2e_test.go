//go:build e2e

package stage2

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/image/fat"
)

// basaltCLI builds the host command (cmd/basalt) once per test and returns
// a runner giving its exit code and combined output.
func basaltCLI(t *testing.T) func(args ...string) (int, string) {
	bin := filepath.Join(t.TempDir(), "basalt")
	goBuild(t, target{goarch: runtime.GOARCH}, bin, "../../cmd/basalt")
	return func(args ...string) (int, string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatalf("basalt %v: %v", args, err)
		}
		return 0, string(out)
	}
}

// writeTemp writes content to dir/name and returns the path.
func writeTemp(t *testing.T, dir, name, content string) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// logLines logs the console lines about config, network and the probe.
func logLines(t *testing.T, log string) {
	for _, l := range strings.Split(log, "\n") {
		for _, k := range []string{"basalt: config", "basalt: NoCloud", "basalt: ready", "probe:", "network:", "config error", "step network", "step config"} {
			if strings.Contains(l, k) {
				t.Log(strings.TrimSpace(l))
				break
			}
		}
	}
}

const siteDropIn = `apiVersion: basalt.dev/v1alpha1
kind: DeviceConfig
hostname: dropin-host
network:
  interfaces:
    lan:
      match: {macaddress: "52:54:00:12:34:56"}
      addresses: [10.0.2.50/24]
      gateway4: 10.0.2.2
write_files:
  - path: /var/lib/e2e/dropin
    content: "written by basalt config add\n"
    permissions: "0640"
`

// TestE2EConfigDropIn: `basalt config add` writes a drop-in into the
// image's boot FAT (no mount); the device boots with its hostname, static
// address and default route on the interface matched by MAC (QEMU's first
// NIC, 52:54:00:12:34:56, is eth0; no DHCP), and its file written.
func TestE2EConfigDropIn(t *testing.T) {
	img, rd := prepare(t, x86_64, "basalt-data")
	basalt := basaltCLI(t)
	dropIn := writeTemp(t, t.TempDir(), "site.yaml", siteDropIn)
	if code, out := basalt("config", "add", img, dropIn, "--name", "50-site.yaml"); code != 0 || !strings.Contains(out, "wrote basalt/config.d/50-site.yaml") {
		t.Fatalf("config add: exit %d\n%s", code, out)
	}
	code, out := basalt("config", "show", img)
	if code != 0 || !strings.Contains(out, "hostname: dropin-host # basalt/config.d/50-site.yaml:3") {
		t.Fatalf("config show: exit %d\n%s", code, out)
	}
	v := bootVM(t, x86_64, img, rd, nil, "")
	v.expect(t, "basalt: config sources: [baked:/etc/basalt/config.yaml basalt/config.yaml basalt/config.d/50-site.yaml cmdline]",
		"basalt: step config-apply ok (", "basalt: step hostname ok (", "basalt: step network ok (", "basalt: ready",
		"probe: hostname dropin-host",
		"probe: eth0 addresses [10.0.2.50/24",
		"probe: default route via 10.0.2.2 dev eth0",
		"probe: /var/lib/e2e/dropin -rw-r----- \"written by basalt config add\\n\"",
		"probe: /var/lib/e2e/hello -rw------- \"hello from the boot partition\"",
		"network:  eth0 [10.0.2.50/24", "probe: status done", "poweroff now")
	v.m.Wait()
	log := v.m.Log()
	logLines(t, log)
	if strings.Contains(log, "dhcp4") {
		t.Errorf("DHCP ran on a static interface:\n%s", log)
	}
}

// TestE2EConfigNoCloudSeed: a seed image from `basalt config seed`,
// attached as a second virtio drive, sets the hostname (the seed wins over
// the boot partition's config), and a config reload keeps it.
func TestE2EConfigNoCloudSeed(t *testing.T) {
	img, rd := prepare(t, x86_64, "basalt-data")
	basalt := basaltCLI(t)
	dir := t.TempDir()
	writeTemp(t, dir, "user-data", "#cloud-config\nhostname: from-seed\n")
	writeTemp(t, dir, "meta-data", "instance-id: e2e-seed-1\n")
	seed := filepath.Join(t.TempDir(), "seed.img")
	if code, out := basalt("config", "seed", dir, "-o", seed); code != 0 {
		t.Fatalf("config seed: exit %d\n%s", code, out)
	}
	v := bootVM(t, x86_64, img, rd, nil, "", seed)
	v.expect(t, "basalt: NoCloud seed /dev/vdb (vfat)",
		"basalt: config sources: [baked:/etc/basalt/config.yaml basalt/config.yaml CIDATA/meta-data CIDATA/user-data cmdline]",
		"basalt: step hostname ok (", "basalt: ready", "probe: hostname from-seed",
		// The probe's basalt-init config reload reads the seed again.
		"basalt: config reload:", "config reloaded: no changes", "poweroff now")
	v.m.Wait()
	logLines(t, v.m.Log())
}

// TestE2EConfigBrokenDropIn is the negative twin: after a boot with a good
// drop-in, `basalt config add` refuses a broken one (exit 2, file and
// line); written into the FAT anyway, it is reported on the console and in
// status with its file and line, and the device still comes up with the
// last good config (hostname good-one, not the broken file's).
func TestE2EConfigBrokenDropIn(t *testing.T) {
	img, rd := prepare(t, x86_64, "basalt-data")
	basalt := basaltCLI(t)
	dir := t.TempDir()
	good := writeTemp(t, dir, "10-good.yaml", "apiVersion: basalt.dev/v1alpha1\nkind: DeviceConfig\nhostname: good-one\n")
	if code, out := basalt("config", "add", img, good); code != 0 {
		t.Fatalf("config add good: exit %d\n%s", code, out)
	}
	v := bootVM(t, x86_64, img, rd, nil, "")
	v.expect(t, "basalt: config sources: [baked:/etc/basalt/config.yaml basalt/config.yaml basalt/config.d/10-good.yaml cmdline]",
		"basalt: ready", "probe: hostname good-one", "poweroff now")
	v.m.Wait()

	const broken = "apiVersion: basalt.dev/v1alpha1\nkind: DeviceConfig\nhostname: bad-one\nnetwork:\n  interfaces:\n    eth0: {addresses: 10.0.2.50/24}\n"
	const reason = ":6: .network.interfaces.eth0.addresses: must be a list"
	bad := writeTemp(t, dir, "20-broken.yaml", broken)
	code, out := basalt("config", "add", img, bad)
	if code != 2 || !strings.Contains(out, bad+reason) {
		t.Fatalf("config add broken: exit %d, want 2 and %q\n%s", code, bad+reason, out)
	}
	t.Logf("config add broken: exit %d: %s", code, strings.TrimSpace(out))
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = fat.AddFile(f, 2048*512, 64*MiB, contract.BootConfigDir+"/20-broken.yaml", []byte(broken), 1700000000)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	v2 := bootVM(t, x86_64, img, rd, nil, "")
	v2.expect(t, "basalt: config error: basalt/config.d/20-broken.yaml"+reason,
		"basalt: config: using the last good config", "basalt: ready", "probe: hostname good-one",
		"config error: basalt/config.d/20-broken.yaml"+reason, "config: using the last good config", "poweroff now")
	v2.m.Wait()
	log := v2.m.Log()
	logLines(t, log)
	if strings.Contains(log, "bad-one") {
		t.Errorf("the broken drop-in's hostname took effect:\n%s", log)
	}
}
