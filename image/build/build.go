// Package build assembles a spec into one bootable disk image per board:
// it resolves the inputs (kernel, bootloader; local files or Debian packages
// through image/debian), builds the initramfs, the squashfs root of slot A,
// the FAT boot partition (systemd-boot with a BLS entry, or a U-Boot
// boot.scr reading an A/B state file) and the GPT disk, and writes
// NAME-VERSION-BOARD.img (or .qcow2) with NAME-VERSION-BOARD.manifest.json.
//
// Everything is derived from the spec, the inputs and the epoch
// (SOURCE_DATE_EPOCH): the same three give byte-identical images. Outputs are
// written into a temporary directory inside the output directory and renamed
// into place only when every board succeeded; on error nothing is left.
package build

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/image/debian"
	"github.com/basaltos/basalt/image/spec"
	"github.com/basaltos/basalt/internal/errclass"
)

// DefaultEpoch is the time of every file when SOURCE_DATE_EPOCH is not
// given: 2024-01-01T00:00:00Z. A constant, so that builds stay reproducible.
const DefaultEpoch = 1704067200

// Format is the output image format.
type Format string

const (
	Raw   Format = "raw"
	QCOW2 Format = "qcow2"
)

// Options control a build. The zero value builds every board of the spec as
// raw images into "out", at DefaultEpoch.
type Options struct {
	// OutDir receives the images and manifests (created when missing).
	OutDir string
	// Boards restricts the build to these boards of the spec (nil: all).
	Boards []string
	Format Format
	// Epoch is the time in seconds of every file and timestamp (0:
	// DefaultEpoch). Callers pass SOURCE_DATE_EPOCH here.
	Epoch int64
	// Offline forbids network access: Debian inputs must be in the cache.
	Offline bool
	// UpdateLock re-resolves Debian inputs to their newest versions and
	// rewrites basalt.lock.
	UpdateLock bool
	// CacheDir is the download cache ("" : the user cache dir).
	CacheDir string
	// Step, when set, is called after each step with its name and duration.
	Step func(name string, d time.Duration)
	// Begin, when set, is called as each step starts, with its name (a
	// terminal shows what a long step is doing).
	Begin func(name string)
	// Progress receives download progress (nil: quiet).
	Progress io.Writer
	// Warn, when set, receives warnings: what builds but may not be what
	// was meant (a local k3s without its air-gap images).
	Warn func(msg string)
	// Keyring verifies the mirror's InRelease files (nil: the embedded
	// Debian archive keys), for a mirror signed by a key of its own.
	Keyring openpgp.KeyRing
	// SignKey, when set, also writes NAME-VERSION-BOARD.bundle signed with
	// it; Bundle writes the bundle unsigned (for `basalt bundle sign`).
	SignKey ed25519.PrivateKey
	Bundle  bool
}

// Artifact is one board's output.
type Artifact struct {
	Board    string
	Image    string // path of the image
	Manifest string // path of the manifest
	Bundle   string // path of the update bundle ("" when none was asked for)
	Format   Format
	Size     int64
	SHA256   string
}

// invalidf marks errors caused by the user's input (unknown board, missing
// file, wrong sha256, content that does not fit): errclass.ErrInvalid.
var invalidf = errclass.Invalidf

