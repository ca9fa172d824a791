// Package devconfig is the device side of the device config: it reads the
// sources (baked default, boot partition, NoCloud seed, kernel command
// line), merges and validates them with contract/config, keeps the last
// good merged config on the data partition, and applies write_files, users
// and the SSH server. It has no PID-1 plumbing: the init passes paths, so
// everything runs on the host against temp dirs in tests.
package devconfig

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/config"
	"github.com/basaltos/basalt/initsys/identity"
)

// Sources names where the config comes from. Empty fields are skipped.
type Sources struct {
	// Baked is the default baked from the spec's config: section (a
	// versioned document in the root, read-only).
	Baked string
	// BootDir is where the boot FAT partition is mounted.
	BootDir string
	// SeedDir is where a NoCloud CIDATA volume is mounted (see FindSeed).
	SeedDir string
	// Cmdline is the kernel command line.
	Cmdline string
	// LastGood is the file on the data partition that keeps the last good
	// merged config (written 0600).
	LastGood string
	// Keys, when not nil, is configTrust: signed: every source but Baked
	// needs a valid config.SigSuffix signature by one of them, and only
	// config.HarmlessCmdlineKeys are read from Cmdline.
	Keys []ed25519.PublicKey
}

// Result is a loaded config and what was found on the way.
type Result struct {
	// Config is the config to use: the merge of all sources, or the last
	// good one when a source is invalid.
	Config *config.Config
	// Merged has the origin of each key (nil when the last good was used).
	Merged *config.Merged
	// Sources are the documents read, in merge order.
	Sources []string
	// Errors are invalid sources; when any, UsedLastGood tells whether the
	// last good config replaced the merge.
	Errors       config.Issues
	Warnings     config.Issues
	UsedLastGood bool
	// InstanceID is the NoCloud meta-data instance-id, if any.
	InstanceID string
	// Refused are sources (and command-line keys) ignored under
	// configTrust: signed; the device boots with the rest.
	Refused config.Issues
}

// Load reads, merges and validates the sources. An invalid source never
// fails the load: it is reported in Result.Errors and the last good config
// is used (or, on first boot, the merge of the valid sources). On success
// the merged config becomes the new last good one. The error is for I/O
// failures of the last-good file only.
func Load(ctx context.Context, src Sources) (Result, error) {
	var r Result
	var docs []*config.Document
	add := func(name string, d *config.Document, warns config.Issues, err error) {
		r.Warnings = append(r.Warnings, warns...)
		var is config.Issues
		switch {
		case errors.As(err, &is):
			r.Errors = append(r.Errors, is...)
		case err != nil:
			r.Errors = append(r.Errors, config.Issue{File: name, Reason: err.Error()})
		case d != nil:
			r.Sources = append(r.Sources, name)
			docs = append(docs, d)
		}
	}
	// trusted reports whether the source's bytes may be merged.
	trusted := func(path, name string, b []byte) bool {
		if src.Keys == nil || path == src.Baked {
			return true
		}
		sig, err := readLimited(path + config.SigSuffix)
		if errors.Is(err, os.ErrNotExist) {
			sig, err = nil, nil
		}
		if err == nil {
			err = config.Verify(src.Keys, b, sig)
		}
		if err != nil {
			r.Refused = append(r.Refused, config.Issue{File: name, Reason: "ignored (configTrust: signed): " + err.Error()})
			return false
		}
		return true
	}
	read := func(path, name string) {
		if err := ctx.Err(); err != nil {
			add(name, nil, nil, err)
			return
		}
		b, err := readLimited(path)
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		if err != nil {
			add(name, nil, nil, err)
			return
		}
		if !trusted(path, name, b) {
			return
		}
		d, w, err := config.Parse(name, b)
		add(name, d, w, err)
	}
	if src.Baked != "" {
		read(src.Baked, "baked:"+src.Baked)
	}
	if src.BootDir != "" {
		read(filepath.Join(src.BootDir, contract.BootConfig), contract.BootConfig)
		names, err := filepath.Glob(filepath.Join(src.BootDir, contract.BootConfigDir, "*.yaml"))
		if err != nil {
			return r, fmt.Errorf("list %s: %w", contract.BootConfigDir, err)
		}
		sort.Strings(names)
		for _, n := range names {
			read(n, contract.BootConfigDir+"/"+filepath.Base(n))
		}
	}
	if src.SeedDir != "" {
		md := filepath.Join(src.SeedDir, "meta-data")
		if b, err := readLimited(md); err == nil {
			if trusted(md, "CIDATA/meta-data", b) {
				d, id, w, err := config.ParseMetaData("CIDATA/meta-data", b)
				r.InstanceID = id
				add("CIDATA/meta-data", d, w, err)
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			add("CIDATA/meta-data", nil, nil, err)
		}
		read(filepath.Join(src.SeedDir, "user-data"), "CIDATA/user-data")
		if _, err := os.Stat(filepath.Join(src.SeedDir, "network-config")); err == nil {
			r.Warnings = append(r.Warnings, config.Issue{File: "CIDATA/network-config", Reason: "unsupported NoCloud file, ignored; use network: in user-data"})
		}
	}
	if src.Cmdline != "" {
		line := src.Cmdline
		if src.Keys != nil {
			var refused []string
			line, refused = config.HarmlessCmdline(line)
			for _, k := range refused {
				r.Refused = append(r.Refused, config.Issue{File: config.CmdlineFile, Path: k, Reason: "ignored (configTrust: signed): only basalt.hostname, basalt.fqdn and basalt.timezone are read from the command line"})
			}
		}
		d, w, err := config.ParseCmdline(line)
		add(config.CmdlineFile, d, w, err)
	}
	m := config.Merge(docs...)
	r.Errors = append(r.Errors, m.Validate()...)
	r.Warnings = append(r.Warnings, m.Warnings()...)
	if len(r.Errors) == 0 {
		r.Config, r.Merged = &m.Config, m
		if src.LastGood != "" {
			if err := saveLastGood(src.LastGood, &m.Config); err != nil {
				return r, err
			}
		}
		return r, nil
	}
	if src.LastGood != "" {
		b, err := readLimited(src.LastGood)
		if err == nil {
			if d, _, perr := config.Parse(src.LastGood, b); perr == nil {
				r.Config, r.UsedLastGood = &d.Config, true
				return r, nil
			} else {
				r.Errors = append(r.Errors, config.Issue{File: src.LastGood, Reason: "last good config unreadable: " + perr.Error()})
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return r, fmt.Errorf("read last good config: %w", err)
		}
	}
	// First boot with a bad source: use what is valid.
	r.Config, r.Merged = &m.Config, m
	return r, nil
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, config.MaxDocumentSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > config.MaxDocumentSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, config.MaxDocumentSize)
	}
	return b, nil
}

func saveLastGood(path string, c *config.Config) error {
	b, err := config.MarshalDocument(c)
	if err != nil {
		return err
	}
	return writeAtomic(path, b, 0o600)
}

// writeAtomic makes path's directory and writes path through a temp file,
// fsync and rename (identity.WriteFile: left alone when unchanged).
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return identity.WriteFile(path, data, mode)
}

// Report formats errors and warnings for the console, one per line (the
// init's logger adds the marker prefix to each).
func (r Result) Report() string {
	var b strings.Builder
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "config error: %s\n", e.Error())
	}
	for _, e := range r.Refused {
		fmt.Fprintf(&b, "config refused: %s\n", e.Error())
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "config warning: %s\n", w.Error())
	}
	if r.UsedLastGood {
		b.WriteString("config: using the last good config\n")
	}
	return b.String()
}
