// Command kcheck is the /init of the kernel acceptance test's initramfs: it
// loads the modules listed in /modules.order, mounts /dev/vda as squashfs,
// checks it against /manifest and prints "KCHECK: PASS" or "KCHECK: FAIL ..."
// on the console before powering off. Build it with CGO_ENABLED=0.
package main

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if err := run(); err != nil {
		fmt.Printf("KCHECK: FAIL %v\n", err)
	} else {
		fmt.Println("KCHECK: PASS")
	}
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

func run() error {
	for _, m := range []struct{ src, dst, typ string }{{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"}} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.typ, 0, ""); err != nil {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	order, err := os.ReadFile("/modules.order")
	if err != nil {
		return err
	}
	for _, ko := range strings.Fields(string(order)) {
		if err := loadModule(ko); err != nil {
			return err
		}
	}
	dev := "/dev/vda"
	for i := 0; ; i++ {
		if _, err := os.Stat(dev); err == nil {
			break
		} else if i == 300 {
			return fmt.Errorf("%s did not appear: %w", dev, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	os.MkdirAll("/mnt", 0o755)
	if err := unix.Mount(dev, "/mnt", "squashfs", unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("mount squashfs %s: %w", dev, err)
	}
	return checkManifest("/manifest", "/mnt")
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("load %s: %w", path, err)
	}
	return nil
}

// checkManifest compares every line "path mode uid gid mtime size sha256
// target xattrs" (tab-separated; mode in octal with the S_IFMT bits) with root.
func checkManifest(manifest, root string) error {
	f, err := os.Open(manifest)
	if err != nil {
		return err
	}
	defer f.Close()
	var errs []error
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		want := strings.Split(sc.Text(), "\t")
		got, err := describe(filepath.Join(root, want[0]))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", want[0], err))
			continue
		}
		got[0] = want[0]
		if g, w := strings.Join(got, "\t"), sc.Text(); g != w {
			errs = append(errs, fmt.Errorf("got %q, want %q", g, w))
		}
		n++
	}
	if err := errors.Join(append(errs, sc.Err())...); err != nil {
		return err
	}
	fmt.Printf("KCHECK: %d entries match\n", n)
	return nil
}

func describe(p string) ([]string, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil, err
	}
	sum, target := "-", "-"
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return nil, err
		}
		sum = fmt.Sprintf("%x", h.Sum(nil))
	case unix.S_IFLNK:
		l, err := os.Readlink(p)
		if err != nil {
			return nil, err
		}
		target = l
	case unix.S_IFCHR, unix.S_IFBLK:
		target = fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	xattrs, err := listXattrs(p)
	if err != nil {
		return nil, err
	}
	size := strconv.FormatInt(st.Size, 10)
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		size = "-"
	}
	return []string{p, strconv.FormatUint(uint64(st.Mode), 8), strconv.Itoa(int(st.Uid)), strconv.Itoa(int(st.Gid)),
		strconv.FormatInt(st.Mtim.Sec, 10), size, sum, target, xattrs}, nil
}

// listXattrs returns "name=hexvalue" pairs sorted by name, comma-separated.
func listXattrs(p string) (string, error) {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		return "", fmt.Errorf("listxattr: %w", err)
	}
	var out []string
	for _, name := range strings.Split(strings.TrimSuffix(string(buf[:n]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		v := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			return "", fmt.Errorf("getxattr %s: %w", name, err)
		}
		out = append(out, fmt.Sprintf("%s=%x", name, v[:m]))
	}
	sort.Strings(out)
	return strings.Join(out, ","), nil
}