// Build builds s for the boards of o and returns the artifacts, in board
// order.
func Build(ctx context.Context, s *spec.Spec, o Options) (arts []Artifact, err error) {
	if o.OutDir == "" {
		o.OutDir = "out"
	}
	if o.Format == "" {
		o.Format = Raw
	}
	if o.Format != Raw && o.Format != QCOW2 {
		return nil, invalidf("format %q (allowed: raw, qcow2)", o.Format)
	}
	if o.Epoch == 0 {
		o.Epoch = DefaultEpoch
	}
	bs, err := specBoards(s, o.Boards)
	if err != nil {
		return nil, err
	}

	created := false
	if fi, err := os.Stat(o.OutDir); errors.Is(err, os.ErrNotExist) {
		created = true
	} else if err == nil && !fi.IsDir() {
		return nil, invalidf("output directory %s is a file, not a directory", o.OutDir)
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	removeStale(o.OutDir)
	tmp, err := os.MkdirTemp(o.OutDir, fmt.Sprintf("%s%d-", tmpPrefix, os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	defer func() {
		os.RemoveAll(tmp)
		if err != nil && created {
			os.Remove(o.OutDir) // only when empty
		}
	}()

	in := newInputs(ctx, s, o)
	for _, b := range bs {
		a, err := buildBoard(ctx, s, o, b, in, tmp)
		if err != nil {
			return nil, fmt.Errorf("board %s: %w", b.Name, err)
		}
		arts = append(arts, a)
	}
	if err := in.saveLock(); err != nil {
		return nil, err
	}
	// Everything succeeded: move the outputs into place, unless the build
	// was interrupted meanwhile (its last step may have ignored ctx).
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i, a := range arts {
		for _, p := range []*string{&arts[i].Image, &arts[i].Manifest, &arts[i].Bundle} {
			if *p == "" {
				continue
			}
			dst := filepath.Join(o.OutDir, filepath.Base(*p))
			if err := os.Rename(*p, dst); err != nil {
				return nil, fmt.Errorf("board %s: %w", a.Board, err)
			}
			*p = dst
		}
	}
	return arts, nil
}

// tmpPrefix starts the name of a build's temporary directory inside the
// output directory, followed by the builder's pid: ".basalt-build-PID-RANDOM".
const tmpPrefix = ".basalt-build-"

// removeStale removes the temporary directories that builds killed beyond
// cleanup (SIGKILL, power loss) left in dir: those whose pid is not running.
// Directories of running builds are left alone.
func removeStale(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), tmpPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pid, err := strconv.Atoi(strings.SplitN(rest, "-", 2)[0])
		if err == nil && pid > 0 && unix.Kill(pid, 0) != unix.ESRCH {
			continue // alive (EPERM: alive, another user's)
		}
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// specBoards returns the boards named (nil: every board of the spec); each
// must be one of the spec's.
func specBoards(s *spec.Spec, names []string) ([]*boards.Board, error) {
	if len(names) == 0 {
		names = s.Boards
	}
	var bs []*boards.Board
	for _, n := range names {
		b, err := boards.Get(n)
		if err != nil {
			return nil, invalidf("%v", err)
		}
		if !slices.Contains(s.Boards, n) {
			return nil, invalidf("board %q is not in the spec's boards (%s: %v)", n, s.Where(".boards"), s.Boards)
		}
		bs = append(bs, b)
	}
	return bs, nil
}

// Fetched is one Debian input of a board, as Fetch returns it.
type Fetched struct {
	Board string
	debian.Fetched
}

// Fetch resolves and downloads the inputs of the boards of o into the cache
// and writes the lock, exactly as Build does before it builds: the Debian
// inputs (DebianInputs) and, for k3s images, k3s, its air-gap archive and
// the images: (returned apart, as manifest inputs). A Fetch online makes a
// Build with o.Offline work.
func Fetch(ctx context.Context, s *spec.Spec, o Options) ([]Fetched, []Input, error) {
	bs, err := specBoards(s, o.Boards)
	if err != nil {
		return nil, nil, err
	}
	in := newInputs(ctx, s, o)
	var out []Fetched
	var other []Input
	for _, b := range bs {
		got, err := in.fetch(b)
		if err != nil {
			return nil, nil, fmt.Errorf("board %s: %w", b.Name, err)
		}
		for _, f := range got {
			for _, p := range append([]debian.Fetched{f}, f.Parts...) { // a split kernel's parts too
				out = append(out, Fetched{Board: b.Name, Fetched: p})
			}
		}
		_, list, err := in.k3s(b)
		if err != nil {
			return nil, nil, fmt.Errorf("board %s: %w", b.Name, err)
		}
		for _, l := range list {
			l.Name = b.Name + " " + l.Name
			other = append(other, l)
		}
	}
	return out, other, in.saveLock()
}

// stepper times the steps of one board and stops before a step once ctx
// is done.
type stepper struct {
	ctx   context.Context
	board string
	fn    func(string, time.Duration)
	begin func(string)
}

func (st *stepper) do(name string, f func() error) error {
	if err := st.ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if st.begin != nil {
		st.begin(st.board + ": " + name)
	}
	t0 := time.Now()
	err := f()
	if cerr := st.ctx.Err(); cerr != nil && err == nil {
		err = cerr // a step that ignores ctx must not make an interrupted build succeed
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if st.fn != nil {
		st.fn(st.board+": "+name, time.Since(t0))
	}
	return nil
}
