package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/image/cache"
	"github.com/basaltos/basalt/image/debian"
	"github.com/basaltos/basalt/image/spec"
)

// Input is one input of an image, as the manifest lists it.
type Input struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"` // deb, vmlinuz, modules, file, overlay, init, k3s, k3s-airgap, image, manifest
	Version string `json:"version,omitempty"`
	Source  string `json:"source"`
	SHA256  string `json:"sha256,omitempty"`
}

// inputs resolves and fetches the inputs of every board; the Debian client,
// cache and lock are set up only when a board needs a package.
type inputs struct {
	ctx     context.Context
	s       *spec.Spec
	o       Options
	cache   *cache.Cache
	lock    *cache.Lock
	clients map[boards.Arch]*debian.Client
}

func newInputs(ctx context.Context, s *spec.Spec, o Options) *inputs {
	return &inputs{ctx: ctx, s: s, o: o, clients: map[boards.Arch]*debian.Client{}}
}

// DefaultSpecLock is the lock of the embedded default spec, in the cache
// (the default spec has no directory of its own): a warm default build
// then reads no Debian index, online or --offline.
const DefaultSpecLock = "default-spec.lock"

// lockPath is basalt.lock next to the spec, or DefaultSpecLock in the
// cache for the embedded default spec.
func (in *inputs) lockPath() string {
	if in.s.File == spec.DefaultFile {
		return filepath.Join(in.cache.Dir, DefaultSpecLock)
	}
	return filepath.Join(in.s.Dir, cache.LockName)
}

// client returns the Debian client for arch.
func (in *inputs) client(arch boards.Arch) (*debian.Client, error) {
	if c := in.clients[arch]; c != nil {
		return c, nil
	}
	if len(in.clients) == 0 {
		mirrors, err := debian.FindMirrors(in.s.Debian.Mirror, "/")
		if err != nil {
			return nil, invalidf("%v (or set %s)", err, in.s.Where(".debian.mirror"))
		}
		c, err := in.openCache()
		if err != nil {
			return nil, err
		}
		if _, err := in.openLock(); err != nil {
			return nil, err
		}
		for _, a := range []boards.Arch{boards.AMD64, boards.ARM64, boards.ARMHF} {
			in.clients[a] = &debian.Client{Sources: mirrors.Sources(in.s.Debian.Suite), Components: in.s.Debian.Components, Arch: string(a), Cache: c, Keyring: in.o.Keyring}
		}
	}
	return in.clients[arch], nil
}

// openCache opens the cache (downloads, unpacked kernels) once.
func (in *inputs) openCache() (*cache.Cache, error) {
	if in.cache == nil {
		c, err := cache.Open(in.o.CacheDir)
		if err != nil {
			return nil, err
		}
		c.Offline, c.Progress = in.o.Offline, in.o.Progress
		in.cache = c
	}
	return in.cache, nil
}

// saveLock writes the lock (lockPath) when Debian inputs were used.
func (in *inputs) saveLock() error {
	if in.lock == nil {
		return nil
	}
	return in.lock.Write(in.lockPath())
}

// bootFile is a file of the bootloader put on the boot partition.
type bootFile struct {
	To   string
	Data []byte
}

// busyboxPackage is the Debian package the root's /bin/busybox comes from.
const busyboxPackage = "busybox-static"

// resolved are a board's inputs, ready to use.
type resolved struct {
	kernel  debian.Kernel
	boot    []bootFile
	busybox []byte // nil: no shell in the image
	zones   *zoneFiles
	sb      *signedBoot // nil: no Secure Boot
	caCerts []byte      // the CA bundle (k3s images), nil: none
	k3s     *k3sRoot    // nil: orchestrator kind none
	list    []Input
}

