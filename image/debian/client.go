// Package debian is a small apt in Go: it reads a Debian mirror's signed
// InRelease files, verifies them against the embedded Debian archive keyring,
// loads the Packages indexes they vouch for (sha256-checked), resolves a
// package to its newest version across the configured suites (dpkg version
// order, kernel metapackages followed to the real kernel), downloads the
// .deb into the content-addressed cache (size and sha256 checked) and
// extracts files from it without dpkg.
package debian

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/klauspost/compress/gzip"
	"github.com/ulikunitz/xz"

	"github.com/basaltos/basalt/image/cache"
)

// Source is one suite of one mirror.
type Source struct {
	Mirror string // e.g. http://deb.debian.org/debian (no trailing slash)
	Suite  string // e.g. bookworm
}

func (s Source) String() string { return s.Suite + " at " + s.Mirror }

// Client resolves and fetches packages of one architecture.
type Client struct {
	Sources []Source
	Arch    string // Debian architecture: amd64, arm64, armhf
	// Components are the archive areas indexed in each suite (nil: main).
	// raspi-firmware lives in non-free-firmware.
	Components []string
	// Keyring verifies InRelease files (nil: the embedded Debian keys).
	Keyring openpgp.KeyRing
	// Cache holds every download; its Offline flag forbids the network.
	Cache *cache.Cache
	// Now is the clock for signature and Valid-Until checks (nil: time.Now).
	Now func() time.Time

	mu      sync.Mutex
	indexes map[Source]*suiteIndex
}

// Package is one resolved binary package.
type Package struct {
	Name, Version, Arch string
	Source              Source
	Filename            string // pool path relative to the mirror
	Size                int64
	SHA256              string
	Depends             string
	InRelease           cache.LockedRelease
}

// URL is where the .deb is downloaded from.
func (p Package) URL() string { return p.Source.Mirror + "/" + p.Filename }

// suiteIndex is the part of a suite's Packages index the resolver needs.
type suiteIndex struct {
	release cache.LockedRelease
	pkgs    map[string][]Package
}

// Resolve returns the newest version of name across the sources.
func (c *Client) Resolve(ctx context.Context, name string) (Package, error) {
	var best Package
	found := false
	for _, src := range c.Sources {
		idx, err := c.index(ctx, src)
		if err != nil {
			return Package{}, err
		}
		for _, p := range idx.pkgs[name] {
			if !found || CompareVersions(p.Version, best.Version) > 0 {
				best, found = p, true
			}
		}
	}
	if !found {
		var srcs []string
		for _, s := range c.Sources {
			srcs = append(srcs, s.String())
		}
		return Package{}, fmt.Errorf("package %q not found for arch %s in %s", name, c.Arch, strings.Join(srcs, ", "))
	}
	return best, nil
}

// ResolveKernel resolves a kernel package; a metapackage
// (linux-image-cloud-amd64) is followed through the first alternative of
// its linux-image-* dependency to the real kernel package.
func (c *Client) ResolveKernel(ctx context.Context, name string) (Package, error) {
	p, err := c.Resolve(ctx, name)
	for hops := 0; err == nil && hops < 4; hops++ {
		next := ""
		for _, d := range firstDepends(p.Depends) {
			if strings.HasPrefix(d, "linux-image-") {
				next = d
				break
			}
		}
		if next == "" {
			return p, nil
		}
		p, err = c.Resolve(ctx, next)
	}
	if err != nil {
		return Package{}, fmt.Errorf("kernel %s: %w", name, err)
	}
	return Package{}, fmt.Errorf("kernel %s: metapackage chain too long", name)
}

// Fetch downloads p into the cache (size and sha256 checked) and returns the
// .deb's path.
func (c *Client) Fetch(ctx context.Context, p Package) (string, error) {
	path, err := c.Cache.Get(ctx, p.URL(), p.Size, p.SHA256)
	if err != nil {
		return "", fmt.Errorf("fetch %s %s: %w", p.Name, p.Version, err)
	}
	return path, nil
}

func (c *Client) index(ctx context.Context, src Source) (*suiteIndex, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if idx, ok := c.indexes[src]; ok {
		return idx, nil
	}
	idx, err := c.loadIndex(ctx, src)
	if err != nil {
		return nil, err
	}
	if c.indexes == nil {
		c.indexes = map[Source]*suiteIndex{}
	}
	c.indexes[src] = idx
	return idx, nil
}

func (c *Client) loadIndex(ctx context.Context, src Source) (*suiteIndex, error) {
	dists := src.Mirror + "/dists/" + src.Suite
	irURL := dists + "/InRelease"
	data, err := c.Cache.GetURL(ctx, irURL)
	if err != nil {
		return nil, fmt.Errorf("suite %s: %w", src, err)
	}
	kr := c.Keyring
	if kr == nil {
		if kr, err = DebianKeyring(); err != nil {
			return nil, fmt.Errorf("embedded keyring: %w", err)
		}
	}
	now := time.Now()
	if c.Now != nil {
		now = c.Now()
	}
	rel, err := VerifyInRelease(data, kr, now, src.Suite, irURL)
	if err != nil {
		return nil, securityHint(src, err)
	}
	idx := &suiteIndex{
		release: cache.LockedRelease{URL: irURL, Date: rel.Date.UTC().Format(time.RFC1123), SHA256: sha256Hex(data)},
		pkgs:    map[string][]Package{},
	}
	comps := c.Components
	if len(comps) == 0 {
		comps = []string{"main"}
	}
	if have := strings.Fields(rel.Components); len(have) > 0 {
		for i, h := range have {
			have[i] = path.Base(h) // the security suite says updates/main for main/
		}
		for _, comp := range comps {
			if !slices.Contains(have, comp) {
				return nil, fmt.Errorf("%s: suite has no component %q (it has: %s)", irURL, comp, strings.Join(have, ", "))
			}
		}
	}
	for _, comp := range comps {
		if err := c.loadComponent(ctx, src, dists, irURL, rel, comp, idx); err != nil {
			return nil, err
		}
	}
	return idx, nil
}

