package debian

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/google/go-cmp/cmp"

	"github.com/basaltos/basalt/image/cache"
)

// archive is a fake Debian archive: bookworm at /debian, bookworm-security
// at /security, both signed by key.
type archive struct {
	m        *fakeMirror
	key      *openpgp.Entity
	sources  []Source
	cacheDir string
}

func kernelPkg(abi, version string) fakePkg {
	rel := "6.1.0-" + abi + "-cloud-amd64"
	return fakePkg{name: "linux-image-" + rel, version: version, files: map[string]string{
		"boot/vmlinuz-" + rel:                     "KERNEL " + version,
		"lib/modules/" + rel + "/modules.builtin": "",
	}}
}

func newArchive(t *testing.T) *archive {
	a := &archive{m: newFakeMirror(t), key: newKey(t, "archive"), cacheDir: t.TempDir()}
	a.sources = []Source{
		a.m.addSuite(t, "/debian", "bookworm", []fakePkg{
			{name: "linux-image-cloud-amd64", version: "6.1.158-1", depends: "linux-image-6.1.0-40-cloud-amd64 (= 6.1.158-1)"},
			kernelPkg("40", "6.1.158-1"),
			{name: "systemd-boot-efi", version: "252.39-1~deb12u1", files: map[string]string{"usr/lib/systemd/boot/efi/systemd-bootx64.efi": "MZ"}},
			{name: "u-boot-qemu", version: "2023.01+dfsg-2", files: map[string]string{"usr/lib/u-boot/qemu_arm/u-boot.bin": "UB"}},
			{name: "raspi-firmware", version: "1.20250430-4", component: "non-free-firmware", files: map[string]string{"usr/lib/raspi-firmware/start4.elf": "ELF"}},
		}, suiteOpts{signer: a.key}),
		a.m.addSuite(t, "/security", "bookworm-security", []fakePkg{
			{name: "linux-image-cloud-amd64", version: "6.1.192-2", depends: "linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)"},
			kernelPkg("56", "6.1.192-2"),
			{name: "u-boot-qemu", version: "2023.01+dfsg-2~old1", files: map[string]string{"x": "old"}},
		}, suiteOpts{signer: a.key, validUntil: testNow.Add(24 * time.Hour).Format(time.RFC1123)}),
	}
	return a
}

