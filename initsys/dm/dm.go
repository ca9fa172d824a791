// Package dm drives the kernel's device-mapper through its ioctls on
// /dev/mapper/control (linux/dm-ioctl.h): create a read-only mapped
// device from one target line, read its status, remove it. Stage 1 opens
// verity roots with it, so the device needs no dmsetup or veritysetup.
//
// No Go library fit: github.com/anatol/devmapper.go is not on the module
// proxy here, and the part basalt needs is these few structs.
package dm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ControlPath is device-mapper's control node.
const ControlPath = "/dev/mapper/control"

// Sizes and offsets of struct dm_ioctl and struct dm_target_spec.
const (
	headerSize = 312 // struct dm_ioctl
	specSize   = 40  // struct dm_target_spec
	nameLen    = 128
	uuidLen    = 129
	typeLen    = 16

	offVersion     = 0
	offDataSize    = 12
	offDataStart   = 16
	offTargetCount = 20
	offFlags       = 28
	offDev         = 40
	offName        = 48
	offUUID        = offName + nameLen
)

// ioctl commands: _IOWR(0xfd, nr, struct dm_ioctl).
const (
	cmdDevCreate   = 3
	cmdDevRemove   = 4
	cmdDevSuspend  = 6
	cmdTableLoad   = 9
	cmdTableStatus = 12
)

// Flags of struct dm_ioctl.
const (
	flagReadOnly   = 1 << 0
	flagBufferFull = 1 << 8
)

func ioctlNumber(nr uintptr) uintptr {
	return 3<<30 | headerSize<<16 | 0xfd<<8 | nr
}

// Target is one line of a device-mapper table.
type Target struct {
	Start, Length uint64 // in 512-byte sectors
	Type          string // "verity", "linear", ...
	Params        string
}

// header returns a dm_ioctl buffer for name with room for extra data bytes.
func header(name string, extra int) ([]byte, error) {
	if len(name) == 0 || len(name) >= nameLen {
		return nil, fmt.Errorf("device-mapper name %q: 1 to %d bytes", name, nameLen-1)
	}
	b := make([]byte, headerSize+extra)
	le := binary.LittleEndian
	le.PutUint32(b[offVersion:], 4) // interface major version 4; minor 0 asks for any 4.x
	le.PutUint32(b[offDataSize:], uint32(len(b)))
	le.PutUint32(b[offDataStart:], headerSize)
	copy(b[offName:offName+nameLen], name)
	return b, nil
}

// tableData encodes targets as consecutive dm_target_spec structs, each
// followed by its NUL-terminated params, padded to 8 bytes.
func tableData(targets []Target) ([]byte, error) {
	var out []byte
	for _, t := range targets {
		if len(t.Type) == 0 || len(t.Type) >= typeLen {
			return nil, fmt.Errorf("device-mapper target type %q: 1 to %d bytes", t.Type, typeLen-1)
		}
		n := specSize + len(t.Params) + 1
		n = (n + 7) &^ 7
		s := make([]byte, n)
		le := binary.LittleEndian
		le.PutUint64(s[0:], t.Start)
		le.PutUint64(s[8:], t.Length)
		le.PutUint32(s[20:], uint32(n)) // next: offset of the next spec from this one
		copy(s[24:24+typeLen], t.Type)
		copy(s[specSize:], t.Params)
		out = append(out, s...)
	}
	return out, nil
}

