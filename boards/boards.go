// Package boards holds the boards basalt builds for, as embedded YAML files
// (one per board, in this directory), and their Go types.
//
// A board names its architecture, where its kernel and bootloader come from,
// how it boots and falls back (A/B mechanism), its console, the kernel modules
// needed before the root is mounted, and how QEMU runs it.
package boards

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/basaltos/basalt/contract/ab"
)

//go:embed *.yaml
var files embed.FS

// Arch is a Debian architecture name.
type Arch string

const (
	AMD64 Arch = "amd64"
	ARM64 Arch = "arm64"
	ARMHF Arch = "armhf" // ARMv7, GOARM=7
)

// GOARCH returns the Go architecture and GOARM value for a.
func (a Arch) GOARCH() (goarch, goarm string) {
	switch a {
	case ARM64:
		return "arm64", ""
	case ARMHF:
		return "arm", "7"
	}
	return "amd64", ""
}

// Bootloader names how the firmware reaches the kernel.
type Bootloader string

const (
	SystemdBoot Bootloader = "systemd-boot" // UEFI firmware loads systemd-boot from the ESP
	UBootScript Bootloader = "uboot-script" // U-Boot runs boot.scr from the boot partition
	RPiFirmware Bootloader = "rpi-firmware" // Raspberry Pi firmware reads config.txt
)

// ABMechanism names how a trial boot falls back by itself.
type ABMechanism string

// The names are contract/ab's, which implements each mechanism (ab.For).
const (
	BLSBootCounting ABMechanism = ab.BLSName     // systemd-boot entry basalt-b+3-0.conf
	UBootState      ABMechanism = ab.UBootName   // state file on the boot FAT, tries counter
	RPiTryboot      ABMechanism = ab.TrybootName // tryboot.txt + os_prefix
)

// Board is one target the builder writes images for.
type Board struct {
	Name        string      `yaml:"name"`
	Description string      `yaml:"description"`
	Arch        Arch        `yaml:"arch"`
	Bootloader  Bootloader  `yaml:"bootloader"`
	AB          ABMechanism `yaml:"ab"`
	// Table is the partition table type: "gpt" or "mbr".
	Table string `yaml:"table"`
	// Console is the kernel console device (e.g. ttyS0, ttyAMA0).
	Console string `yaml:"console"`
	// Cmdline holds kernel arguments besides console= and basalt.*.
	Cmdline []string `yaml:"cmdline"`
	Kernel  Kernel   `yaml:"kernel"`
	// BootFiles are files from Debian packages copied onto the boot
	// partition (systemd-boot, the Raspberry Pi firmware, U-Boot).
	BootFiles []PackageFile `yaml:"bootFiles"`
	// EFIStub is systemd's EFI stub a Secure Boot image builds each slot's
	// unified kernel image from (To unused); nil: not a UEFI board.
	EFIStub *PackageFile `yaml:"efiStub"`
	// FirmwareConfig are the lines of the Raspberry Pi firmware's
	// config.txt on boards where it chains to another loader (rpi3: U-Boot);
	// with tryboot (rpi4-tryboot) contract/ab writes config.txt.
	FirmwareConfig []string `yaml:"firmwareConfig"`
	// DTBs lists device trees (paths under the kernel's dtbs dir) to install.
	DTBs []string `yaml:"dtbs"`
	// Modules are the kernel modules (by name) the initramfs loads before
	// the root is mounted, closed over their dependencies at build time.
	Modules []string `yaml:"modules"`
	QEMU    *QEMU    `yaml:"qemu"`
}

// Kernel says where the board's kernel comes from by default.
type Kernel struct {
	// Package is the Debian package (or metapackage) providing the kernel.
	Package string `yaml:"package"`
	// Suite is where in the spec's Debian release the package is taken
	// from: "" (the release with its updates) or "backports" (only
	// RELEASE-backports: a newer kernel the board needs).
	Suite string `yaml:"suite"`
}

// KernelBackports is the Kernel.Suite of a kernel from RELEASE-backports.
const KernelBackports = "backports"

// PackageFile copies one file of a Debian package onto the boot partition.
type PackageFile struct {
	Package string `yaml:"package"`
	// From is the path inside the package, To the path on the boot partition.
	From string `yaml:"from"`
	To   string `yaml:"to"`
}

// QEMU describes how to run the board in QEMU.
type QEMU struct {
	Binary  string `yaml:"binary"`
	Machine string `yaml:"machine"`
	CPU     string `yaml:"cpu"`
	Memory  int    `yaml:"memoryMiB"`
	SMP     int    `yaml:"smp"`
	// Firmware: UEFI pflash code and vars template (host paths, from the
	// ovmf / qemu-efi-aarch64 packages) or a -bios image (U-Boot).
	Code string `yaml:"code"`
	Vars string `yaml:"vars"`
	// SecureBootCode is the UEFI code that enforces Secure Boot (OVMF's
	// SMM build; AAVMF's usual code); the vars template Vars starts in
	// setup mode, without keys.
	SecureBootCode string `yaml:"secureBootCode"`
	BIOS           string `yaml:"bios"`
	// SD attaches the disk as the machine's SD card (raspi3b); QEMU wants
	// its size a power of two, so a disk of another size boots on a
	// bigger overlay.
	SD bool `yaml:"sd"`
	// Serial is the serial port the console is on, 0-based (the ports
	// before it are connected to nothing): raspi3b's second port is the
	// mini UART, the Pi 3's console.
	Serial int `yaml:"serial"`
	// KernelFromImage and DTBFromImage are boot-partition files QEMU loads
	// itself, standing in for the Raspberry Pi firmware (which QEMU does
	// not run): U-Boot and the device tree it gets.
	KernelFromImage string `yaml:"kernelFromImage"`
	DTBFromImage    string `yaml:"dtbFromImage"`
	// HostPackages are the Debian packages that provide Binary and firmware.
	HostPackages []string `yaml:"hostPackages"`
}

var all = mustLoad()

func mustLoad() map[string]*Board {
	m, err := load(files)
	if err != nil {
		panic(err) // embedded data: a broken file is a build bug caught by the tests
	}
	return m
}

func load(fsys fs.FS) (map[string]*Board, error) {
	names, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, err
	}
	m := map[string]*Board{}
	for _, n := range names {
		data, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		var b Board
		if err := dec.Decode(&b); err != nil {
			return nil, fmt.Errorf("boards/%s: %w", n, err)
		}
		if want := strings.TrimSuffix(n, ".yaml"); b.Name != want {
			return nil, fmt.Errorf("boards/%s: name %q, want %q", n, b.Name, want)
		}
		m[b.Name] = &b
	}
	return m, nil
}

// Get returns the named board, or an error listing the known ones.
func Get(name string) (*Board, error) {
	if b, ok := all[name]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("unknown board %q (known: %s)", name, strings.Join(Names(), ", "))
}

// Names returns the known board names, sorted.
func Names() []string {
	out := make([]string, 0, len(all))
	for n := range all {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// All returns every board, sorted by name.
func All() []*Board {
	out := make([]*Board, 0, len(all))
	for _, n := range Names() {
		out = append(out, all[n])
	}
	return out
}
