// Package mounts lays out stage 2's filesystems: the API filesystems k3s
// needs (tmpfs /run /tmp /dev/shm, devpts, securityfs, bpffs, cgroup2 with
// every controller, / recursively shared), the data partition at
// contract.DataMountPoint with /var and the /etc overlay on it, and their
// orderly unmount at shutdown.
//
// The read-only root provides the mount points as empty directories (the
// builder's list is image/build's mountPoints).
package mounts

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/basaltos/basalt/contract"
)

// Mount is one mount, as data.
type Mount struct {
	Source, Target, FSType string
	Flags                  uintptr
	Data                   string
}

const secure = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC

// API returns the API filesystems, in mount order.
func API() []Mount {
	return []Mount{
		{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
		{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
		{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"},
		{"shm", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
		{"securityfs", "/sys/kernel/security", "securityfs", secure, ""},
		{"bpf", "/sys/fs/bpf", "bpf", secure, "mode=0700"},
		{"cgroup2", "/sys/fs/cgroup", "cgroup2", secure, "nsdelegate"},
	}
}

// Do mounts ms in order under root ("/" on the device), creating targets
// that are missing (they can be created on /dev, /sys, tmpfs). A target
// that is already a mount point is left alone, so Do can run again.
func Do(root string, ms []Mount) error {
	for _, m := range ms {
		t := filepath.Join(root, m.Target)
		if mounted(t) {
			continue
		}
		if err := os.MkdirAll(t, 0o755); err != nil {
			return fmt.Errorf("mount %s: %w", m.Target, err)
		}
		if err := unix.Mount(m.Source, t, m.FSType, m.Flags, m.Data); err != nil {
			return fmt.Errorf("mount %s (%s) on %s: %w", m.Source, m.FSType, m.Target, err)
		}
	}
	return nil
}

// mounted reports whether dir is a mount point (its device differs from
// its parent's, or it is /).
func mounted(dir string) bool {
	var a, b unix.Stat_t
	if unix.Stat(dir, &a) != nil || unix.Stat(filepath.Dir(dir), &b) != nil {
		return false
	}
	return a.Dev != b.Dev || a.Ino == b.Ino
}

// Finish makes /dev/ptmx point into the new devpts, enables every cgroup
// controller for children and makes / recursively shared.
func Finish() error {
	if fi, err := os.Lstat("/dev/ptmx"); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		os.Remove("/dev/ptmx")
		if err := os.Symlink("pts/ptmx", "/dev/ptmx"); err != nil {
			return fmt.Errorf("/dev/ptmx: %w", err)
		}
	}
	if err := EnableControllers("/sys/fs/cgroup"); err != nil {
		return err
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SHARED, ""); err != nil {
		return fmt.Errorf("make / rshared: %w", err)
	}
	return nil
}

// EnableControllers writes every controller of cgroup.controllers to
// cgroup.subtree_control in dir.
func EnableControllers(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return fmt.Errorf("cgroup controllers: %w", err)
	}
	var on []string
	for _, c := range strings.Fields(string(b)) {
		on = append(on, "+"+c)
	}
	if len(on) == 0 {
		return nil
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(strings.Join(on, " ")), 0); err != nil {
		return fmt.Errorf("enable cgroup controllers %v: %w", on, err)
	}
	return nil
}

// Data paths: the data filesystem is mounted at DataDir; /var is DataDir/var
// bind-mounted, and so is root's home /root (DataDir/root: a config user
// root gets SSH keys like any other); /etc is an overlay with its upper
// and work dirs on data.
const (
	DataDir  = contract.DataMountPoint
	varDir   = DataDir + "/var"
	rootHome = DataDir + "/root"
	etcUpper = DataDir + "/etc/upper"
	etcWork  = DataDir + "/etc/work"
)

// Persistent directories created on data after the layout.
var Persistent = []string{contract.LogDir, "/var/lib/rancher", "/var/lib/kubelet", "/etc/rancher"}

// MountData mounts the ext4 data partition at DataDir.
func MountData(dev string) error {
	if mounted(DataDir) {
		return nil
	}
	if err := unix.Mount(dev, DataDir, "ext4", unix.MS_NOATIME|unix.MS_NODEV|unix.MS_NOSUID, ""); err != nil {
		return fmt.Errorf("mount data %s on %s: %w", dev, DataDir, err)
	}
	return nil
}

// LayoutData bind-mounts /var from data, mounts the /etc overlay and
// creates the persistent directories.
func LayoutData() error {
	for _, d := range []string{varDir, etcUpper, etcWork} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("data layout: %w", err)
		}
	}
	if err := os.MkdirAll(rootHome, 0o700); err != nil {
		return fmt.Errorf("data layout: %w", err)
	}
	for _, b := range []struct{ from, to string }{{varDir, "/var"}, {rootHome, "/root"}} {
		if !mounted(b.to) {
			if err := unix.Mount(b.from, b.to, "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("bind %s on %s: %w", b.from, b.to, err)
			}
		}
	}
	if !mounted("/etc") {
		opts := "lowerdir=/etc,upperdir=" + etcUpper + ",workdir=" + etcWork
		if err := unix.Mount("overlay", "/etc", "overlay", unix.MS_NOATIME, opts); err != nil {
			return fmt.Errorf("overlay on /etc (%s): %w", opts, err)
		}
	}
	for _, d := range Persistent {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("data layout: %w", err)
		}
	}
	return nil
}

// Unmount unmounts the /etc overlay, /root, /var and /data (in that order); what
// stays busy is remounted read-only, so the data journal is clean. It
// returns what it could not do.
func Unmount() error {
	unix.Sync()
	var errs []error
	for _, t := range []string{"/etc", "/root", "/var", DataDir} {
		if !mounted(t) {
			continue
		}
		if err := unix.Unmount(t, 0); err != nil {
			if rerr := unix.Mount("", t, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); rerr != nil {
				errs = append(errs, fmt.Errorf("unmount %s: %w; remount read-only: %w", t, err, rerr))
			}
		}
	}
	return errors.Join(errs...)
}
