// Package cache is basalt's content-addressed download cache and its lock
// file. Blobs live under <dir>/sha256/<hex>, are written to a temp file and
// renamed into place, and are hashed again whenever they are read; an index
// maps mutable URLs (a suite's InRelease) to the blob last fetched from them,
// so a second build needs no network. Unpacked trees (a kernel's modules)
// are kept under <dir>/tree/<key> the same way (tree.go), so a second build
// need not decompress the package again. Offline mode refuses every download
// with an error naming what is missing.
//
// basalt.lock (lock.go) records every input per board so later builds
// resolve exactly the same packages.
package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/basaltos/basalt/internal/errclass"
)

// ErrOffline is returned (wrapped) when Offline mode needs something the
// cache does not hold: a missing dependency (errclass.ErrMissing).
var ErrOffline = errclass.Missing(errors.New("offline mode"))

// ErrNotFound is returned (wrapped) when the server answers 404.
var ErrNotFound = errors.New("not found on the server")

// Cache is a directory of verified blobs. The zero value is not usable: use Open.
type Cache struct {
	// Dir is the cache root.
	Dir string
	// Offline refuses all network access.
	Offline bool
	// HTTP is the client downloads use (nil: http.DefaultClient).
	HTTP *http.Client
	// Progress receives download progress lines (nil: quiet); see TermProgress.
	Progress io.Writer
}

// DefaultDir is $BASALT_CACHE_DIR, else <os.UserCacheDir()>/basalt.
func DefaultDir() (string, error) {
	if d := os.Getenv("BASALT_CACHE_DIR"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cache dir: %w (set BASALT_CACHE_DIR)", err)
	}
	return filepath.Join(d, "basalt"), nil
}

// Open returns the cache in dir ("" means DefaultDir), creating it.
func Open(dir string) (*Cache, error) {
	if dir == "" {
		d, err := DefaultDir()
		if err != nil {
			return nil, err
		}
		dir = d
	}
	for _, sub := range []string{"sha256", "url", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
	}
	return &Cache{Dir: dir}, nil
}

func (c *Cache) blobPath(sum string) string { return filepath.Join(c.Dir, "sha256", sum) }

// Blob returns the path of the blob with this sha256 (lower-case hex) after
// hashing it again. A blob whose content no longer matches is removed.
func (c *Cache) Blob(sum string) (string, bool) {
	if !validSum(sum) {
		return "", false
	}
	p := c.blobPath(sum)
	f, err := os.Open(p)
	if err != nil {
		return "", false
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil || hex.EncodeToString(h.Sum(nil)) != sum {
		os.Remove(p)
		return "", false
	}
	return p, true
}

// Put stores r as a blob. want, when not empty, is the expected sha256 and
// size (size < 0: unknown); a mismatch is an error naming name and nothing is
// stored. It returns the blob's path and sha256.
func (c *Cache) Put(r io.Reader, name string, size int64, want string) (string, string, error) {
	tmp, err := os.CreateTemp(filepath.Join(c.Dir, "tmp"), "blob-*")
	if err != nil {
		return "", "", fmt.Errorf("cache: %w", err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", name, err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if size >= 0 && n != size {
		return "", "", fmt.Errorf("%s: size %d, want %d", name, n, size)
	}
	if want != "" && got != want {
		return "", "", fmt.Errorf("%s: sha256 mismatch: want %s, got %s", name, want, got)
	}
	p := c.blobPath(got)
	if err := os.Rename(tmp.Name(), p); err != nil {
		return "", "", fmt.Errorf("cache: %w", err)
	}
	return p, got, nil
}

// Get returns the path of the blob with sha256 sum, downloading it from url
// when the cache does not hold it. size < 0 means unknown.
func (c *Cache) Get(ctx context.Context, url string, size int64, sum string) (string, error) {
	if !validSum(sum) {
		return "", fmt.Errorf("%s: invalid sha256 %q", url, sum)
	}
	if p, ok := c.Blob(sum); ok {
		return p, nil
	}
	if c.Offline {
		return "", fmt.Errorf("%s (sha256 %s) is not in the cache %s: %w; run `basalt fetch` online first", url, sum, c.Dir, ErrOffline)
	}
	p, _, err := c.download(ctx, url, size, sum)
	return p, err
}

// GetURL returns the current content of a mutable URL (such as an InRelease
// file) and records it in the URL index. Offline, it returns what was last
// fetched from url.
func (c *Cache) GetURL(ctx context.Context, url string) ([]byte, error) {
	idx := filepath.Join(c.Dir, "url", urlKey(url))
	if c.Offline {
		sum, err := os.ReadFile(idx)
		if err != nil {
			return nil, fmt.Errorf("%s was never fetched into the cache %s: %w; run `basalt fetch` online first", url, c.Dir, ErrOffline)
		}
		p, ok := c.Blob(string(sum))
		if !ok {
			return nil, fmt.Errorf("%s: cached copy %s is missing or corrupt: %w", url, sum, ErrOffline)
		}
		return os.ReadFile(p)
	}
	p, sum, err := c.download(ctx, url, -1, "")
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(idx, []byte(sum)); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return os.ReadFile(p)
}

func (c *Cache) download(ctx context.Context, url string, size int64, sum string) (string, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", "", err
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return "", "", fmt.Errorf("GET %s: %s: %w", url, resp.Status, ErrNotFound)
	case resp.StatusCode != http.StatusOK:
		return "", "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	total := size
	if total < 0 {
		total = resp.ContentLength
	}
	var r io.Reader = resp.Body
	if c.Progress != nil {
		pr := &progress{w: c.Progress, name: progressName(url), total: total}
		defer pr.done()
		r = io.TeeReader(r, pr)
	}
	return c.Put(r, url, size, sum)
}

// progressName is what a download's progress line calls it: the file name,
// or for a by-hash index (named by its sha256) the suite and index it is,
// "trixie/main/binary-amd64 index".
func progressName(url string) string {
	if before, _, ok := strings.Cut(url, "/by-hash/"); ok {
		if _, dist, ok := strings.Cut(before, "/dists/"); ok {
			return dist + " index"
		}
	}
	return path.Base(url)
}

func urlKey(url string) string {
	h := sha256.Sum256([]byte(url))
	return hex.EncodeToString(h[:])
}

func validSum(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// writeFileAtomic writes data to name through a temp file in the same
// directory and a rename, so readers never see a partial file.
func writeFileAtomic(name string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}
