package cache

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// LockName is the lock file's name, next to the spec.
const LockName = "basalt.lock"

// Lock is basalt.lock: every Debian input of every board, pinned, and the
// downloaded files (k3s release assets) and container images they need.
type Lock struct {
	// Boards maps a board name to its inputs.
	Boards map[string][]LockedPackage `yaml:"boards"`
	// Files are downloads pinned by URL and sha256 (k3s release assets).
	Files []LockedFile `yaml:"files,omitempty"`
	// Images are container images resolved to a digest per platform.
	Images []LockedImage `yaml:"images,omitempty"`
}

// LockedFile pins one downloaded file.
type LockedFile struct {
	URL    string `yaml:"url"`
	SHA256 string `yaml:"sha256"`
}

// LockedImage pins a container image reference for one platform.
type LockedImage struct {
	Ref      string `yaml:"ref"`
	Platform string `yaml:"platform"` // os/arch[/variant]
	Digest   string `yaml:"digest"`   // of the platform's manifest
}

// File returns the sha256 pinned for url.
func (l *Lock) File(url string) (string, bool) {
	for _, f := range l.Files {
		if f.URL == url {
			return f.SHA256, true
		}
	}
	return "", false
}

// SetFile pins url to sum.
func (l *Lock) SetFile(url, sum string) {
	for i, f := range l.Files {
		if f.URL == url {
			l.Files[i].SHA256 = sum
			return
		}
	}
	l.Files = append(l.Files, LockedFile{URL: url, SHA256: sum})
}

// Image returns the digest pinned for ref on platform.
func (l *Lock) Image(ref, platform string) (string, bool) {
	for _, im := range l.Images {
		if im.Ref == ref && im.Platform == platform {
			return im.Digest, true
		}
	}
	return "", false
}

// SetImage pins ref on platform to digest.
func (l *Lock) SetImage(ref, platform, digest string) {
	for i, im := range l.Images {
		if im.Ref == ref && im.Platform == platform {
			l.Images[i].Digest = digest
			return
		}
	}
	l.Images = append(l.Images, LockedImage{Ref: ref, Platform: platform, Digest: digest})
}

// LockedPackage pins one input.
type LockedPackage struct {
	// Want is the name the board asks for (it may be a metapackage);
	// Name is the package resolved from it.
	Want    string `yaml:"want"`
	Name    string `yaml:"name"`
	Version string `yaml:"version"`
	Arch    string `yaml:"arch"`
	// Mirror and Filename give the URL: Mirror + "/" + Filename.
	Mirror   string `yaml:"mirror"`
	Suite    string `yaml:"suite"`
	Filename string `yaml:"filename"`
	Size     int64  `yaml:"size"`
	SHA256   string `yaml:"sha256"`
	// InRelease is the signed index the package was resolved from.
	InRelease LockedRelease `yaml:"inRelease"`
}

// LockedRelease records the InRelease file a package was resolved from.
type LockedRelease struct {
	URL    string `yaml:"url"`
	Date   string `yaml:"date"`
	SHA256 string `yaml:"sha256"`
}

// URL is where the package is downloaded from.
func (p LockedPackage) URL() string { return p.Mirror + "/" + p.Filename }

// Find returns the entry of board that pins want.
func (l *Lock) Find(board, want string) (LockedPackage, bool) {
	for _, p := range l.Boards[board] {
		if p.Want == want {
			return p, true
		}
	}
	return LockedPackage{}, false
}

// ReadLock reads a lock file. A missing file is an empty lock.
func ReadLock(path string) (*Lock, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &Lock{Boards: map[string][]LockedPackage{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var l Lock
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if l.Boards == nil {
		l.Boards = map[string][]LockedPackage{}
	}
	for i, f := range l.Files {
		if f.URL == "" || !validSum(f.SHA256) {
			return nil, fmt.Errorf("%s: .files[%d]: url and a sha256 are required", path, i)
		}
	}
	for i, im := range l.Images {
		if im.Ref == "" || im.Platform == "" || !strings.HasPrefix(im.Digest, "sha256:") || !validSum(strings.TrimPrefix(im.Digest, "sha256:")) {
			return nil, fmt.Errorf("%s: .images[%d]: ref, platform and a sha256: digest are required", path, i)
		}
	}
	for b, ps := range l.Boards {
		for i, p := range ps {
			if p.Want == "" || p.Name == "" || p.Version == "" || p.Filename == "" || !validSum(p.SHA256) {
				return nil, fmt.Errorf("%s: .boards.%s[%d]: want, name, version, filename and a sha256 are required", path, b, i)
			}
		}
	}
	return &l, nil
}

// Write writes the lock to path (temp file + rename), entries sorted by Want.
func (l *Lock) Write(path string) error {
	for _, ps := range l.Boards {
		sort.Slice(ps, func(i, j int) bool { return ps[i].Want < ps[j].Want })
	}
	sort.Slice(l.Files, func(i, j int) bool { return l.Files[i].URL < l.Files[j].URL })
	sort.Slice(l.Images, func(i, j int) bool {
		a, b := l.Images[i], l.Images[j]
		return a.Ref < b.Ref || a.Ref == b.Ref && a.Platform < b.Platform
	})
	var buf bytes.Buffer
	buf.WriteString("# basalt.lock: pinned Debian inputs per board, downloads and images. `basalt fetch --update-lock` re-resolves.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(l); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := writeFileAtomic(path, buf.Bytes()); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}