// loadComponent adds the Packages index of one component of src to idx,
// verified against the signed InRelease rel.
func (c *Client) loadComponent(ctx context.Context, src Source, dists, irURL string, rel *Release, comp string, idx *suiteIndex) error {
	var name string
	var sum FileSum
	for _, ext := range []string{".xz", ".gz"} {
		n := comp + "/binary-" + c.Arch + "/Packages" + ext
		if s, ok := rel.Files[n]; ok {
			name, sum = n, s
			break
		}
	}
	if name == "" {
		return fmt.Errorf("%s: lists no %s/binary-%s/Packages.xz or .gz (is %s an architecture of this suite?)", irURL, comp, c.Arch, c.Arch)
	}
	// by-hash URLs survive a mirror update between the InRelease and the
	// index download; mirrors may prune them, so fall back as apt does.
	var path string
	err := cache.ErrNotFound
	if rel.AcquireByHash {
		path, err = c.Cache.Get(ctx, dists+"/"+comp+"/binary-"+c.Arch+"/by-hash/SHA256/"+sum.SHA256, sum.Size, sum.SHA256)
	}
	if errors.Is(err, cache.ErrNotFound) {
		path, err = c.Cache.Get(ctx, dists+"/"+name, sum.Size, sum.SHA256)
	}
	if err != nil && !errors.Is(err, cache.ErrOffline) && !errors.Is(err, cache.ErrNotFound) {
		err = fmt.Errorf("suite %s: index %s fails verification against the signed InRelease, refused (the mirror is out of sync or the data was altered): %w", src, name, err)
	}
	if err != nil {
		return securityHint(src, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader
	if strings.HasSuffix(name, ".xz") {
		r, err = xz.NewReader(f)
	} else {
		r, err = gzip.NewReader(f)
	}
	if err == nil {
		err = parsePackages(r, src, idx)
	}
	if err != nil {
		return fmt.Errorf("%s/%s: %w", dists, name, err)
	}
	return nil
}

// securityHint adds to err, for a security suite, how to build without it:
// its indexes are refused, never used unverified.
func securityHint(src Source, err error) error {
	if !strings.HasSuffix(src.Suite, "-security") {
		return err
	}
	return fmt.Errorf("%w\nthis is the security suite %s: retry later, set BASALT_DEBIAN_SECURITY_MIRROR to another security mirror, or set BASALT_DEBIAN_SECURITY_MIRROR=none to resolve from the main suite only (without security updates)", err, src.Suite)
}

// parsePackages adds the stanzas of a Packages file to idx.
func parsePackages(r io.Reader, src Source, idx *suiteIndex) error {
	return ParseParagraphs(r, func(p Paragraph) error {
		size, err := strconv.ParseInt(p["Size"], 10, 64)
		sha, herr := hex.DecodeString(p["SHA256"])
		if err != nil || herr != nil || len(sha) != sha256.Size || p["Package"] == "" || p["Version"] == "" || p["Filename"] == "" {
			return fmt.Errorf("package %q: incomplete stanza (needs Package, Version, Filename, Size, SHA256)", p["Package"])
		}
		if strings.Contains(p["Filename"], "..") {
			return fmt.Errorf("package %q: bad Filename %q", p["Package"], p["Filename"])
		}
		pkg := Package{
			Name: p["Package"], Version: p["Version"], Arch: p["Architecture"],
			Source: src, Filename: p["Filename"], Size: size, SHA256: hex.EncodeToString(sha),
			Depends: p["Pre-Depends"] + ", " + p["Depends"], InRelease: idx.release,
		}
		pkg.Depends = strings.Trim(pkg.Depends, ", ")
		idx.pkgs[pkg.Name] = append(idx.pkgs[pkg.Name], pkg)
		return nil
	})
}

// Lock returns the lock entry for p, resolved from want.
func (p Package) Lock(want string) cache.LockedPackage {
	return cache.LockedPackage{
		Want: want, Name: p.Name, Version: p.Version, Arch: p.Arch,
		Mirror: p.Source.Mirror, Suite: p.Source.Suite, Filename: p.Filename,
		Size: p.Size, SHA256: p.SHA256, InRelease: p.InRelease,
	}
}

// FromLock is the package a lock entry pins.
func FromLock(l cache.LockedPackage) Package {
	return Package{
		Name: l.Name, Version: l.Version, Arch: l.Arch,
		Source: Source{Mirror: l.Mirror, Suite: l.Suite}, Filename: l.Filename,
		Size: l.Size, SHA256: l.SHA256, InRelease: l.InRelease,
	}
}

// FetchLocked downloads the package a lock entry pins. A mirror that no
// longer has that version is an error telling to update the lock.
func (c *Client) FetchLocked(ctx context.Context, l cache.LockedPackage) (string, error) {
	path, err := c.Fetch(ctx, FromLock(l))
	if errors.Is(err, cache.ErrNotFound) {
		return "", fmt.Errorf("%w\n%s %s is pinned in %s but the mirror no longer has it; run `basalt fetch --update-lock`", err, l.Name, l.Version, cache.LockName)
	}
	return path, err
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
