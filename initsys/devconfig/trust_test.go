package devconfig

import (
	"context"
	"crypto/ed25519"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/basaltos/basalt/contract/config"
)

// TestLoadSigned: under configTrust: signed only signed sources merge and
// only harmless command-line keys are read; the rest is refused, not an
// error, so the device boots with what is trusted.
func TestLoadSigned(t *testing.T) {
	dir := t.TempDir()
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	forger := ed25519.NewKeyFromSeed([]byte("0123456789abcdef0123456789abcdef"))
	src := Sources{
		Baked:   filepath.Join(dir, "root/etc/basalt/config.yaml"),
		BootDir: filepath.Join(dir, "boot"),
		SeedDir: filepath.Join(dir, "seed"),
		Cmdline: "console=ttyS0 basalt.timezone=UTC basalt.cluster.server=https://evil:6443",
		Keys:    []ed25519.PublicKey{key.Public().(ed25519.PublicKey)},
	}
	signed := func(path, content string, k ed25519.PrivateKey) {
		write(t, path, content)
		if k != nil {
			write(t, path+config.SigSuffix, string(config.Sign(k, []byte(content))))
		}
	}
	write(t, src.Baked, head+"hostname: baked\n")
	signed(filepath.Join(src.BootDir, "basalt/config.d/10-site.yaml"), head+"hostname: site\n", key)
	signed(filepath.Join(src.BootDir, "basalt/config.d/50-forged.yaml"), head+"ssh_authorized_keys: [\"ssh-ed25519 AAAA evil\"]\n", forger)
	signed(filepath.Join(src.BootDir, "basalt/config.d/60-unsigned.yaml"), head+"hostname: unsigned\n", nil)
	signed(filepath.Join(src.SeedDir, "user-data"), "#cloud-config\nhostname: seed\n", nil)

	r, err := Load(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"baked:" + src.Baked, "basalt/config.d/10-site.yaml", "cmdline"}, r.Sources); diff != "" {
		t.Errorf("sources (-want +got):\n%s", diff)
	}
	if len(r.Errors) != 0 || *r.Config.Hostname != "site" || *r.Config.Timezone != "UTC" || len(r.Config.SSHAuthorizedKeys) != 0 || r.Config.Cluster != nil {
		t.Errorf("config %+v, errors %v", r.Config, r.Errors)
	}
	want := []string{
		"basalt/config.d/50-forged.yaml: ignored (configTrust: signed): bad signature: not by a key baked into the image",
		"basalt/config.d/60-unsigned.yaml: ignored (configTrust: signed): not signed",
		"CIDATA/user-data: ignored (configTrust: signed): not signed",
		"cmdline: basalt.cluster.server: ignored (configTrust: signed): only basalt.hostname, basalt.fqdn and basalt.timezone are read from the command line",
	}
	if diff := cmp.Diff(want, issueStrings(r.Refused)); diff != "" {
		t.Errorf("refused (-want +got):\n%s", diff)
	}
}
