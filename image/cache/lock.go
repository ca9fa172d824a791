package cache

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"go.yaml.in/yaml/v3"
)

// LockName is the lock file's name, next to the spec.
const LockName = "basalt.lock"

// Lock is basalt.lock: every Debian input of every board, pinned.
type Lock struct {
	// Boards maps a board name to its inputs.
	Boards map[string][]LockedPackage `yaml:"boards"`
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
	var buf bytes.Buffer
	buf.WriteString("# basalt.lock: pinned Debian inputs per board. `basalt fetch --update-lock` re-resolves.\n")
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
