// Package update is the device side of A/B updates: it applies a signed
// bundle (contract/bundle) into the slot that is not running, arms a trial
// boot through the board's A/B mechanism (contract/ab), commits the trial
// when the health gate passes, notices when the bootloader fell back, and
// polls the update channel of the device config.
//
// Every operation is a named sequence of steps (apply: verify, disarm,
// write root, write boot files, arm), so the console and the status say
// which one failed. Apply is one streaming pass over the bundle (one
// download): nothing is written before the signed head (manifest and
// signature) is verified and the bundle's board, compat and version are
// checked; the rootfs is then hashed as it is written, and a payload whose
// sha256 differs from the signed one leaves the slot unarmed.
package update

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/ab"
	"github.com/basaltos/basalt/contract/bundle"
	"github.com/basaltos/basalt/initsys/say"
)

// Paths on the device.
const (
	// Socket takes `basalt-init update apply` requests.
	Socket = "/run/basalt/update.sock"
	// StateFile keeps the update status across reboots (on data).
	StateFile = "/var/lib/basalt/update.json"
)

// Phase is where an update is.
type Phase string

const (
	Idle        Phase = "idle"
	Verifying   Phase = "verifying"
	Downloading Phase = "downloading"
	Written     Phase = "written" // slot written and armed: the next boot tries it
	Trial       Phase = "trial"   // booted on trial, health gate running
	Committed   Phase = "committed"
	RolledBack  Phase = "rolled back"
	Failed      Phase = "failed" // the last apply was refused or failed; nothing armed
)

// Status is the update part of `basalt-init status`.
type Status struct {
	Phase   Phase         `json:"phase"`
	Percent int           `json:"percent,omitempty"`
	Version string        `json:"version,omitempty"`
	Slot    contract.Slot `json:"slot,omitempty"`
	Reason  string        `json:"reason,omitempty"`
	Since   time.Time     `json:"since"`
	// FailedVersion rolled back (or failed its health gate); the channel
	// does not offer it again by itself. FailedReason says why.
	FailedVersion string `json:"failed_version,omitempty"`
	FailedReason  string `json:"failed_reason,omitempty"`
	// AB is the bootloader's A/B state; Slots each slot's version.
	AB    string            `json:"ab,omitempty"`
	Slots map[string]string `json:"slots,omitempty"`
}

// String is Status for people: "rolled back 1.2.0: health gate: ...".
func (s Status) String() string {
	out := string(s.Phase)
	if s.Phase == "" {
		out = string(Idle)
	}
	if s.Phase == Downloading || s.Phase == Verifying {
		out += fmt.Sprintf(" %d%%", s.Percent)
	}
	if s.Version != "" {
		out += " " + s.Version
	}
	if s.Slot != "" {
		out += " (slot " + string(s.Slot) + ")"
	}
	if s.Reason != "" {
		out += ": " + s.Reason
	}
	return out
}

// record is what StateFile keeps.
type record struct {
	Status Status `json:"status"`
	// TrialVersion's last trial boot gave up for TrialReason (written by
	// that boot before it rebooted, read by the slot the loader fell back to).
	TrialVersion string `json:"trial_version,omitempty"`
	TrialReason  string `json:"trial_reason,omitempty"`
}

// Device is what the updater needs to know about the device.
type Device struct {
	// Release is contract.ReleaseFile's keys (VERSION, BOARD, AB, UPDATE_COMPAT).
	Release map[string]string
	// Booted is the running slot (basalt.slot=).
	Booted contract.Slot
	// RootDev is each slot's root partition device node.
	RootDev map[contract.Slot]string
	// MountBoot mounts the boot partition read-write and returns its
	// directory and an unmount func (which syncs).
	MountBoot func() (dir string, unmount func() error, err error)
	// BootCountPath reads systemd-boot's LoaderBootCountPath ("" if none).
	BootCountPath func() string
	// Keys are the trusted bundle keys (bundle.KeysFile).
	Keys []ed25519.PublicKey
	// StateFile is where the record is kept.
	StateFile string
}

