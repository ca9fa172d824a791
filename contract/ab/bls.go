package ab

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/basaltos/basalt/contract"
)

// BLS is systemd-boot's automatic boot assessment (Boot Loader
// Specification boot counting). Each slot has one entry file:
//
//	loader/entries/basalt-a.conf        committed (no counter)
//	loader/entries/basalt-b+3-0.conf    on trial: 3 tries left, 0 done
//
// Before booting a counted entry systemd-boot renames it (+2-1, +1-2,
// +0-3) and tells the OS the new name in the LoaderBootCountPath EFI
// variable. An entry with 0 tries left sorts last, so loader.conf's
// "default basalt-*" then picks the committed entry: that is the fallback.
// The device blesses a trial by renaming the entry to its unsuffixed name
// (what systemd-bless-boot would do; basalt has none).
//
// Order: every entry has "sort-key basalt", so systemd-boot orders them by
// the "version" field, highest first. That field is a generation number
// (one more than any other entry's when armed), not the image version:
// the slot armed last is tried first, whichever letter it has and even
// when the image version goes down (an allowed downgrade).
//
// FAT pitfalls (systemd's docs): FAT names are case-insensitive, so every
// name here is lowercase; a rename onto an existing name fails, so a stray
// unsuffixed twin of a counted entry (basalt-b.conf beside basalt-b+1-2.conf,
// left by a power cut) is removed before blessing, and arming removes every
// entry of the slot first, so two entries never share an id.
type BLS struct{}

// BLSLoaderConf is systemd-boot's loader.conf, which BLS.Initial writes;
// a Secure Boot image appends BLSEnrollForce to it.
const BLSLoaderConf = blsLoader

// BLSEnrollForce makes systemd-boot enroll the keys in /loader/keys/auto/
// (PK.auth, KEK.auth, db.auth) when the firmware is in setup mode, without
// asking (in a VM it never waits; on hardware it counts down 15 s first).
const BLSEnrollForce = "secure-boot-enroll force\n"

// BLSKeysDir is where systemd-boot looks for keys to enroll by itself
// (only the directory named "auto" is enrolled without the menu).
const BLSKeysDir = "loader/keys/auto"

const (
	blsEntries   = "loader/entries"
	blsLoader    = "loader/loader.conf"
	blsPrefix    = "basalt-"
	blsSortKey   = "basalt"
	loaderConfig = "timeout 0\ndefault " + blsPrefix + "*\neditor no\n"
)

// Name implements Mechanism.
func (BLS) Name() string { return BLSName }

// blsEntry is a parsed entry file name, basalt-SLOT[+LEFT[-DONE]].conf.
type blsEntry struct {
	name      string
	slot      contract.Slot
	counted   bool
	left      int
	done      int
	gen       int
	bootCount bool // the loader booted this very file (LoaderBootCountPath)
}

// parseBLSName parses an entry file name; ok is false for other files.
func parseBLSName(name string) (blsEntry, bool) {
	e := blsEntry{name: name}
	rest, ok := strings.CutPrefix(strings.ToLower(name), blsPrefix)
	if !ok {
		return e, false
	}
	rest, ok = strings.CutSuffix(rest, ".conf")
	if !ok {
		return e, false
	}
	slot, counter, counted := strings.Cut(rest, "+")
	e.slot = contract.Slot(slot)
	if !e.slot.Valid() {
		return e, false
	}
	if counted {
		left, done, hasDone := strings.Cut(counter, "-")
		var err error
		if e.left, err = strconv.Atoi(left); err != nil || e.left < 0 {
			return e, false
		}
		if hasDone {
			if e.done, err = strconv.Atoi(done); err != nil || e.done < 0 {
				return e, false
			}
		}
		e.counted = true
	}
	return e, true
}

func blsFileName(slot contract.Slot, counter string) string {
	return blsPrefix + string(slot) + counter + ".conf"
}

func blsEntryText(e Entry, gen int) []byte {
	sd := contract.SlotDir(e.Slot)
	if e.UKI {
		return fmt.Appendf(nil, "title %s (slot %s)\nversion %d\nsort-key %s\nefi /%s/%s\n",
			e.Title, e.Slot, gen, blsSortKey, sd, contract.UKIFile)
	}
	return fmt.Appendf(nil, "title %s (slot %s)\nversion %d\nsort-key %s\nlinux /%s/%s\ninitrd /%s/%s\noptions %s\n",
		e.Title, e.Slot, gen, blsSortKey, sd, contract.KernelFile, sd, contract.InitrdFile, e.CommandLine())
}

// Initial implements Mechanism: loader.conf, the committed entry and
// unsuffixed entries of the spares, of lower generations (systemd-boot
// boots the committed one first; State names it committed).
func (BLS) Initial(e Entry, spare ...Entry) []File {
	out := []File{
		{Path: blsLoader, Data: []byte(loaderConfig)},
		{Path: blsEntries + "/" + blsFileName(e.Slot, ""), Data: blsEntryText(e, len(spare)+1)},
	}
	for i, s := range spare {
		out = append(out, File{Path: blsEntries + "/" + blsFileName(s.Slot, ""), Data: blsEntryText(s, len(spare)-i)})
	}
	return out
}

