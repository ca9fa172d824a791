package build

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/basaltos/basalt/image/debian/debiantest"
	"github.com/basaltos/basalt/image/disk"
	"github.com/basaltos/basalt/image/spec"
	"github.com/basaltos/basalt/internal/testutil"
)

// fakeDebian serves the test kernel, the host's systemd-boot, busybox and
// the Paris zone as a signed Debian mirror (suite and suite-updates, amd64).
func fakeDebian(t *testing.T, suite string) *debiantest.FakeMirror {
	t.Helper()
	k, efi := localInputs(t)
	const busybox, paris = "/bin/busybox", "/usr/share/zoneinfo/Europe/Paris"
	testutil.NeedFile(t, busybox, "apt-get install busybox-static")
	testutil.NeedFile(t, paris, "apt-get install tzdata")
	rel := strings.TrimSpace(string(must(os.ReadFile(filepath.Join(k, "release")))))
	kfiles := map[string][]byte{"boot/vmlinuz-" + rel: must(os.ReadFile(filepath.Join(k, "vmlinuz")))}
	mods := filepath.Join(k, "lib", "modules", rel)
	if err := filepath.WalkDir(mods, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		r, _ := filepath.Rel(mods, p)
		kfiles["lib/modules/"+rel+"/"+filepath.ToSlash(r)] = must(os.ReadFile(p))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	m := debiantest.NewFakeMirror(t)
	m.AddSuite(t, suite, "amd64",
		debiantest.Pkg{Name: "linux-image-cloud-amd64", Version: "1", Depends: "linux-image-" + rel},
		debiantest.Pkg{Name: "linux-image-" + rel, Version: "1", Files: kfiles},
		debiantest.Pkg{Name: "systemd-boot-efi", Version: "1", Files: map[string][]byte{"usr/lib/systemd/boot/efi/systemd-bootx64.efi": must(os.ReadFile(efi))}},
		debiantest.Pkg{Name: busyboxPackage, Version: "1", Files: map[string][]byte{"bin/busybox": must(os.ReadFile(busybox))}},
		debiantest.Pkg{Name: tzdataPackage, Version: "1", Files: map[string][]byte{"usr/share/zoneinfo/Europe/Paris": must(os.ReadFile(paris))}},
		debiantest.Pkg{Name: caPackage, Version: "1", Files: map[string][]byte{"usr/share/ca-certificates/mozilla/Stand-in.crt": []byte("-----BEGIN CERTIFICATE-----\nstand-in\n-----END CERTIFICATE-----\n")}},
	)
	m.AddSuite(t, suite+"-updates", "amd64")
	t.Setenv("BASALT_DEBIAN_SECURITY_MIRROR", "none")

	return m
}

// TestFetchThenOfflineBuild: Fetch resolves the same inputs as Build, so a
// Fetch online followed by an offline Build of a spec with a shell and a
// time zone works (fetch once had its own list without busybox-static),
// and the offline build asks the mirror for nothing. It builds from
// bookworm, which stays selectable (trixie is the default).
func TestFetchThenOfflineBuild(t *testing.T) {
	m := fakeDebian(t, "bookworm")
	dir := t.TempDir()
	y := testutil.OSOnly(spec.DefaultYAML()) + "debian: {mirror: " + m.URL + ", suite: bookworm}\ndebug: {shell: true}\ntimezones: [Europe/Paris]\n"
	p := filepath.Join(dir, "basalt.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	s, _, err := spec.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{CacheDir: filepath.Join(dir, "cache"), Keyring: m.Keyring}
	got, _, err := Fetch(context.Background(), s, o)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range got {
		names = append(names, f.Input.Name)
	}
	for _, want := range []string{"linux-image-cloud-amd64", "systemd-boot-efi", busyboxPackage, tzdataPackage} {
		if !slices.Contains(names, want) {
			t.Errorf("fetch got %v, want %s among them", names, want)
		}
	}

	gets := m.Gets("pool/main/busybox-static_1_amd64.deb")
	o.Offline, o.OutDir = true, filepath.Join(dir, "out")
	arts, err := Build(context.Background(), s, o)
	if err != nil {
		t.Fatalf("offline build after fetch: %v", err)
	}
	if g := m.Gets("pool/main/busybox-static_1_amd64.deb"); g != gets {
		t.Errorf("the offline build downloaded busybox-static again (%d gets, then %d)", gets, g)
	}
	if len(arts) != 1 {
		t.Fatalf("artifacts %v", arts)
	}
	l, err := disk.Read(arts[0].Image)
	if err != nil {
		t.Fatal(err)
	}
	root := run(t, "unsquashfs", "-lls", "-d", "", extract(t, arts[0].Image, l.Partitions[1]))
	for _, want := range []string{" /bin/busybox\n", " /usr/share/zoneinfo/Europe/Paris\n"} {
		if !strings.Contains(root, want) {
			t.Errorf("root lacks%s", want)
		}
	}
}

// TestDefaultSpecLock: the embedded default spec keeps a lock in the cache,
// so a second build reads no Debian index, online or offline.
func TestDefaultSpecLock(t *testing.T) {
	m := fakeDebian(t, spec.DefaultSuite)
	t.Setenv("BASALT_DEBIAN_MIRROR", m.URL)
	// The default spec is a k3s server: k3s from a local stand-in release.
	rel := t.TempDir()
	k3sRelease(t, rel)
	t.Setenv(K3sEnv, rel)
	dir := t.TempDir()
	s := spec.Default(dir)
	o := Options{CacheDir: filepath.Join(dir, "cache"), Keyring: m.Keyring, OutDir: filepath.Join(dir, "out1")}
	if _, err := Build(context.Background(), s, o); err != nil {
		t.Fatal(err)
	}
	testutil.NeedFile(t, filepath.Join(o.CacheDir, DefaultSpecLock), "the first build writes it")
	const inRelease = "dists/" + spec.DefaultSuite + "/InRelease"
	before := m.Gets(inRelease)
	o.OutDir = filepath.Join(dir, "out2")
	if _, err := Build(context.Background(), s, o); err != nil {
		t.Fatal(err)
	}
	o.OutDir, o.Offline = filepath.Join(dir, "out3"), true
	if _, err := Build(context.Background(), s, o); err != nil {
		t.Fatalf("offline default build: %v", err)
	}
	if got := m.Gets(inRelease); got != before {
		t.Errorf("warm default builds read %s %d more times, want 0", inRelease, got-before)
	}
}
