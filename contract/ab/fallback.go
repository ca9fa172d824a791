package ab

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/basaltos/basalt/contract"
)

// A slot whose root stage 1 refuses (its dm-verity tree is invalid, its
// root hash does not match, its squashfs does not mount) must not be booted
// again: Mechanism.Fallback makes the next boot boot the other slot, and
// RecordFailure keeps why on the boot FAT, where the slot that boots reads
// it (ReadFailures), reports it and clears it (ClearFailures).
//
// How each mechanism remembers a failed slot, so that a second failure
// stops instead of looping:
//
//	BLS      the failed slot's entry is renamed basalt-X+0-N.conf (no
//	         tries left: systemd-boot sorts it last; State says Failed)
//	U-Boot   slot=OTHER trial=X tries=0 (a spent trial: State says Failed)
//	tryboot  config.txt names the other slot, tryboot.txt X (a spent
//	         trial: State says Failed)
//
// The slot that boots then sees State.Failed as after a failed trial (the
// updater reports it and disarms the slot); an update rewrites and re-arms it.

// InitramfsFile is the file in stage 1's initramfs that names the board's
// mechanism (one line): stage 1 falls back before any root is mounted, so it cannot read
// ReleaseKey from the root.
const InitramfsFile = "/etc/basalt-ab"

// ErrNoGoodSlot is Fallback's error when the other slot cannot be booted
// either: it has no boot files, or it failed too. The device must stop
// and say so instead of rebooting into the same failure.
var ErrNoGoodSlot = errors.New("no other slot to fall back to")

// FailureFile is the file on the boot FAT that holds the slots stage 1
// refused and why: one "SLOT: REASON" line per slot.
const FailureFile = "basalt/slot-failures.txt"

// Failure is one slot refused at boot.
type Failure struct {
	Slot   contract.Slot `json:"slot"`
	Reason string        `json:"reason"`
}

// maxReason bounds a recorded reason (an error message, not a log).
const maxReason = 1024

// ParseFailures parses FailureFile's bytes: one "SLOT: REASON" line per
// slot, slot a or b, each slot once, the reason not empty.
func ParseFailures(b []byte) ([]Failure, error) {
	var out []Failure
	for i, l := range strings.Split(string(b), "\n") {
		l = strings.TrimRight(l, "\r")
		if strings.TrimSpace(l) == "" {
			continue
		}
		s, reason, ok := strings.Cut(l, ": ")
		slot := contract.Slot(s)
		switch {
		case !ok || !slot.Valid():
			return nil, fmt.Errorf("%s line %d: want \"SLOT: REASON\" with slot a or b: %q", FailureFile, i+1, l)
		case strings.TrimSpace(reason) == "":
			return nil, fmt.Errorf("%s line %d: slot %s has no reason", FailureFile, i+1, slot)
		case slices.ContainsFunc(out, func(f Failure) bool { return f.Slot == slot }):
			return nil, fmt.Errorf("%s line %d: slot %s twice", FailureFile, i+1, slot)
		}
		out = append(out, Failure{Slot: slot, Reason: reason})
	}
	return out, nil
}

// failuresText is FailureFile's bytes for fs (sorted by slot), each reason
// on one line and bounded.
func failuresText(fs []Failure) []byte {
	slices.SortFunc(fs, func(a, b Failure) int { return strings.Compare(string(a.Slot), string(b.Slot)) })
	var b strings.Builder
	for _, f := range fs {
		r := strings.Join(strings.Fields(f.Reason), " ")
		if len(r) > maxReason {
			r = r[:maxReason] + "..."
		}
		fmt.Fprintf(&b, "%s: %s\n", f.Slot, r)
	}
	return []byte(b.String())
}

// ReadFailures returns the recorded failures (none when FailureFile is
// missing).
func ReadFailures(r Reader) ([]Failure, error) {
	b, err := r.ReadFile(FailureFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseFailures(b)
}

// RecordFailure records that slot was refused for reason, replacing an
// older record of that slot (an unreadable file is replaced).
func RecordFailure(d Dir, slot contract.Slot, reason string) error {
	old, _ := ReadFailures(d)
	fs := slices.DeleteFunc(old, func(f Failure) bool { return f.Slot == slot })
	fs = append(fs, Failure{Slot: slot, Reason: reason})
	if err := d.WriteFile(FailureFile, failuresText(fs)); err != nil {
		return fmt.Errorf("record the failure of slot %s: %w", slot, err)
	}
	return nil
}

// ClearFailures removes the record once it was reported.
func ClearFailures(d Dir) error { return d.Remove(FailureFile) }

// hasBootFiles reports whether slot's kernel is on the boot partition.
func hasBootFiles(r Reader, slot contract.Slot) bool {
	names, err := r.Names(contract.SlotDir(slot))
	return err == nil && slices.Contains(names, contract.KernelFile)
}