// Updater runs one update operation at a time.
type Updater struct {
	d    Device
	mech ab.Mechanism

	op  sync.Mutex // one apply / commit at a time
	pmu sync.Mutex // one change of rec at a time
	mu  sync.Mutex // guards rec
	rec record
}

// New returns an updater for d, with the mechanism the image names.
func New(d Device) (*Updater, error) {
	m, err := ab.For(d.Release[ab.ReleaseKey])
	if err != nil {
		return nil, fmt.Errorf("%s %s=: %w", contract.ReleaseFile, ab.ReleaseKey, err)
	}
	u := &Updater{d: d, mech: m}
	if b, err := os.ReadFile(d.StateFile); err == nil {
		if err := json.Unmarshal(b, &u.rec); err != nil {
			u.logf("%s: %v (starting afresh)", d.StateFile, err)
			u.rec = record{}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		u.logf("%s: %v", d.StateFile, err)
	}
	return u, nil
}

// LoadKeys reads the trusted keys from file (none: the image accepts no update).
func LoadKeys(file string) ([]ed25519.PublicKey, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return bundle.ParsePublicKeys(b)
}

// logf says an update line: "basalt: update: ...".
func (u *Updater) logf(format string, a ...any) { say.Printf("update: "+format, a...) }

// Status returns the current status, with the bootloader's state.
func (u *Updater) Status() Status {
	u.mu.Lock()
	st := u.rec.Status
	u.mu.Unlock()
	if st.Phase == "" {
		st.Phase = Idle
	}
	return st
}

// set updates the status and, with persist, writes it to StateFile
// before it becomes visible: whoever sees a phase finds it on disk too.
func (u *Updater) set(f func(*record), persist bool) {
	u.pmu.Lock()
	defer u.pmu.Unlock()
	u.mu.Lock()
	rec := u.rec
	u.mu.Unlock()
	f(&rec)
	if persist {
		if err := writeJSON(u.d.StateFile, rec); err != nil {
			u.logf("keep state: %v", err)
		}
	}
	u.mu.Lock()
	u.rec = rec
	u.mu.Unlock()
}

func (u *Updater) setPhase(p Phase, version string, slot contract.Slot, reason string) {
	u.set(func(r *record) {
		r.Status.Phase, r.Status.Version, r.Status.Slot, r.Status.Reason, r.Status.Percent = p, version, slot, reason, 0
		r.Status.Since = time.Now().UTC()
	}, true)
}

// writeJSON writes v to path with temp + fsync + rename.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return ab.Dir(filepath.Dir(path)).WriteFile(filepath.Base(path), append(b, '\n'))
}

// withBoot runs f on the mounted boot partition.
func (u *Updater) withBoot(f func(ab.Dir) error) error {
	dir, unmount, err := u.d.MountBoot()
	if err != nil {
		return fmt.Errorf("mount boot partition: %w", err)
	}
	err = f(ab.Dir(dir))
	if uerr := unmount(); err == nil && uerr != nil {
		err = fmt.Errorf("unmount boot partition: %w", uerr)
	}
	return err
}

func (u *Updater) env() ab.Env {
	e := ab.Env{Booted: u.d.Booted}
	e.Tryboot, _ = ab.ReadTrybootFlag(ab.TrybootFlagPath) // Pi firmware; false elsewhere
	if u.d.BootCountPath != nil {
		e.BootCountPath = u.d.BootCountPath()
	}
	return e
}

// slotVersions reads each slot's version file from the boot partition.
func slotVersions(d ab.Dir) map[string]string {
	out := map[string]string{}
	for _, s := range []contract.Slot{contract.SlotA, contract.SlotB} {
		b, err := d.ReadFile(contract.SlotDir(s) + "/" + contract.BootVersionFile)
		if err == nil {
			out[string(s)] = strings.TrimSpace(string(b))
		}
	}
	return out
}

// Refresh re-reads the bootloader's state and the slots' versions into the status.
func (u *Updater) Refresh() error {
	return u.withBoot(func(d ab.Dir) error {
		st, err := u.mech.State(d, u.env())
		if err != nil {
			return err
		}
		vs := slotVersions(d)
		u.set(func(r *record) { r.Status.AB, r.Status.Slots = st.String(), vs }, false)
		return nil
	})
}