func (a *archive) client(t *testing.T, offline bool) *Client {
	c, err := cache.Open(a.cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	c.Offline = offline
	return &Client{Sources: a.sources, Arch: "amd64", Keyring: openpgp.EntityList{a.key}, Cache: c, Now: func() time.Time { return testNow }}
}

type resolved struct{ Name, Version, Suite string }

// TestComponents: a package of non-free-firmware is found only when the
// client indexes that component; a component the suite lacks is an error
// naming the ones it has.
func TestComponents(t *testing.T) {
	a := newArchive(t)
	ctx := context.Background()
	c := a.client(t, false)
	if _, err := c.Resolve(ctx, "raspi-firmware"); err == nil || !strings.Contains(err.Error(), `package "raspi-firmware" not found`) {
		t.Fatalf("main only: err = %v, want not found", err)
	}
	c = a.client(t, false)
	c.Components = []string{"main", "non-free-firmware"}
	p, err := c.Resolve(ctx, "raspi-firmware")
	if err != nil {
		t.Fatal(err)
	}
	if p.Filename != "pool/non-free-firmware/raspi-firmware_1.20250430-4_amd64.deb" {
		t.Errorf("filename %s", p.Filename)
	}
	if _, err := c.Fetch(ctx, p); err != nil {
		t.Fatal(err)
	}
	c = a.client(t, false)
	c.Components = []string{"main", "contrib"}
	if _, err := c.Resolve(ctx, "raspi-firmware"); err == nil || !strings.Contains(err.Error(), `suite has no component "contrib" (it has: main, non-free-firmware)`) {
		t.Errorf("contrib: err = %v", err)
	}
}

func TestResolveAndFetch(t *testing.T) {
	a := newArchive(t)
	c := a.client(t, false)
	ctx := context.Background()
	tests := []struct {
		name   string
		kernel bool
		want   resolved
	}{
		// the metapackage in security is newer and points at the newer ABI
		{"linux-image-cloud-amd64", true, resolved{"linux-image-6.1.0-56-cloud-amd64", "6.1.192-2", "bookworm-security"}},
		{"linux-image-cloud-amd64", false, resolved{"linux-image-cloud-amd64", "6.1.192-2", "bookworm-security"}},
		{"linux-image-6.1.0-40-cloud-amd64", true, resolved{"linux-image-6.1.0-40-cloud-amd64", "6.1.158-1", "bookworm"}},
		// "~old1" sorts before the main version: main wins
		{"u-boot-qemu", false, resolved{"u-boot-qemu", "2023.01+dfsg-2", "bookworm"}},
	}
	for _, tt := range tests {
		resolve := c.Resolve
		if tt.kernel {
			resolve = c.ResolveKernel
		}
		p, err := resolve(ctx, tt.name)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if diff := cmp.Diff(tt.want, resolved{p.Name, p.Version, p.Source.Suite}); diff != "" {
			t.Errorf("%s (kernel=%v) (-want +got)\n%s", tt.name, tt.kernel, diff)
		}
		path, err := c.Fetch(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		d, err := OpenDeb(path)
		if err != nil {
			t.Fatal(err)
		}
		if d.Control["Package"] != p.Name || d.Control["Version"] != p.Version {
			t.Errorf("fetched %s, want %s %s", d.Name(), p.Name, p.Version)
		}
	}

	// A second client with an offline cache resolves and fetches without
	// touching the network.
	hits := a.m.hits
	off := a.client(t, true)
	p, err := off.ResolveKernel(ctx, "linux-image-cloud-amd64")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := off.Fetch(ctx, p); err != nil {
		t.Fatal(err)
	}
	if a.m.hits != hits {
		t.Errorf("offline client made %d requests", a.m.hits-hits)
	}
	// Offline, something never fetched is a clear error.
	p, err = off.Resolve(ctx, "linux-image-cloud-amd64")
	if err != nil {
		t.Fatal(err)
	}
	p.SHA256 = strings.Repeat("0", 64)
	if _, err := off.Fetch(ctx, p); err == nil || !strings.Contains(err.Error(), "is not in the cache") {
		t.Errorf("offline fetch of a missing blob: %v", err)
	}
}

func TestResolveErrors(t *testing.T) {
	ctx := context.Background()
	other := newKey(t, "other")
	tests := []struct {
		name    string
		mutate  func(t *testing.T, a *archive)
		pkg     string
		wantErr []string
	}{
		{"unknown package", nil, "no-such-package",
			[]string{`package "no-such-package" not found for arch amd64 in bookworm at http://`, "bookworm-security at"}},
		{"bad signature", func(t *testing.T, a *archive) {
			p := "/debian/dists/bookworm/InRelease"
			a.m.set(p, []byte(strings.Replace(string(a.m.get(p)), "Origin: Debian", "Origin: Evil", 1)))
		}, "systemd-boot-efi", []string{"bookworm/InRelease: signature not valid"}},
		{"unsigned", func(t *testing.T, a *archive) {
			a.m.set("/debian/dists/bookworm/InRelease", []byte("Suite: bookworm\nDate: Mon, 01 Jun 2026 10:00:00 UTC\n"))
		}, "systemd-boot-efi", []string{"bookworm/InRelease: not an OpenPGP clearsigned file (unsigned InRelease)"}},
		{"key not in keyring", func(t *testing.T, a *archive) {
			a.sources[0] = a.m.addSuite(t, "/debian", "bookworm", []fakePkg{{name: "x", version: "1"}}, suiteOpts{signer: other})
		}, "x", []string{"signature not valid", "unknown entity"}},
		{"expired Valid-Until", func(t *testing.T, a *archive) {
			a.sources[1] = a.m.addSuite(t, "/security", "bookworm-security", nil, suiteOpts{signer: a.key, validUntil: testNow.Add(-time.Minute).Format(time.RFC1123)})
		}, "systemd-boot-efi", []string{"bookworm-security/InRelease: expired: Valid-Until"}},
		{"wrong suite", func(t *testing.T, a *archive) {
			a.m.set("/security/dists/bookworm-security/InRelease", a.m.get("/debian/dists/bookworm/InRelease"))
		}, "systemd-boot-efi", []string{`is for suite "bookworm" (codename "bookworm"), want "bookworm-security"`}},
		{"Packages sha256 mismatch", func(t *testing.T, a *archive) {
			p := "/debian/dists/bookworm/main/binary-amd64/Packages.xz"
			a.m.set(p, make([]byte, len(a.m.get(p))))
		}, "systemd-boot-efi", []string{"bookworm/main/binary-amd64/Packages.xz: sha256 mismatch: want "}},
		{"Packages size mismatch", func(t *testing.T, a *archive) {
			a.m.set("/debian/dists/bookworm/main/binary-amd64/Packages.xz", []byte("not the signed index"))
		}, "systemd-boot-efi", []string{"bookworm/main/binary-amd64/Packages.xz: size 20, want"}},
		{"security Packages stale", func(t *testing.T, a *archive) {
			a.m.set("/security/dists/bookworm-security/main/binary-amd64/Packages.xz", []byte("stale index"))
		}, "systemd-boot-efi", []string{"suite bookworm-security at ", "index main/binary-amd64/Packages.xz fails verification against the signed InRelease, refused",
			"size 11, want", "this is the security suite bookworm-security: ", "BASALT_DEBIAN_SECURITY_MIRROR=none"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newArchive(t)
			if tt.mutate != nil {
				tt.mutate(t, a)
			}
			_, err := a.client(t, false).Resolve(ctx, tt.pkg)
			for _, w := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestFetchDebMismatch(t *testing.T) {
	a := newArchive(t)
	c := a.client(t, false)
	ctx := context.Background()
	p, err := c.Resolve(ctx, "systemd-boot-efi")
	if err != nil {
		t.Fatal(err)
	}
	deb := a.m.get("/debian/" + p.Filename)
	bad := append([]byte(nil), deb...)
	bad[len(bad)-1] ^= 0xff
	a.m.set("/debian/"+p.Filename, bad)
	_, err = c.Fetch(ctx, p)
	for _, w := range []string{p.URL(), "sha256 mismatch: want " + p.SHA256 + ", got " + sum(bad)} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("err = %v, want it to contain %q", err, w)
		}
	}
	if _, ok := c.Cache.Blob(sum(bad)); ok {
		t.Error("the bad .deb was stored in the cache")
	}
}

func TestFetchInputsLock(t *testing.T) {
	a := newArchive(t)
	ctx := context.Background()
	inputs := []Input{{Name: "linux-image-cloud-amd64", Kernel: true}, {Name: "systemd-boot-efi"}}
	lockPath := filepath.Join(t.TempDir(), cache.LockName)
	lock, _ := cache.ReadLock(lockPath)
	got, err := a.client(t, false).FetchInputs(ctx, lock, "qemu-x86_64", inputs, false)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Package.Name != "linux-image-6.1.0-56-cloud-amd64" || got[0].Path == "" {
		t.Errorf("kernel = %+v", got[0])
	}
	if err := lock.Write(lockPath); err != nil {
		t.Fatal(err)
	}
	lock2, err := cache.ReadLock(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(lock, lock2); diff != "" {
		t.Errorf("lock round trip (-want +got)\n%s", diff)
	}
	l, _ := lock2.Find("qemu-x86_64", "linux-image-cloud-amd64")
	if l.SHA256 != got[0].SHA256 || l.InRelease.URL != a.sources[1].Mirror+"/dists/bookworm-security/InRelease" || l.InRelease.SHA256 == "" {
		t.Errorf("lock entry %+v", l)
	}

	// The archive moves on: a newer kernel in security.
	a.sources[1] = a.m.addSuite(t, "/security", "bookworm-security", []fakePkg{
		{name: "linux-image-cloud-amd64", version: "6.1.200-1", depends: "linux-image-6.1.0-60-cloud-amd64"},
		kernelPkg("60", "6.1.200-1"),
	}, suiteOpts{signer: a.key})
	pinned, err := a.client(t, false).FetchInputs(ctx, lock2, "qemu-x86_64", inputs, false)
	if err != nil {
		t.Fatal(err)
	}
	if pinned[0].Version != "6.1.192-2" {
		t.Errorf("locked fetch got %s, want the pinned 6.1.192-2", pinned[0].Version)
	}
	// Pinned and cached: works offline too.
	if _, err := a.client(t, true).FetchInputs(ctx, lock2, "qemu-x86_64", inputs, false); err != nil {
		t.Errorf("offline locked fetch: %v", err)
	}
	// Not cached and gone from the mirror: tell the user to update the lock.
	os.RemoveAll(filepath.Join(a.cacheDir, "sha256"))
	os.MkdirAll(filepath.Join(a.cacheDir, "sha256"), 0o755)
	a.m.set("/security/"+l.Filename, nil)
	delete(a.m.files, "/security/"+l.Filename)
	_, err = a.client(t, false).FetchInputs(ctx, lock2, "qemu-x86_64", inputs, false)
	if err == nil || !strings.Contains(err.Error(), "run `basalt fetch --update-lock`") {
		t.Errorf("err = %v", err)
	}
	updated, err := a.client(t, false).FetchInputs(ctx, lock2, "qemu-x86_64", inputs, true)
	if err != nil {
		t.Fatal(err)
	}
	if updated[0].Version != "6.1.200-1" || updated[0].Package.Name != "linux-image-6.1.0-60-cloud-amd64" {
		t.Errorf("update-lock got %s %s", updated[0].Package.Name, updated[0].Version)
	}
	if l, _ := lock2.Find("qemu-x86_64", "linux-image-cloud-amd64"); l.Version != "6.1.200-1" {
		t.Errorf("lock not updated: %+v", l)
	}
	// The spec moves to another release: a pin from a suite the client
	// does not use is stale and resolved again.
	trixie := a.m.addSuite(t, "/debian", "trixie", []fakePkg{
		{name: "linux-image-cloud-amd64", version: "6.12.57-1", depends: "linux-image-6.12.57+deb13-cloud-amd64"},
		{name: "linux-image-6.12.57+deb13-cloud-amd64", version: "6.12.57-1", files: map[string]string{"boot/vmlinuz-6.12.57+deb13-cloud-amd64": "K"}},
		{name: "systemd-boot-efi", version: "257.9-1~deb13u1", files: map[string]string{"usr/lib/systemd/boot/efi/systemd-bootx64.efi": "MZ"}},
	}, suiteOpts{signer: a.key})
	c := a.client(t, false)
	c.Sources = []Source{trixie}
	moved, err := c.FetchInputs(ctx, lock2, "qemu-x86_64", inputs, false)
	if err != nil {
		t.Fatal(err)
	}
	if moved[0].Version != "6.12.57-1" {
		t.Errorf("after the move to trixie got %s, want 6.12.57-1", moved[0].Version)
	}
}

func TestFindMirrors(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc/apt/sources.list.d"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/apt/sources.list.d/debian.sources"), []byte(`Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
`), 0o644)
	os.WriteFile(filepath.Join(root, "etc/apt/sources.list"), []byte("# deb http://old/debian bookworm main\ndeb [arch=amd64 signed-by=/x.gpg] http://list.example/debian bookworm main\n"), 0o644)
	tests := []struct {
		name, spec, env, secEnv, root string
		want                          Mirrors
		wantErr                       string
	}{
		{"host sources", "", "", "", root, Mirrors{"http://list.example/debian", "http://mirror.example/debian-security"}, ""},
		{"spec wins", "http://spec/debian/", "http://env/debian", "", root, Mirrors{"http://spec/debian", "http://mirror.example/debian-security"}, ""},
		{"env", "", "http://env/debian", "none", root, Mirrors{"http://env/debian", ""}, ""},
		{"nothing", "", "", "", t.TempDir(), Mirrors{}, "set debian.mirror in the spec, or BASALT_DEBIAN_MIRROR="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("BASALT_DEBIAN_MIRROR", tt.env)
			t.Setenv("BASALT_DEBIAN_SECURITY_MIRROR", tt.secEnv)
			got, err := FindMirrors(tt.spec, tt.root)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestEmbeddedKeyring(t *testing.T) {
	kr, err := DebianKeyring()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range kr {
		for n := range e.Identities {
			names = append(names, n)
		}
	}
	all := strings.Join(names, ";")
	if len(kr) != 6 || !strings.Contains(all, "(12/bookworm)") || !strings.Contains(all, "(13/trixie)") {
		t.Errorf("embedded keyring: %d keys %v, want the 3 bookworm and 3 trixie keys", len(kr), names)
	}
}

// TestTrixieInRelease verifies a real trixie InRelease (deb.debian.org,
// 2026-11-21) with the embedded keys: trixie is signed by its own keys.
func TestTrixieInRelease(t *testing.T) {
	data, err := os.ReadFile("testdata/trixie-InRelease")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := DebianKeyring()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	rel, err := VerifyInRelease(data, kr, now, "trixie", "trixie/InRelease")
	if err != nil {
		t.Fatal(err)
	}
	if rel.Codename != "trixie" || !strings.Contains(rel.Components, "non-free-firmware") {
		t.Errorf("codename %q components %q", rel.Codename, rel.Components)
	}
	for _, f := range []string{"main/binary-arm64/Packages.xz", "non-free-firmware/binary-arm64/Packages.xz"} {
		if _, ok := rel.Files[f]; !ok {
			t.Errorf("InRelease lists no %s", f)
		}
	}
}

// TestFetchInputsSplitKernel: a kernel from one suite only (backports),
// split the way trixie-backports' 7.x is (linux-image- depends on
// linux-base-, linux-binary- and linux-modules-<release>): the parts are
// fetched and locked by their names, pinned on the next fetch, and unpacked
// together into one kernel (vmlinuz and device trees in
// usr/lib/modules/<release>/).
func TestFetchInputsSplitKernel(t *testing.T) {
	a := newArchive(t)
	const rel = "7.3.4+deb13-arm64"
	const ver = "7.3.4-1~bpo13+1"
	a.m.addSuite(t, "/debian", "bookworm-backports", []fakePkg{
		{name: "linux-image-cloud-amd64", version: ver, depends: "linux-image-" + rel + " (= " + ver + ")"},
		{name: "linux-image-" + rel, version: ver, depends: "linux-base (>= 4.17~), dracut | initramfs-tools, linux-base-" + rel + " (= " + ver + "), linux-binary-" + rel + " (= " + ver + "), linux-modules-" + rel + " (= " + ver + ")"},
		{name: "linux-base-" + rel, version: ver, files: map[string]string{"usr/lib/modules/" + rel + "/dtb/broadcom/bcm2712-rpi-5-b.dtb": "DTB", "usr/lib/modules/" + rel + "/modules.builtin": ""}},
		{name: "linux-binary-" + rel, version: ver, files: map[string]string{"usr/lib/modules/" + rel + "/vmlinuz": "KERNEL 7.3"}},
		{name: "linux-modules-" + rel, version: ver, files: map[string]string{"usr/lib/modules/" + rel + "/kernel/drivers/mmc/host/sdhci-brcmstb.ko.xz": "ELF"}},
	}, suiteOpts{signer: a.key})
	ctx := context.Background()
	inputs := []Input{{Name: "linux-image-cloud-amd64", Kernel: true, Suite: "bookworm-backports"}, {Name: "systemd-boot-efi"}}
	c := a.client(t, false) // bookworm and its security suite: backports only for the kernel input
	lock := &cache.Lock{Boards: map[string][]cache.LockedPackage{}}
	got, err := c.FetchInputs(ctx, lock, "rpi5", inputs, false)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, p := range got[0].Parts {
		parts = append(parts, p.Package.Name)
	}
	if got[0].Package.Name != "linux-image-"+rel || strings.Join(parts, " ") != "linux-base-"+rel+" linux-binary-"+rel+" linux-modules-"+rel {
		t.Fatalf("kernel %s, parts %v", got[0].Package.Name, parts)
	}
	if got[1].Version != "252.39-1~deb12u1" {
		t.Errorf("systemd-boot-efi %s: only the kernel comes from backports", got[1].Version)
	}
	for _, want := range []string{"linux-image-cloud-amd64", "linux-binary-" + rel, "linux-modules-" + rel, "linux-base-" + rel} {
		if l, ok := lock.Find("rpi5", want); !ok || l.Suite != "bookworm-backports" {
			t.Errorf("lock entry for %s: %+v %v", want, l, ok)
		}
	}
	// Pinned: offline from the lock, parts included.
	off := a.client(t, true)
	pinned, err := off.FetchInputs(ctx, lock, "rpi5", inputs, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(pinned[0].Parts) != 3 {
		t.Fatalf("pinned parts %+v", pinned[0].Parts)
	}
	var ps []Part
	for _, p := range pinned[0].Parts {
		ps = append(ps, Part{Path: p.Path, SHA256: p.Package.SHA256})
	}
	k, err := CachedKernel(off.Cache, pinned[0].Path, pinned[0].Package.SHA256, ps...)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(k.Modules))))
	want := Kernel{Release: rel, Vmlinuz: filepath.Join(k.Modules, "vmlinuz"), Modules: filepath.Join(root, "usr/lib/modules", rel), DTBs: filepath.Join(k.Modules, "dtb")}
	if diff := cmp.Diff(want, k); diff != "" {
		t.Errorf("split kernel (-want +got)\n%s", diff)
	}
	if b, err := os.ReadFile(k.Vmlinuz); err != nil || string(b) != "KERNEL 7.3" {
		t.Errorf("vmlinuz %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(k.DTBs, "broadcom/bcm2712-rpi-5-b.dtb")); err != nil {
		t.Error(err)
	}
	// The meta package alone is no kernel.
	if _, err := CachedKernel(off.Cache, pinned[0].Path, pinned[0].Package.SHA256); err == nil || !strings.Contains(err.Error(), "not a kernel package") {
		t.Errorf("without its parts: %v", err)
	}
}