// entries lists basalt's entries with their generations.
func (BLS) entries(r Reader, env Env) ([]blsEntry, error) {
	names, err := r.Names(blsEntries)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("boot entries: %w", err)
	}
	booted := ""
	if env.BootCountPath != "" {
		booted = strings.ToLower(path.Base(strings.ReplaceAll(env.BootCountPath, `\`, "/")))
	}
	var out []blsEntry
	for _, n := range names {
		e, ok := parseBLSName(n)
		if !ok {
			continue
		}
		b, err := r.ReadFile(blsEntries + "/" + n)
		if err != nil {
			return nil, fmt.Errorf("boot entry %s: %w", n, err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "version "); ok {
				e.gen, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		// Each slot has one entry, so a counted entry of the booted slot is
		// the one the loader booted even when LoaderBootCountPath cannot be
		// read (no efivarfs).
		e.bootCount = booted != "" && strings.ToLower(n) == booted ||
			booted == "" && e.counted && env.Booted != "" && e.slot == env.Booted
		out = append(out, e)
	}
	return out, nil
}

// State implements Mechanism.
func (m BLS) State(r Reader, env Env) (State, error) {
	ents, err := m.entries(r, env)
	if err != nil {
		return State{}, err
	}
	var st State
	best := -1
	for _, e := range ents {
		switch {
		case !e.counted:
			if e.gen > best {
				st.Committed, best = e.slot, e.gen
			}
		case e.left > 0 || e.bootCount:
			st.Trial, st.TriesLeft = e.slot, e.left
			st.OnTrial = e.bootCount && env.Booted == e.slot
		default:
			st.Failed = e.slot
		}
	}
	return st, nil
}

// Disarm implements Mechanism: every entry of slot goes.
func (m BLS) Disarm(d Dir, slot contract.Slot) error {
	st, err := m.State(d, Env{})
	if err != nil {
		return err
	}
	if st.Committed == slot {
		return fmt.Errorf("slot %s is the committed slot: not disarming it", slot)
	}
	ents, err := m.entries(d, Env{})
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.slot == slot {
			if err := d.Remove(blsEntries + "/" + e.name); err != nil {
				return fmt.Errorf("remove boot entry %s: %w", e.name, err)
			}
		}
	}
	return nil
}

// Arm implements Mechanism: basalt-SLOT+TRIES-0.conf, one generation above
// every other entry so that systemd-boot tries it first.
func (m BLS) Arm(d Dir, e Entry, tries int) error {
	if err := m.Disarm(d, e.Slot); err != nil {
		return err
	}
	ents, err := m.entries(d, Env{})
	if err != nil {
		return err
	}
	gen := 1
	for _, x := range ents {
		gen = max(gen, x.gen+1)
	}
	name := blsEntries + "/" + blsFileName(e.Slot, fmt.Sprintf("+%d-0", tries))
	if err := d.WriteFile(name, blsEntryText(e, gen)); err != nil {
		return fmt.Errorf("write boot entry %s: %w", name, err)
	}
	return nil
}

// Commit implements Mechanism: rename the entry the loader booted
// (LoaderBootCountPath) to its unsuffixed name.
func (m BLS) Commit(d Dir, env Env) error {
	ents, err := m.entries(d, env)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.bootCount {
			continue
		}
		if e.slot != env.Booted {
			return fmt.Errorf("the loader booted entry %s, but the kernel command line names slot %s", e.name, env.Booted)
		}
		// Rename removes a stray unsuffixed twin first (FAT refuses the rename).
		if err := d.Rename(blsEntries+"/"+e.name, blsEntries+"/"+blsFileName(e.slot, "")); err != nil {
			return fmt.Errorf("bless boot entry %s: %w", e.name, err)
		}
		return nil
	}
	if env.BootCountPath == "" {
		return fmt.Errorf("slot %s was not booted from a counted (trial) entry", env.Booted)
	}
	return fmt.Errorf("LoaderBootCountPath %s names no entry in %s", env.BootCountPath, blsEntries)
}

// Fallback implements Mechanism: every entry of the booted slot is renamed
// to no tries left (basalt-X+0-N.conf), which systemd-boot sorts last, so
// that its "default basalt-*" picks the other slot's entry. The other slot
// is good when it has an entry that is unsuffixed or has tries left.
func (m BLS) Fallback(d Dir, env Env) (contract.Slot, error) {
	ents, err := m.entries(d, env)
	if err != nil {
		return "", err
	}
	other := env.Booted.Other()
	good := slices.ContainsFunc(ents, func(e blsEntry) bool { return e.slot == other && (!e.counted || e.left > 0) })
	// A trial falls back to the committed slot, which must be the other.
	if !good {
		return "", fmt.Errorf("slot %s: %w (it has no boot entry, or its entry has no tries left)", other, ErrNoGoodSlot)
	}
	for _, e := range ents {
		if e.slot != env.Booted || e.counted && e.left == 0 {
			continue
		}
		to := blsEntries + "/" + blsFileName(e.slot, fmt.Sprintf("+0-%d", max(e.done, 1)))
		if err := d.Rename(blsEntries+"/"+e.name, to); err != nil {
			return "", fmt.Errorf("mark boot entry %s failed: %w", e.name, err)
		}
	}
	return other, nil
}
