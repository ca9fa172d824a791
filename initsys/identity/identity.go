// Package identity gives the device a stable machine id (created on first
// boot from crypto/rand, kept on data through the /etc overlay) and its
// hostname (from config, else basalt-<first 6 hex of the machine id>).
package identity

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/basaltos/basalt/contract"
)

// MachineID returns the id in path (etc/machine-id), creating it when it
// is missing or invalid. created reports a new one.
func MachineID(path string) (id string, created bool, err error) {
	if b, err := os.ReadFile(path); err == nil {
		if s := strings.TrimSpace(string(b)); valid(s) {
			return s, false, nil
		}
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", false, fmt.Errorf("machine id: %w", err)
	}
	raw[6] = raw[6]&0x0f | 0x40 // UUID v4, as systemd does
	raw[8] = raw[8]&0x3f | 0x80
	id = hex.EncodeToString(raw[:])
	if err := WriteFile(path, []byte(id+"\n"), 0o444); err != nil {
		return "", false, fmt.Errorf("machine id: %w", err)
	}
	return id, true, nil
}

func valid(s string) bool {
	if len(s) != 32 || strings.Trim(s, "0") == "" {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// Hostname returns configured when set, else basalt-<first 6 hex of id>.
func Hostname(configured, machineID string) string {
	if configured != "" {
		return configured
	}
	return "basalt-" + machineID[:6]
}

// Apply sets the kernel hostname and writes etcDir/hostname and an
// etcDir/hosts with localhost and 127.0.1.1 for the name (other lines kept).
func Apply(etcDir, name string) error {
	if err := unix.Sethostname([]byte(name)); err != nil {
		return fmt.Errorf("sethostname %s: %w", name, err)
	}
	if err := WriteFile(filepath.Join(etcDir, "hostname"), []byte(name+"\n"), 0o644); err != nil {
		return err
	}
	hostsPath := filepath.Join(etcDir, "hosts")
	old, _ := os.ReadFile(hostsPath)
	return WriteFile(hostsPath, []byte(Hosts(string(old), name)), 0o644)
}

// Hosts returns an /etc/hosts with localhost lines and "127.0.1.1 name",
// keeping the other lines of old.
func Hosts(old, name string) string {
	out := []string{"127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", "127.0.1.1\t" + name}
	for _, l := range strings.Split(old, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] == "127.0.0.1" || f[0] == "::1" || f[0] == "127.0.1.1" {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n") + "\n"
}

// WriteFile writes path atomically: a temp file in the same directory,
// fsync, rename. A regular file that already has data and perm is left
// alone: most boots rewrite the same hostname, hosts and resolv.conf, and
// each fsync is a journal commit on the data partition.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	if Same(path, data, perm) {
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Same reports whether path is a regular file with exactly data and the
// permission bits perm.
func Same(path string, data []byte, perm os.FileMode) bool {
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != perm.Perm() || fi.Size() != int64(len(data)) {
		return false
	}
	old, err := os.ReadFile(path)
	return err == nil && bytes.Equal(old, data)
}

// Timezone writes etcDir/timezone and points etcDir/localtime at
// zoneDir/<tz> (contract.ZoneInfoDir); tz must exist there, except UTC,
// which without a zone file means no etcDir/localtime at all.
func Timezone(etcDir, zoneDir, tz string) error {
	zone := filepath.Join(zoneDir, filepath.Clean("/"+tz))
	lt := filepath.Join(etcDir, "localtime")
	if _, err := os.Stat(zone); err != nil {
		if !contract.IsUTC(tz) {
			return fmt.Errorf("timezone %s: no zone file in the image (%s): list it in the spec's timezones: and rebuild", tz, zone)
		}
		if err := os.Remove(lt); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("timezone %s: %w", tz, err)
		}
		return WriteFile(filepath.Join(etcDir, "timezone"), []byte(tz+"\n"), 0o644)
	}
	if err := WriteFile(filepath.Join(etcDir, "timezone"), []byte(tz+"\n"), 0o644); err != nil {
		return err
	}
	tmp := lt + ".tmp"
	os.Remove(tmp)
	if err := os.Symlink(zone, tmp); err != nil {
		return fmt.Errorf("timezone %s: %w", tz, err)
	}
	if err := os.Rename(tmp, lt); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("timezone %s: %w", tz, err)
	}
	return nil
}
