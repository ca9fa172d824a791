// Package ab is the A/B seam: how each bootloader is told which root slot
// to boot, how a slot is put on trial so that the bootloader falls back by
// itself when the trial does not end well, and how a trial is committed.
//
// The builder writes a fresh image's state through Mechanism.Initial, the
// device arms, commits and reads outcomes through the same Mechanism, and
// `basalt inspect` reads the state of an image through State. There is one
// implementation per mechanism, one file each (bls.go: systemd-boot boot
// counting; uboot.go: the boot.scr state file); For is the one place that
// dispatches on a board's mechanism name (boards' "ab:" key). A new
// mechanism (Raspberry Pi tryboot) is one more file that adds itself to
// the table in For.
//
// It imports neither image/ nor initsys/: it is part of the on-disk contract.
package ab

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/basaltos/basalt/contract"
)

// Mechanism names, as boards declare them (boards/*.yaml "ab:").
const (
	BLSName   = "bls-boot-counting"
	UBootName = "uboot-state"
)

// DefaultTries is how many times a trial slot is booted before the
// bootloader gives up on it and boots the committed slot again.
const DefaultTries = 3

// ReleaseKey is the key of contract.ReleaseFile that names the image's
// mechanism, so that the device dispatches on the same name as the builder.
const ReleaseKey = "AB"

// SlotPlaceholder stands for the slot in a command-line template (the
// notation of boot.scr, where U-Boot expands it itself).
const SlotPlaceholder = "${slot}"

// Entry is what the bootloader needs to boot one slot.
type Entry struct {
	Slot contract.Slot
	// Title is shown in boot menus: "NAME VERSION".
	Title string
	// Version is the image version in the slot.
	Version string
	// Cmdline is the kernel command line (SlotPlaceholder expanded or not).
	Cmdline string
	// Args are the kernel arguments of the slot's content, which differ
	// from slot to slot: its dm-verity root (contract/verity CmdlineArgs;
	// "" with verity off). BLS appends them to the entry's options; U-Boot
	// reads them from the slot's contract.SlotArgsFile.
	Args string
	// UKI: the slot boots its unified kernel image (contract.UKIFile,
	// Secure Boot images), whose signed command line already holds
	// Cmdline and Args; BLS entries then name it with "efi" and carry no
	// options (systemd's stub ignores them under Secure Boot anyway).
	UKI bool
}

// CommandLine is the slot's whole kernel command line: Cmdline with the
// slot filled in, then Args.
func (e Entry) CommandLine() string {
	return strings.TrimSpace(strings.ReplaceAll(e.Cmdline, SlotPlaceholder, string(e.Slot)) + " " + e.Args)
}

// File is one file of the boot partition (slash-separated path).
type File struct {
	Path string
	Data []byte
}

// Env is what only the running device knows.
type Env struct {
	// Booted is the slot the kernel command line names (basalt.slot=).
	Booted contract.Slot
	// BootCountPath is systemd-boot's LoaderBootCountPath EFI variable: the
	// entry file booted with a counter, after the loader counted the boot
	// ("\loader\entries\basalt-b+2-1.conf"); empty when none.
	BootCountPath string
	// Tryboot is the Raspberry Pi firmware's tryboot flag for this boot
	// (ReadTrybootFlag of TrybootFlagPath): the boot read tryboot.txt.
	Tryboot bool
}

// State is the A/B state of a boot partition.
type State struct {
	// Committed is the slot the bootloader boots when no trial is armed
	// or the trial's tries are spent.
	Committed contract.Slot `json:"committed"`
	// Trial is the slot armed for a trial boot ("" when none), with
	// TriesLeft boots left before the bootloader gives up on it.
	Trial     contract.Slot `json:"trial,omitempty"`
	TriesLeft int           `json:"tries_left,omitempty"`
	// OnTrial says the running device booted Trial as a trial (needs Env).
	OnTrial bool `json:"on_trial,omitempty"`
	// Failed is a slot whose trial spent its tries and was not booted
	// since: the bootloader fell back from it.
	Failed contract.Slot `json:"failed,omitempty"`
}

// String is State for people: "committed a, trial b (2 tries left)".
func (s State) String() string {
	out := "committed " + string(s.Committed)
	if s.Committed == "" {
		out = "no committed slot"
	}
	if s.Trial != "" {
		out += fmt.Sprintf(", trial %s (%d tries left)", s.Trial, s.TriesLeft)
		if s.OnTrial {
			out += ", booted on trial"
		}
	}
	if s.Failed != "" {
		out += ", slot " + string(s.Failed) + " failed its trial"
	}
	return out
}

