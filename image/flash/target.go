// Package flash writes a disk image onto a card or disk (`basalt flash`):
// it checks the target (a whole block device that is not mounted, not in
// use and not the host's system disk; or a regular file or loop device for
// tests), writes the image with its holes turned into zeroing (never left
// with a card's old bytes), the first MiB (the partition table) last,
// fsyncs, reads everything back and compares sha256.
package flash

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Target is a checked flash target.
type Target struct {
	Path string
	// Block is set for a block device (a whole disk or loop device);
	// otherwise Path is a regular file.
	Block bool
	// Name is the kernel name (sdb, mmcblk0, loop3) of a block device.
	Name string
	// Size in bytes (a regular file's current size).
	Size int64
}

// ErrRefused marks a target flash will not write (mounted, in use, the
// system disk, a partition, not a disk).
var ErrRefused = errors.New("refused")

func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrRefused}, args...)...)
}

// sysBlock and procDir are where the kernel describes block devices and
// mounts (tests point them elsewhere).
var (
	sysBlock = "/sys/class/block"
	procDir  = "/proc"
)

// Check inspects path as a flash target. A missing path is refused (flash
// never creates device nodes; create a file first to flash into a file).
func Check(path string) (Target, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Target{}, refuse("%s: %v", path, err)
	}
	switch {
	case fi.Mode().IsRegular():
		return Target{Path: path, Size: fi.Size()}, nil
	case fi.Mode()&fs.ModeDevice == 0 || fi.Mode()&fs.ModeCharDevice != 0:
		return Target{}, refuse("%s is not a block device or a regular file", path)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return Target{}, refuse("%s: %v", path, err)
	}
	name, err := blockName(st.Rdev)
	if err != nil {
		return Target{}, refuse("%s: %v", path, err)
	}
	t := Target{Path: path, Block: true, Name: name}
	if _, err := os.Stat(filepath.Join(sysBlock, name, "partition")); err == nil {
		disk := filepath.Base(filepath.Dir(mustEval(filepath.Join(sysBlock, name))))
		return Target{}, refuse("%s is partition %s of /dev/%s: flash the whole disk (/dev/%s)", path, name, disk, disk)
	}
	if m := mountedParts(name); len(m) > 0 {
		return Target{}, refuse("%s is mounted (%s): unmount it first", path, strings.Join(m, ", "))
	}
	if sys := systemDisks(); sys[name] {
		return Target{}, refuse("%s holds this host's system (/, /usr or /boot is on it)", path)
	}
	if h := holders(name); len(h) > 0 {
		return Target{}, refuse("%s is in use by %s (device mapper, RAID or LVM)", path, strings.Join(h, ", "))
	}
	if b, err := os.ReadFile(filepath.Join(sysBlock, name, "size")); err == nil {
		n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		t.Size = n * 512
	}
	return t, nil
}

func mustEval(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// blockName is the kernel name of the block device dev (major:minor).
func blockName(dev uint64) (string, error) {
	link := fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(dev), unix.Minor(dev))
	r, err := filepath.EvalSymlinks(link)
	if err != nil {
		return "", fmt.Errorf("no such block device in sysfs (%s): %w", link, err)
	}
	return filepath.Base(r), nil
}

// parts returns the disk and its partitions' kernel names.
func parts(disk string) []string {
	out := []string{disk}
	ents, _ := os.ReadDir(filepath.Join(sysBlock, disk))
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(sysBlock, disk, e.Name(), "partition")); err == nil {
			out = append(out, e.Name())
		}
	}
	return out
}

// mounts returns mount source kernel name -> mount points, from mountinfo
// (major:minor of each mount, so bind mounts and /dev/root count).
func mounts() map[string][]string {
	out := map[string][]string{}
	f, err := os.Open(filepath.Join(procDir, "self", "mountinfo"))
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 5 {
			continue
		}
		r, err := filepath.EvalSymlinks("/sys/dev/block/" + fl[2])
		if err != nil {
			continue
		}
		n := filepath.Base(r)
		out[n] = append(out[n], fl[4])
	}
	return out
}

// mountedParts lists "sdb1 on /media/x" for each mounted part of disk.
func mountedParts(disk string) []string {
	m := mounts()
	var out []string
	for _, p := range parts(disk) {
		for _, mp := range m[p] {
			out = append(out, p+" on "+mp)
		}
	}
	return out
}

// systemDisks are the disks holding /, /usr or /boot (through device
// mapper: the disks under the dm device's slaves).
func systemDisks() map[string]bool {
	out := map[string]bool{}
	var walk func(name string)
	walk = func(name string) {
		r := mustEval(filepath.Join(sysBlock, name))
		if _, err := os.Stat(filepath.Join(r, "partition")); err == nil {
			name = filepath.Base(filepath.Dir(r))
		}
		out[name] = true
		slaves, _ := os.ReadDir(filepath.Join(sysBlock, name, "slaves"))
		for _, s := range slaves {
			walk(s.Name())
		}
	}
	for dev, mps := range mounts() {
		for _, mp := range mps {
			if mp == "/" || mp == "/usr" || mp == "/boot" || mp == "/boot/efi" {
				walk(dev)
			}
		}
	}
	return out
}

// holders lists the devices stacked on disk or its partitions.
func holders(disk string) []string {
	var out []string
	for _, p := range parts(disk) {
		ents, _ := os.ReadDir(filepath.Join(sysBlock, p, "holders"))
		for _, e := range ents {
			out = append(out, e.Name())
		}
	}
	return out
}

// Candidate is a disk `basalt flash --list` shows.
type Candidate struct {
	Path      string
	Size      int64
	Model     string
	Removable bool
	// Why is not empty when flash would refuse the disk.
	Why string
}

// List returns the whole disks of this host (loop devices with a backing
// file included) with what flash thinks of each.
func List() ([]Candidate, error) {
	ents, err := os.ReadDir("/sys/block")
	if err != nil {
		return nil, err
	}
	var out []Candidate
	for _, e := range ents {
		n := e.Name()
		dir := filepath.Join("/sys/block", n)
		size := readInt(filepath.Join(dir, "size")) * 512
		if size == 0 || strings.HasPrefix(n, "ram") || strings.HasPrefix(n, "zram") || strings.HasPrefix(n, "dm-") {
			continue
		}
		c := Candidate{Path: "/dev/" + n, Size: size, Removable: readInt(filepath.Join(dir, "removable")) == 1}
		for _, f := range []string{"device/model", "device/name", "loop/backing_file"} {
			if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
				c.Model = strings.TrimSpace(string(b))
				break
			}
		}
		if _, err := Check(c.Path); err != nil {
			c.Why = strings.TrimPrefix(err.Error(), ErrRefused.Error()+": ")
		}
		out = append(out, c)
	}
	return out, nil
}

func readInt(p string) int64 {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}
