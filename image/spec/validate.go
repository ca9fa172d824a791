package spec

import (
	"fmt"
	"github.com/basaltos/basalt/contract/bundle"
	"maps"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // zone names are checked without the host's zoneinfo

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/image/disk"
	"github.com/basaltos/basalt/image/secureboot"
)

var (
	nameRE    = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	versionRE = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)
	sha256RE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	// k3sVersionRE is a k3s release tag: v1.33.1+k3s1, v1.34.0-rc1+k3s1.
	k3sVersionRE = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?\+k3s[0-9]+$`)
)

// Minimum partition sizes the writers need.
const (
	MinBootSize = Size(64 << 20) // FAT32 with 512-byte clusters needs >= 65525 clusters
	MinDataSize = Size(16 << 20)
)

// Resolve returns the host path of p, a path from the spec: absolute, or
// relative to the spec's directory.
func (s *Spec) Resolve(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(s.Dir, p)
}

// Line returns the line of a YAML path in the spec file, or of its nearest
// parent that has one (0 when unknown).
func (s *Spec) Line(p string) int {
	for {
		if l, ok := s.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i <= 0 {
			return s.lines[""]
		}
		p = p[:i]
	}
}

// Where returns "FILE:LINE: PATH" for messages about a YAML path.
func (s *Spec) Where(p string) string {
	is := Issue{File: s.File, Line: s.Line(p), Path: showPath(p)}
	return strings.TrimSuffix(is.String(), ": ")
}

type checker struct {
	s           *Spec
	errs, warns []Issue
}

func (c *checker) errf(p, format string, args ...any) {
	c.errs = append(c.errs, Issue{File: c.s.File, Line: c.s.Line(p), Path: showPath(p), Msg: fmt.Sprintf(format, args...)})
}

func (c *checker) warnf(p, format string, args ...any) {
	c.warns = append(c.warns, Issue{File: c.s.File, Line: c.s.Line(p), Path: showPath(p), Msg: fmt.Sprintf(format, args...)})
}

// validate checks what the types cannot say; it returns errors and
// warnings in document order of the checks.
func (s *Spec) validate() (errs, warns []Issue) {
	c := &checker{s: s}
	if !nameRE.MatchString(s.Name) {
		c.errf(".name", "%q: want lower-case letters, digits and '-', starting with a letter, at most 63 bytes", s.Name)
	}
	if !versionRE.MatchString(s.Version) {
		c.errf(".version", "%q: want MAJOR.MINOR.PATCH with optional -PRERELEASE and +BUILD, e.g. 1.4.0", s.Version)
	}
	c.boards()
	for _, b := range slices.Sorted(maps.Keys(s.Kernel)) {
		c.kernel(b, s.Kernel[b])
	}
	for _, b := range slices.Sorted(maps.Keys(s.Bootloader)) {
		c.bootloader(b, s.Bootloader[b])
	}
	if m := s.Debian.Mirror; m != "" {
		c.url(".debian.mirror", m, "http", "https", "file")
	}
	if !slices.Contains(s.Debian.Components, "main") {
		c.errf(".debian.components", "%v: main is needed (kernels, systemd-boot, U-Boot live there)", s.Debian.Components)
	}
	for i, o := range s.Overlays {
		c.overlay(fmt.Sprintf(".overlays[%d]", i), o)
	}
	c.disk()
	c.services()
	c.later()
	return c.errs, c.warns
}

// timezones checks that every zone the image is to carry exists, so that a
// typo fails here and not on the device's config-apply step. Names are
// checked against Go's copy of the tz database (embedded: time/tzdata).
func (s *Spec) checkTimezones() []Issue {
	c := &checker{s: s}
	known := func(z string) bool {
		if z == "" || z == "Local" || strings.Contains(z, "..") {
			return false
		}
		_, err := time.LoadLocation(z)
		return err == nil
	}
	for i, z := range c.s.Timezones {
		if z != AllZones && !known(z) {
			c.errf(fmt.Sprintf(".timezones[%d]", i), "unknown time zone %q (want an IANA name like Europe/Paris, or %q for every zone)", z, AllZones)
		}
	}
	if c.s.Config != nil && c.s.Config.Config.Timezone != nil {
		if z := *c.s.Config.Config.Timezone; !known(z) {
			c.errf(".config.timezone", "unknown time zone %q (want an IANA name like Europe/Paris or UTC)", z)
		}
	}
	return c.errs
}

func (c *checker) boards() {
	seen := map[string]bool{}
	if len(c.s.Boards) == 0 {
		c.errf(".boards", "empty; want at least one board (allowed: %s)", strings.Join(boards.Names(), ", "))
	}
	for i, b := range c.s.Boards {
		p := fmt.Sprintf(".boards[%d]", i)
		if _, err := boards.Get(b); err != nil {
			c.errf(p, "unknown board %q (allowed: %s)", b, strings.Join(boards.Names(), ", "))
		} else if seen[b] {
			c.errf(p, "board %q listed twice", b)
		}
		seen[b] = true
	}
}

// override checks the key of a per-board override map.
func (c *checker) override(p, board string) *boards.Board {
	b, err := boards.Get(board)
	if err != nil {
		c.errf(p, "unknown board %q (allowed: %s)", board, strings.Join(boards.Names(), ", "))
		return nil
	}
	if !slices.Contains(c.s.Boards, board) {
		c.warnf(p, "board %q is not in .boards; this override is unused", board)
	}
	return b
}

func (c *checker) kernel(board string, k KernelSource) {
	p := ".kernel." + board
	c.override(p, board)
	set := 0
	for _, v := range []string{k.Package, k.Deb, k.Vmlinuz} {
		if v != "" {
			set++
		}
	}
	if set != 1 {
		c.errf(p, "want exactly one of package, deb, vmlinuz (got %d)", set)
	}
	if k.Modules != "" && k.Vmlinuz == "" {
		c.errf(p+".modules", "only allowed with vmlinuz")
	}
	if k.Vmlinuz != "" && k.Modules == "" {
		c.errf(p, "vmlinuz needs modules (the lib/modules directory of that kernel)")
	}
	if k.SHA256 != "" && k.Package != "" {
		c.errf(p+".sha256", "not allowed with package (the Debian archive signs package checksums)")
	}
	c.sha(p+".sha256", k.SHA256)
	c.file(p+".deb", k.Deb, wantFile)
	c.file(p+".vmlinuz", k.Vmlinuz, wantFile)
	c.file(p+".modules", k.Modules, wantDir)
}

func (c *checker) bootloader(board string, b BootloaderSource) {
	p := ".bootloader." + board
	if bd := c.override(p, board); bd != nil && bd.Bootloader != boards.SystemdBoot {
		c.errf(p, "board %q boots with %s, which has no bootloader file to override (allowed on %s boards)", board, bd.Bootloader, boards.SystemdBoot)
	}
	if (b.Deb == "") == (b.File == "") {
		c.errf(p, "want exactly one of deb, file")
	}
	c.sha(p+".sha256", b.SHA256)
	c.file(p+".deb", b.Deb, wantFile)
	c.file(p+".file", b.File, wantFile)
}

func (c *checker) overlay(p string, o Overlay) {
	if o.To != "" && (!strings.HasPrefix(o.To, "/") || path.Clean(o.To) != o.To) {
		c.errf(p+".to", "%q: want a clean absolute path in the root, e.g. /etc/app", o.To)
	}
	if o.From == "" {
		return
	}
	fi, err := os.Stat(c.s.Resolve(o.From))
	if err != nil {
		c.errf(p+".from", "%s: %v", c.s.Resolve(o.From), unwrapPathErr(err))
		return
	}
	if fi.IsDir() && o.SHA256 != "" {
		c.errf(p+".sha256", "only allowed for a file overlay; %s is a directory", c.s.Resolve(o.From))
	}
	if !fi.IsDir() && o.To == "/" {
		c.errf(p+".to", "a file cannot replace the root directory")
	}
	c.sha(p+".sha256", o.SHA256)
}

func (c *checker) disk() {
	d := c.s.Disk
	if d.Boot < MinBootSize {
		c.errf(".disk.boot", "%s is too small (at least %s)", d.Boot, MinBootSize)
	}
	if d.Data < MinDataSize {
		c.errf(".disk.data", "%s is too small (at least %s)", d.Data, MinDataSize)
	}
	for _, x := range []struct {
		p string
		v Size
	}{{".disk.boot", d.Boot}, {".disk.rootSlot", d.RootSlot}, {".disk.data", d.Data}, {".disk.total", d.Total}} {
		if x.v%(1<<20) != 0 {
			c.errf(x.p, "%s is not a whole number of MiB", x.v)
		}
	}
	if d.Total != 0 && d.RootSlot != 0 {
		// The layout's own arithmetic (alignment, tables), for the most
		// demanding table among the spec's boards.
		need := Size(0)
		for _, name := range c.s.Boards {
			if b, err := boards.Get(name); err == nil {
				if sc, err := disk.ParseScheme(b.Table); err == nil {
					need = max(need, Size(disk.MinSize(sc, int64(d.Boot), int64(d.RootSlot), int64(d.RootSlot), int64(d.Data))))
				}
			}
		}
		if d.Total < need {
			c.errf(".disk.total", "%s cannot hold boot %s + 2 x rootSlot %s + data %s + %s of tables (%s)", d.Total, d.Boot, d.RootSlot, d.Data, need-d.Boot-2*d.RootSlot-d.Data, need)
		}
	}
}

// later checks the sections whose building later issues add, and warns that
// they are not built yet.
func (c *checker) services() {
	seen := map[string]bool{}
	for i, sv := range c.s.Services {
		p := fmt.Sprintf(".services[%d]", i)
		if seen[sv.Name] {
			c.errf(p+".name", "service %q listed twice", sv.Name)
		}
		seen[sv.Name] = true
		if sv.Path != "" && (!path.IsAbs(sv.Path) || path.Clean(sv.Path) != sv.Path) {
			c.errf(p+".path", "%q: want a clean absolute path in the root, e.g. /usr/bin/app", sv.Path)
		}
		for j, e := range sv.Env {
			if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
				c.errf(fmt.Sprintf("%s.env[%d]", p, j), "%q: want KEY=VALUE", e)
			}
		}
	}
}

func (c *checker) later() {
	s := c.s
	if o := s.Orchestrator; o != nil && o.Kind == "k3s" {
		if o.Version != "" && !k3sVersionRE.MatchString(o.Version) {
			c.errf(".orchestrator.version", "%q: want a k3s release like v1.33.1+k3s1", o.Version)
		}
		c.file(".orchestrator.path", o.Path, wantFile)
		c.sha(".orchestrator.sha256", o.SHA256)
		if o.Mirror != "" {
			c.url(".orchestrator.mirror", o.Mirror, "http", "https")
		}
		if a := o.Airgap; a != nil {
			if a.None && a.Path != "" {
				c.errf(".orchestrator.airgap", "want one of path, none")
			}
			c.file(".orchestrator.airgap.path", a.Path, wantFile)
			c.sha(".orchestrator.airgap.sha256", a.SHA256)
		}
	} else if o != nil && (o.Version != "" || o.Path != "" || o.Airgap != nil || o.Mirror != "") {
		c.errf(".orchestrator", "kind none takes no version, path, mirror or airgap")
	}
	k3s := s.Orchestrator != nil && s.Orchestrator.Kind == "k3s"
	if len(s.Images) > 0 && !k3s {
		c.errf(".images", "preloaded images need orchestrator kind k3s (set orchestrator: {kind: k3s, version: ...})")
	}
	for i, im := range s.Images {
		p := fmt.Sprintf(".images[%d]", i)
		if (im.Ref == "") == (im.Path == "") {
			c.errf(p, "want exactly one of ref, path")
		}
		c.file(p+".path", im.Path, wantFile)
	}
	if len(s.Manifests) > 0 && !k3s {
		c.errf(".manifests", "manifests need orchestrator kind k3s (set orchestrator: {kind: k3s, version: ...})")
	}
	for i, m := range s.Manifests {
		if !strings.ContainsAny(m.Path, "*?[") {
			c.file(fmt.Sprintf(".manifests[%d].path", i), m.Path, wantAny)
		}
	}
	if u := s.Update; u != nil {
		if u.Channel != "" {
			c.url(".update.channel", u.Channel, "http", "https")
		}
		if u.Interval != "" {
			if d, err := time.ParseDuration(u.Interval); err != nil || d <= 0 {
				c.errf(".update.interval", "%q: want a positive Go duration, e.g. 6h", u.Interval)
			}
		}
		c.keyFiles(".update.publicKey", u.PublicKey)
	}
	switch {
	case s.ConfigTrust == ConfigTrustSigned && len(s.ConfigKey) == 0:
		c.errf(".configTrust", "signed needs configKey: the public key(s) config sources are signed with (basalt keygen)")
	case s.ConfigTrust != ConfigTrustSigned && len(s.ConfigKey) > 0:
		c.errf(".configKey", "only used with configTrust: signed")
	}
	c.keyFiles(".configKey", s.ConfigKey)
	if s.SecureBoot != nil {
		c.secureBoot(s.SecureBoot)
	}
}

// secureBoot checks the signing key pair and that every board boots
// through UEFI (systemd-boot).
func (c *checker) secureBoot(sb *SecureBoot) {
	p := ".secureBoot"
	for i, name := range c.s.Boards {
		if b, err := boards.Get(name); err == nil && b.EFIStub == nil {
			c.errf(fmt.Sprintf(".boards[%d]", i), "board %q boots with %s: secureBoot needs a UEFI board (allowed: %s)", name, b.Bootloader, strings.Join(uefiBoards(), ", "))
		}
	}
	defer c.file(p+".stub", sb.Stub, wantFile)
	key, cert, kp := sb.Key, sb.Cert, p+".key"
	switch {
	case sb.Dir != "" && (sb.Key != "" || sb.Cert != ""):
		c.errf(p, "want dir (from basalt keygen --secure-boot) or key and cert, not both")
		return
	case sb.Dir != "":
		c.file(p+".dir", sb.Dir, wantDir)
		if fi, err := os.Stat(c.s.Resolve(sb.Dir)); err != nil || !fi.IsDir() {
			return
		}
		for _, n := range append([]string{secureboot.DBKeyFile, secureboot.DBCertFile}, secureboot.AuthFiles...) {
			c.file(p+".dir", filepath.Join(sb.Dir, n), wantFile)
		}
		key, cert, kp = filepath.Join(sb.Dir, secureboot.DBKeyFile), filepath.Join(sb.Dir, secureboot.DBCertFile), p+".dir"
	case sb.Key == "" || sb.Cert == "":
		c.errf(p, "want dir (from basalt keygen --secure-boot) or both key and cert (PEM RSA key and its certificate)")
		return
	default:
		c.file(kp, key, wantFile)
		c.file(p+".cert", cert, wantFile)
	}
	kb, kerr := os.ReadFile(c.s.Resolve(key))
	cb, cerr := os.ReadFile(c.s.Resolve(cert))
	if kerr != nil || cerr != nil {
		return // reported above
	}
	if _, err := secureboot.ParseSigner(kb, cb); err != nil {
		c.errf(kp, "%s, %s: %v", c.s.Resolve(key), c.s.Resolve(cert), err)
	}
	if c.s.Verity == VerityOff {
		c.warnf(p, "with verity: off the signature covers the kernel, initrd and command line but not the root filesystem")
	}
}

// uefiBoards are the boards that boot through systemd-boot with an EFI stub.
func uefiBoards() []string {
	var out []string
	for _, n := range boards.Names() {
		if b, err := boards.Get(n); err == nil && b.EFIStub != nil {
			out = append(out, n)
		}
	}
	return out
}

// keyFiles checks files of PEM ed25519 public keys at YAML path p.
func (c *checker) keyFiles(p string, files Files) {
	for i, k := range files {
		p := p
		if len(files) > 1 {
			p = fmt.Sprintf("%s[%d]", p, i)
		}
		c.file(p, k, wantFile)
		if b, err := os.ReadFile(c.s.Resolve(k)); err == nil {
			if _, err := bundle.ParsePublicKeys(b); err != nil {
				c.errf(p, "%s: %v", c.s.Resolve(k), err)
			}
		}
	}
}

func (c *checker) url(p, raw string, schemes ...string) {
	u, err := url.Parse(raw)
	if err != nil || !slices.Contains(schemes, u.Scheme) || (u.Host == "" && u.Scheme != "file") {
		c.errf(p, "%q: want a URL (allowed schemes: %s)", raw, strings.Join(schemes, ", "))
	}
}

func (c *checker) sha(p, v string) {
	if v != "" && !sha256RE.MatchString(v) {
		c.errf(p, "%q: want 64 lower-case hex digits", v)
	}
}

type want int

const (
	wantAny want = iota
	wantFile
	wantDir
)

// file checks that a referenced host file or directory exists.
func (c *checker) file(p, v string, w want) {
	if v == "" {
		return
	}
	host := c.s.Resolve(v)
	fi, err := os.Stat(host)
	switch {
	case err != nil:
		c.errf(p, "%s: %v", host, unwrapPathErr(err))
	case w == wantDir && !fi.IsDir():
		c.errf(p, "%s: not a directory", host)
	case w == wantFile && fi.IsDir():
		c.errf(p, "%s: is a directory, want a file", host)
	}
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