// Reader reads a boot partition: a mounted directory (Dir) on the device,
// or a FAT filesystem inside an image file on the host.
type Reader interface {
	// Names returns the names in dir ("" is the root); a missing
	// directory is an error wrapping fs.ErrNotExist.
	Names(dir string) ([]string, error)
	ReadFile(name string) ([]byte, error)
}

// Mechanism is one way of booting A/B with fallback.
type Mechanism interface {
	// Name is the board's "ab:" value.
	Name() string
	// Initial returns the files of a fresh image whose committed slot is
	// e.Slot (slot a): boot entries, state files. Each spare is a slot
	// installed too (the same content, in slot b) that the device falls
	// back to when the committed one fails (Fallback); it boots only then.
	Initial(e Entry, spare ...Entry) []File
	// State reads the A/B state; env may be zero (on the host).
	State(r Reader, env Env) (State, error)
	// Disarm makes slot unbootable by default before its boot files are
	// rewritten (its entry is removed, a trial of it is cancelled). It
	// refuses the committed slot.
	Disarm(d Dir, slot contract.Slot) error
	// Arm puts e.Slot on trial for tries boots; the committed slot stays
	// the fallback.
	Arm(d Dir, e Entry, tries int) error
	// Commit makes the slot booted on trial (env) the committed slot.
	Commit(d Dir, env Env) error
	// Fallback is for the device whose booted slot (env.Booted) failed
	// before it could run (stage 1 refused its root): it makes the next
	// boot boot the other slot, and returns it. A trial ends at once (the
	// committed slot boots next); a committed slot hands over to the other
	// slot when that has boot files and did not fail itself, else
	// ErrNoGoodSlot and nothing is changed. Either way the booted slot is
	// left Failed in State (fallback.go).
	Fallback(d Dir, env Env) (contract.Slot, error)
}

var mechanisms = map[string]Mechanism{
	BLSName:     BLS{},
	UBootName:   UBoot{},
	TrybootName: Tryboot{},
}

// For returns the named mechanism, or an error listing the known ones.
func For(name string) (Mechanism, error) {
	if m, ok := mechanisms[name]; ok {
		return m, nil
	}
	return nil, fmt.Errorf("unknown A/B mechanism %q (known: %s)", name, strings.Join(Names(), ", "))
}

// Names returns the known mechanism names, sorted.
func Names() []string {
	var out []string
	for n := range mechanisms {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Dir is the boot partition mounted at a directory (the device's vfat
// mount, or a directory in tests). Writes are temp + fsync + rename, then
// an fsync of the directory, so a power cut leaves the old or the new file.
type Dir string

func (d Dir) path(name string) string { return filepath.Join(string(d), filepath.FromSlash(name)) }

// Names implements Reader.
func (d Dir) Names(dir string) ([]string, error) {
	ents, err := os.ReadDir(d.path(dir))
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ents))
	for i, e := range ents {
		out[i] = e.Name()
	}
	return out, nil
}

// ReadFile implements Reader.
func (d Dir) ReadFile(name string) ([]byte, error) { return os.ReadFile(d.path(name)) }

// WriteFile replaces name with data atomically (temp + fsync + rename).
func (d Dir) WriteFile(name string, data []byte) error {
	return d.WriteFrom(name, bytes.NewReader(data))
}

// WriteFrom replaces name with what r yields, atomically: the temporary
// file is renamed into place only when r ended without an error (a
// verifying reader's error at its end leaves the old file).
func (d Dir) WriteFrom(name string, r io.Reader) error {
	p := d.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	// A fixed temp name next to the target: one writer (PID 1's update)
	// at a time, and a leftover of a power cut is simply replaced. It does
	// not end in .conf: systemd-boot must never take a half-written entry
	// for one.
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	return d.syncDir(path.Dir(name))
}

// Rename renames old to new (both slash paths) and syncs the directory.
// On FAT a rename onto an existing name fails or leaves both (the systemd
// docs' pitfall), so an existing new is removed first.
func (d Dir) Rename(old, new string) error {
	if err := os.Remove(d.path(new)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Rename(d.path(old), d.path(new)); err != nil {
		return err
	}
	return d.syncDir(path.Dir(new))
}

// Remove removes name; a missing file is not an error.
func (d Dir) Remove(name string) error {
	if err := os.Remove(d.path(name)); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	return d.syncDir(path.Dir(name))
}

func (d Dir) syncDir(dir string) error {
	f, err := os.Open(d.path(dir))
	if err != nil {
		return err
	}
	defer f.Close()
	// vfat answers fsync on a directory; some filesystems refuse it.
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}