// DebianInputs is the one list of the Debian packages board b needs for
// spec s: its kernel (unless the spec names a local one), the packages of
// its boot files (unless the spec overrides the bootloader), busybox-static
// when the image gets a shell, tzdata when it carries time zones and
// ca-certificates when it runs k3s, the EFI stub's package with Secure Boot.
// `basalt build` and `basalt fetch` both resolve exactly this list, so a
// fetch followed by `build --offline` finds everything in the cache.
func DebianInputs(s *spec.Spec, b *boards.Board) []debian.Input {
	var want []debian.Input
	seen := map[string]bool{}
	add := func(in debian.Input) {
		if in.Name != "" && !seen[in.Name] {
			seen[in.Name] = true
			want = append(want, in)
		}
	}
	kernel := debian.Input{Name: b.Kernel.Package, Kernel: true}
	if b.Kernel.Suite == boards.KernelBackports {
		kernel.Suite = s.Debian.Suite + "-backports"
	}
	if ks, ok := s.Kernel[b.Name]; ok {
		kernel = debian.Input{Name: ks.Package, Kernel: true}
	}
	add(kernel)
	if _, hasBoot := s.Bootloader[b.Name]; b.Bootloader != boards.SystemdBoot || !hasBoot {
		for _, f := range b.BootFiles { // systemd-boot, raspi-firmware, u-boot-rpi
			add(debian.Input{Name: f.Package})
		}
	}
	if s.SecureBoot != nil && s.SecureBoot.Stub == "" && b.EFIStub != nil {
		add(debian.Input{Name: b.EFIStub.Package}) // systemd-boot-efi: its linux*.efi.stub
	}
	if needsShell(s) {
		add(debian.Input{Name: busyboxPackage})
	}
	if len(zones(s)) > 0 {
		add(debian.Input{Name: tzdataPackage})
	}
	if s.Orchestrator != nil && s.Orchestrator.Kind == "k3s" {
		add(debian.Input{Name: caPackage})
	}
	return want
}

// fetch resolves and downloads DebianInputs(b), pinned by the lock.
func (in *inputs) fetch(b *boards.Board) ([]debian.Fetched, error) {
	want := DebianInputs(in.s, b)
	if len(want) == 0 {
		return nil, nil
	}
	c, err := in.client(b.Arch)
	if err != nil {
		return nil, err
	}
	got, err := c.FetchInputs(in.ctx, in.lock, b.Name, want, in.o.UpdateLock)
	if err != nil {
		return nil, fmt.Errorf("debian inputs: %w", err)
	}
	return got, nil
}