// parseStatus decodes the target specs a TABLE_STATUS answer holds.
func parseStatus(b []byte) ([]Target, error) {
	if len(b) < headerSize {
		return nil, errors.New("device-mapper: short status answer")
	}
	le := binary.LittleEndian
	if le.Uint32(b[offFlags:])&flagBufferFull != 0 {
		return nil, errors.New("device-mapper: status does not fit the buffer")
	}
	count := int(le.Uint32(b[offTargetCount:]))
	start := int(le.Uint32(b[offDataStart:]))
	end := min(int(le.Uint32(b[offDataSize:])), len(b))
	var out []Target
	off := start
	for i := 0; i < count; i++ {
		if off < start || off+specSize > end {
			return nil, fmt.Errorf("device-mapper: target %d outside the answer", i)
		}
		s := b[off:end]
		out = append(out, Target{Start: le.Uint64(s[0:]), Length: le.Uint64(s[8:]),
			Type: cstring(s[24 : 24+typeLen]), Params: cstring(s[specSize:])})
		// In answers "next" counts from the data start (dm-ioctl.c
		// retrieve_status); in requests, from the spec itself.
		next := int(le.Uint32(s[20:]))
		if start+next <= off {
			break
		}
		off = start + next
	}
	return out, nil
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func ioctl(nr uintptr, b []byte) error {
	f, err := os.OpenFile(ControlPath, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("device-mapper: %w (is dm-mod loaded?)", err)
	}
	defer f.Close()
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), ioctlNumber(nr), uintptr(unsafe.Pointer(&b[0])))
	if errno != 0 {
		return errno
	}
	return nil
}

// CreateReadOnly creates the mapped device name with one read-only
// target, activates it and returns the path of its block node
// (/dev/mapper/NAME, made here: stage 1 has no udev). On error the
// half-made device is removed.
func CreateReadOnly(name string, t Target) (string, error) {
	b, err := header(name, 0)
	if err != nil {
		return "", err
	}
	if err := ioctl(cmdDevCreate, b); err != nil {
		return "", fmt.Errorf("device-mapper: create %s: %w", name, err)
	}
	dev := binary.LittleEndian.Uint64(b[offDev:])
	fail := func(err error) (string, error) {
		if rerr := Remove(name); rerr != nil {
			err = fmt.Errorf("%w (and removing it: %v)", err, rerr)
		}
		return "", err
	}
	data, err := tableData([]Target{t})
	if err != nil {
		return fail(err)
	}
	if b, err = header(name, len(data)); err != nil {
		return fail(err)
	}
	copy(b[headerSize:], data)
	le := binary.LittleEndian
	le.PutUint32(b[offTargetCount:], 1)
	le.PutUint32(b[offFlags:], flagReadOnly)
	if err := ioctl(cmdTableLoad, b); err != nil {
		return fail(fmt.Errorf("device-mapper: load %s table %q: %w", t.Type, t.Params, err))
	}
	if b, err = header(name, 0); err != nil {
		return fail(err)
	}
	if err := ioctl(cmdDevSuspend, b); err != nil { // without the suspend flag: resume
		return fail(fmt.Errorf("device-mapper: resume %s: %w", name, err))
	}
	node := filepath.Join(filepath.Dir(ControlPath), name)
	if err := unix.Mknod(node, unix.S_IFBLK|0o400, int(unix.Mkdev(unix.Major(dev), unix.Minor(dev)))); err != nil && !errors.Is(err, unix.EEXIST) {
		return fail(fmt.Errorf("device-mapper: mknod %s (%d:%d): %w", node, unix.Major(dev), unix.Minor(dev), err))
	}
	return node, nil
}

// Remove removes the mapped device name and its node.
func Remove(name string) error {
	b, err := header(name, 0)
	if err != nil {
		return err
	}
	if err := ioctl(cmdDevRemove, b); err != nil {
		return fmt.Errorf("device-mapper: remove %s: %w", name, err)
	}
	os.Remove(filepath.Join(filepath.Dir(ControlPath), name))
	return nil
}

// Status returns each target of name with its status line as Params
// (verity: "V" verified so far, "C" corruption detected).
func Status(name string) ([]Target, error) {
	b, err := header(name, 16<<10)
	if err != nil {
		return nil, err
	}
	if err := ioctl(cmdTableStatus, b); err != nil {
		return nil, fmt.Errorf("device-mapper: status of %s: %w", name, err)
	}
	return parseStatus(b)
}
