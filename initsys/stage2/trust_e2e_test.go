//go:build e2e

package stage2

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/basaltos/basalt/contract/bundle"
	"github.com/basaltos/basalt/contract/config"
)

// TestE2EConfigTrustSigned: a root with config keys (configTrust: signed)
// merges only the drop-in signed with `basalt config add --sign-key`; the
// unsigned boot config.yaml, a drop-in signed by another key that adds an
// SSH key and writes a file, and a non-harmless command-line key are
// refused on the console and in status, and none of them takes effect.
// (configTrust: any is TestE2EConfigDropIn.)
func TestE2EConfigTrustSigned(t *testing.T) {
	key := ed25519.NewKeyFromSeed([]byte("basalt-e2e-config-trust-key-0001"))
	forger := ed25519.NewKeyFromSeed([]byte("basalt-e2e-config-trust-forger01"))
	pub, err := bundle.MarshalPublicKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	tg := x86_64
	kdir := testKernel(t, tg)
	bin := filepath.Join(t.TempDir(), "basalt-init")
	goBuild(t, tg, bin, "../../cmd/basalt-init")
	img := diskWith(t, tg, bin, "basalt-data", map[string]string{strings.TrimPrefix(config.TrustKeysFile, "/"): string(pub)})
	rd := initrd(t, kdir, bin)

	basalt := basaltCLI(t)
	dir := t.TempDir()
	keyFile := func(name string, k ed25519.PrivateKey) string {
		b, err := bundle.MarshalPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, bad := keyFile("good.key", key), keyFile("forger.key", forger)
	site := writeTemp(t, dir, "site.yaml", "#cloud-config\nhostname: signed-host\n")
	sshKey, err := ssh.NewPublicKey(forger.Public())
	if err != nil {
		t.Fatal(err)
	}
	evil := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshKey)))
	forged := writeTemp(t, dir, "forged.yaml", "#cloud-config\nssh_authorized_keys: [\""+evil+" forger\"]\n"+
		"write_files: [{path: /var/lib/e2e/forged, content: forged}]\n")
	for _, a := range [][]string{{site, "50-site.yaml", good}, {forged, "60-forged.yaml", bad}} {
		if code, out := basalt("config", "add", img, a[0], "--name", a[1], "--sign-key", a[2]); code != 0 {
			t.Fatalf("config add %s: exit %d\n%s", a[1], code, out)
		}
	}
	v := bootVM(t, tg, img, rd, nil, "basalt.cluster.server=https://10.0.2.99:6443")
	v.expect(t,
		"basalt: config refused: basalt/config.yaml: ignored (configTrust: signed): not signed",
		"basalt: config refused: basalt/config.d/60-forged.yaml: ignored (configTrust: signed): bad signature: not by a key baked into the image",
		"basalt: config refused: cmdline: basalt.cluster.server: ignored (configTrust: signed)",
		"basalt: config sources: [baked:/etc/basalt/config.yaml basalt/config.d/50-site.yaml cmdline]",
		"basalt: ready", "probe: hostname signed-host",
		"config refused: basalt/config.d/60-forged.yaml", "probe: status done", "poweroff now")
	v.m.Wait()
	log := v.m.Log()
	logLines(t, log)
	for _, bad := range []string{"/var/lib/e2e/forged", "/var/lib/e2e/hello", evil} {
		if strings.Contains(log, bad) {
			t.Errorf("a refused source took effect (%s):\n%s", bad, log)
		}
	}
}