// resolve finds the kernel and bootloader of board b; kernel packages are
// unpacked once into the cache (debian.CachedKernel).
func (in *inputs) resolve(b *boards.Board) (*resolved, error) {
	r := &resolved{}
	ks, hasKernel := in.s.Kernel[b.Name]
	bl, hasBoot := in.s.Bootloader[b.Name]
	where := func(field string) string { return in.s.Where(".kernel." + b.Name + field) }
	pkg := b.Kernel.Package
	if hasKernel {
		pkg = ks.Package
	}

	got, err := in.fetch(b)
	if err != nil {
		return nil, err
	}
	debs := map[string]debian.Fetched{} // by the package name asked for
	for _, f := range got {
		debs[f.Input.Name] = f
		for _, p := range append([]debian.Fetched{f}, f.Parts...) {
			r.list = append(r.list, Input{Name: p.Package.Name, Kind: "deb", Version: p.Version, Source: p.Package.URL(), SHA256: p.Package.SHA256})
		}
	}

	// The kernel.
	switch {
	case hasKernel && ks.Vmlinuz != "":
		vmlinuz := in.s.Resolve(ks.Vmlinuz)
		sum, err := checkSHA(vmlinuz, ks.SHA256, where(".vmlinuz"), where(".sha256"))
		if err != nil {
			return nil, err
		}
		mods, err := releaseDir(in.s.Resolve(ks.Modules))
		if err != nil {
			return nil, invalidf("%s: %v", where(".modules"), err)
		}
		if r.kernel, err = debian.LocalKernel(vmlinuz, mods); err != nil {
			return nil, invalidf("%s: %v", where(""), err)
		}
		r.list = append(r.list, Input{Name: "kernel", Kind: "vmlinuz", Version: r.kernel.Release, Source: vmlinuz, SHA256: sum},
			Input{Name: "modules", Kind: "modules", Version: r.kernel.Release, Source: mods})
	case hasKernel && ks.Deb != "":
		deb := in.s.Resolve(ks.Deb)
		sum, err := checkSHA(deb, ks.SHA256, where(".deb"), where(".sha256"))
		if err != nil {
			return nil, err
		}
		c, err := in.openCache()
		if err != nil {
			return nil, err
		}
		if r.kernel, err = debian.CachedKernel(c, deb, sum); err != nil {
			return nil, invalidf("%s: %v", where(".deb"), err)
		}
		r.list = append(r.list, Input{Name: "kernel", Kind: "deb", Version: r.kernel.Release, Source: deb, SHA256: sum})
	default:
		f := debs[pkg]
		var parts []debian.Part
		for _, p := range f.Parts {
			parts = append(parts, debian.Part{Path: p.Path, SHA256: p.Package.SHA256})
		}
		if r.kernel, err = debian.CachedKernel(in.cache, f.Path, f.Package.SHA256, parts...); err != nil {
			return nil, err
		}
	}

	if needsShell(in.s) {
		if r.busybox, err = readDebFile(debs[busyboxPackage].Path, "bin/busybox"); err != nil {
			return nil, err
		}
	}
	if zs := zones(in.s); len(zs) > 0 {
		if r.zones, err = readZones(debs[tzdataPackage], zs, in.s.Where(".timezones")); err != nil {
			return nil, err
		}
	}
	if f, ok := debs[caPackage]; ok {
		if r.caCerts, err = readCACerts(f); err != nil {
			return nil, err
		}
	}

	if in.s.SecureBoot != nil {
		if err := resolveSecureBoot(in.s, b, debs, r); err != nil {
			return nil, err
		}
	}

	// The bootloader.
	if b.Bootloader != boards.SystemdBoot {
		for _, f := range b.BootFiles {
			data, err := readDebFile(debs[f.Package].Path, f.From)
			if err != nil {
				return nil, err
			}
			r.boot = append(r.boot, bootFile{To: f.To, Data: data})
		}
		return r, nil
	}
	bwhere := func(field string) string { return in.s.Where(".bootloader." + b.Name + field) }
	for _, f := range b.BootFiles {
		var data []byte
		switch {
		case hasBoot && bl.File != "":
			p := in.s.Resolve(bl.File)
			sum, err := checkSHA(p, bl.SHA256, bwhere(".file"), bwhere(".sha256"))
			if err != nil {
				return nil, err
			}
			if data, err = os.ReadFile(p); err != nil {
				return nil, invalidf("%s: %v", bwhere(".file"), err)
			}
			r.list = append(r.list, Input{Name: f.To, Kind: "file", Source: p, SHA256: sum})
		case hasBoot:
			p := in.s.Resolve(bl.Deb)
			sum, err := checkSHA(p, bl.SHA256, bwhere(".deb"), bwhere(".sha256"))
			if err != nil {
				return nil, err
			}
			if data, err = readDebFile(p, f.From); err != nil {
				return nil, invalidf("%s: %v", bwhere(".deb"), err)
			}
			r.list = append(r.list, Input{Name: f.Package, Kind: "deb", Source: p, SHA256: sum})
		default:
			if data, err = readDebFile(debs[f.Package].Path, f.From); err != nil {
				return nil, err
			}
		}
		r.boot = append(r.boot, bootFile{To: f.To, Data: data})
	}
	return r, nil
}

func readDebFile(deb, name string) ([]byte, error) {
	d, err := debian.OpenDeb(deb)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", deb, err)
	}
	b, err := d.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", deb, name, err)
	}
	return b, nil
}

// releaseDir accepts a lib/modules directory holding exactly one release
// directory, or the release directory itself (it has kernel/ or modules.order).
func releaseDir(dir string) (string, error) {
	for _, marker := range []string{"kernel", "modules.order"} {
		if _, err := os.Stat(filepath.Join(dir, marker)); err == nil {
			return dir, nil
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var rels []string
	for _, e := range ents {
		if e.IsDir() {
			rels = append(rels, e.Name())
		}
	}
	if len(rels) != 1 {
		return "", fmt.Errorf("%s: want one kernel release directory (or the release directory itself), found %d: %v", dir, len(rels), rels)
	}
	return filepath.Join(dir, rels[0]), nil
}

// checkSHA hashes path and compares with want when want is set; fileWhere
// and where name the spec keys of the file and of its sha256 in errors.
func checkSHA(path, want, fileWhere, where string) (string, error) {
	sum, err := fileSHA(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", invalidf("%s: %s: file not found", fileWhere, path)
	}
	if err != nil {
		return "", err
	}
	if want != "" && sum != want {
		return "", invalidf("%s: %s has sha256 %s, want %s", where, path, sum, want)
	}
	return sum, nil
}
