package k3s

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/basaltos/basalt/image/cache"
)

// Release downloads the assets of one k3s release through the sha256 cache,
// verified against the release's sha256sum-ARCH.txt, and pins each URL and
// sha256 in the lock: a later build takes the file from the cache by that
// sha256 and needs no network.
type Release struct {
	Base    string // "" : DefaultBase
	Version string
	Cache   *cache.Cache
	Lock    *cache.Lock
	// Update re-reads the sha256 from the release even when locked.
	Update bool
}

// Fetch returns the cache path and sha256 of asset, one of a's files.
func (r *Release) Fetch(ctx context.Context, a Assets, asset string) (path, sum string, err error) {
	url := AssetURL(r.Base, r.Version, asset)
	sum, ok := r.Lock.File(url)
	if !ok || r.Update {
		if sum, err = r.checksum(ctx, a.Checksums, asset); err != nil {
			return "", "", err
		}
	}
	if path, err = r.Cache.Get(ctx, url, -1, sum); err != nil {
		return "", "", fmt.Errorf("k3s %s: %w", r.Version, err)
	}
	r.Lock.SetFile(url, sum)
	return path, sum, nil
}

// checksum reads asset's sha256 from the release's checksum file.
func (r *Release) checksum(ctx context.Context, file, asset string) (string, error) {
	url := AssetURL(r.Base, r.Version, file)
	data, err := r.Cache.GetURL(ctx, url)
	if err != nil {
		return "", fmt.Errorf("k3s %s: checksums: %w", r.Version, err)
	}
	sum, err := ParseChecksums(data, asset)
	if err != nil {
		return "", fmt.Errorf("k3s %s: %s: %w", r.Version, url, err)
	}
	return sum, nil
}

// ParseChecksums returns the sha256 of name from sha256sum output
// ("<hex>  <name>" lines, "*<name>" in binary mode).
func ParseChecksums(data []byte, name string) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || strings.TrimPrefix(f[1], "*") != name {
			continue
		}
		if len(f[0]) != 64 || strings.Trim(strings.ToLower(f[0]), "0123456789abcdef") != "" {
			return "", fmt.Errorf("line for %s: %q is not a sha256", name, f[0])
		}
		return strings.ToLower(f[0]), nil
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("no sha256 line for %s", name)
}
