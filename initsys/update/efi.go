package update

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"unicode/utf16"

	"golang.org/x/sys/unix"
)

// The systemd-boot loader interface's vendor GUID.
const loaderGUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"

// efivars is where efivarfs is mounted.
const efivars = "/sys/firmware/efi/efivars"

// BootCountPath returns systemd-boot's LoaderBootCountPath variable (the
// entry booted with a counter, after counting), mounting efivarfs when the
// machine booted by UEFI and it is not mounted yet; "" when not set.
func BootCountPath() string {
	if _, err := os.Stat("/sys/firmware/efi"); err != nil {
		return ""
	}
	p := efivars + "/LoaderBootCountPath-" + loaderGUID
	if _, err := os.Stat(efivars + "/LoaderInfo-" + loaderGUID); errors.Is(err, fs.ErrNotExist) {
		// Not mounted yet (the kernel loads efivarfs on demand).
		unix.Mount("efivarfs", efivars, "efivarfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return DecodeEFIString(b)
}

// DecodeEFIString decodes an efivarfs file holding a UTF-16LE string: 4
// attribute bytes, then the string, NUL-terminated.
func DecodeEFIString(b []byte) string {
	if len(b) < 4 {
		return ""
	}
	b = b[4:]
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := uint16(b[i]) | uint16(b[i+1])<<8
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return strings.TrimSpace(string(utf16.Decode(u)))
}
