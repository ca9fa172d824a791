// Package qemu boots basalt images (and, for device tests, a kernel and
// initramfs directly) in QEMU with each board's machine, CPU and firmware:
// OVMF/AAVMF pflash with a per-VM copy of the vars file, U-Boot as -bios for
// armv7. KVM is used only when /dev/kvm really works and the host runs the
// guest's architecture; otherwise TCG. The serial console is on stdio; user
// networking is restrict=on (tests: the guest reaches no outside address)
// unless Net.Outside asks for a normal user network (`make demo`, users:
// DNS and NTP work); port forwards bind 127.0.0.1 only.
//
// Run boots and waits; Start returns a Machine whose console tests read with
// Expect(marker), keeping the whole console log for failure reports.
package qemu

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/basaltos/basalt/boards"
)

// Format is a disk image format.
type Format string

const (
	Raw   Format = "raw"
	QCOW2 Format = "qcow2"
)

// Accel is a QEMU accelerator.
type Accel string

const (
	Auto Accel = ""    // KVM when usable (ProbeKVM), else TCG
	TCG  Accel = "tcg" // always works, slow
	KVM  Accel = "kvm"
)

// Config describes one virtual machine.
type Config struct {
	Board *boards.Board
	// Image is the disk image to boot; empty for a diskless direct kernel boot.
	Image string
	// Format of Image; empty detects it from the file (qcow2 magic, else raw).
	Format Format
	// DiskSize > 0 boots on a virtual disk of that many bytes, bigger than
	// the image: a qcow2 overlay (qemu-img) or a sparse copy in a temporary
	// directory. Writes go there; the image is left unchanged.
	DiskSize int64
	// Snapshot discards the guest's writes to Image (QEMU snapshot=on).
	Snapshot bool
	Net      Net
	// ExtraDrives are more raw disk images, attached after the boot disk.
	ExtraDrives []string
	// Memory in MiB and SMP CPUs; zero takes the board's value.
	Memory int
	SMP    int
	Accel  Accel
	// NoReboot makes QEMU exit when the guest reboots.
	NoReboot bool
	// SecureBoot boots the board's Secure Boot firmware (QEMU.SecureBootCode:
	// OVMF with SMM, its flash vars protected), which enforces db once
	// keys are enrolled.
	SecureBoot bool
	// Vars, when set, is the UEFI vars file the VM uses in place (kept
	// across boots: enrolled keys stay); empty: a fresh copy of the
	// board's template per VM.
	Vars string
	// Kernel, Initrd and Append boot a kernel directly, bypassing the
	// firmware (device tests before an image exists).
	Kernel, Initrd, Append string
	// DTB is the device tree for a directly booted kernel (raspi3b).
	DTB string
	// Console receives the serial console (and QEMU's own messages).
	Console io.Writer
	// Stdin, when set, is the console's input; Ctrl-A X quits QEMU.
	Stdin io.Reader
}

// Net is the guest's network: none, QEMU user networking, and/or a NIC on
// a Hub shared with other VMs.
type Net struct {
	User bool
	// Outside lets the guest reach outside addresses through the host
	// (QEMU's user network without restrict=on). Tests never set it.
	Outside  bool
	Forwards []Forward
	// Hub, when set, is a Hub's address: a second NIC (after the user
	// one) on that segment, with MAC HubMAC.
	Hub    string
	HubMAC string
	// ToHost are guest-to-host forwards: the guest's connections to
	// GuestHost:GuestPort reach 127.0.0.1:HostPort on the host (QEMU
	// guestfwd), the only host service a restricted guest can reach.
	ToHost []ToHost
}

// GuestHost is the address a guest connects to for a ToHost forward.
const GuestHost = "10.0.2.100"

// ToHost forwards the guest's GuestHost:GuestPort to 127.0.0.1:HostPort.
type ToHost struct {
	GuestPort int
	HostPort  int
}

// Relay is the command QEMU runs for each guest connection of a ToHost
// forward (stdin/stdout are the connection). A "tcp:" chardev target would
// connect once, when QEMU starts, and die with the first closed connection.
const Relay = "/bin/busybox nc 127.0.0.1"

// String returns the forward as QEMU's guestfwd value.
func (f ToHost) String() string {
	return fmt.Sprintf("tcp:%s:%d-cmd:%s %d", GuestHost, f.GuestPort, Relay, f.HostPort)
}

// Forward is a host-to-guest port forward; the host side binds 127.0.0.1.
type Forward struct {
	Proto     string // tcp or udp
	HostPort  int
	GuestPort int
}

// String returns the forward as QEMU's hostfwd value.
func (f Forward) String() string {
	return fmt.Sprintf("%s:127.0.0.1:%d-:%d", f.Proto, f.HostPort, f.GuestPort)
}

// ParseForward parses "[tcp:|udp:][127.0.0.1:]HOSTPORT-[:]GUESTPORT", e.g.
// "127.0.0.1:2222-:22" or "2222-:22". Only 127.0.0.1 may be bound: a
// forward on another address would expose the guest to the network.
func ParseForward(s string) (Forward, error) {
	f := Forward{Proto: "tcp"}
	rest := s
	if p, r, ok := strings.Cut(rest, ":"); ok && (p == "tcp" || p == "udp") {
		f.Proto, rest = p, r
	}
	host, guest, ok := strings.Cut(rest, "-")
	if !ok {
		return Forward{}, fmt.Errorf("port forward %q: want [tcp:|udp:][127.0.0.1:]HOSTPORT-:GUESTPORT, e.g. 127.0.0.1:2222-:22", s)
	}
	if addr, port, ok := strings.Cut(host, ":"); ok {
		if addr != "127.0.0.1" && addr != "localhost" {
			return Forward{}, fmt.Errorf("port forward %q: host address %q: only 127.0.0.1 may be bound", s, addr)
		}
		host = port
	}
	guest = strings.TrimPrefix(guest, ":")
	var err error
	if f.HostPort, err = parsePort(host); err != nil {
		return Forward{}, fmt.Errorf("port forward %q: host port: %w", s, err)
	}
	if f.GuestPort, err = parsePort(guest); err != nil {
		return Forward{}, fmt.Errorf("port forward %q: guest port: %w", s, err)
	}
	return f, nil
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return n, nil
}

// plan is what Start resolved from a Config: the accelerator and the files
// of this VM (disk to boot, per-VM UEFI vars copy).
type plan struct {
	accel  Accel
	disk   string
	format Format
	vars   string
	// kernel and dtb are the files of Board.QEMU.KernelFromImage and
	// DTBFromImage, copied out of the image's boot partition.
	kernel, dtb string
}

// args returns QEMU's command line (without the binary) for c and p.
func args(c *Config, p plan) ([]string, error) {
	b := c.Board
	if b == nil {
		return nil, errors.New("no board")
	}
	q := b.QEMU
	if q == nil {
		return nil, fmt.Errorf("board %s has no qemu section: it runs on hardware only", b.Name)
	}
	mem, smp := q.Memory, q.SMP
	if c.Memory > 0 {
		mem = c.Memory
	}
	if c.SMP > 0 {
		smp = c.SMP
	}
	machine := q.Machine
	if c.SecureBoot {
		if q.SecureBootCode == "" {
			return nil, fmt.Errorf("board %s has no Secure Boot firmware for QEMU", b.Name)
		}
		if b.Arch == boards.AMD64 {
			machine += ",smm=on" // OVMF's Secure Boot build keeps its vars in SMM
		}
	}
	a := []string{
		"-name", "basalt-" + b.Name,
		"-nodefaults",
		"-machine", machine,
		"-accel", string(p.accel),
		"-cpu", q.CPU,
		"-m", strconv.Itoa(mem),
		"-smp", strconv.Itoa(smp),
		"-display", "none",
	}
	for range q.Serial {
		a = append(a, "-serial", "null")
	}
	if c.Stdin != nil {
		a = append(a, "-serial", "mon:stdio")
	} else {
		a = append(a, "-serial", "stdio")
	}
	switch {
	case p.kernel != "": // from the image (raspi3b: U-Boot, the device tree)
		a = append(a, "-kernel", p.kernel, "-dtb", p.dtb)
	case c.Kernel != "":
		a = append(a, "-kernel", c.Kernel)
		if c.Initrd != "" {
			a = append(a, "-initrd", c.Initrd)
		}
		if c.Append != "" {
			a = append(a, "-append", c.Append)
		}
		if c.DTB != "" {
			a = append(a, "-dtb", c.DTB)
		}
	case c.SecureBoot:
		if b.Arch == boards.AMD64 { // OVMF's Secure Boot build: vars writable from SMM only
			a = append(a, "-global", "driver=cfi.pflash01,property=secure,value=on")
		}
		a = append(a, "-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+esc(q.SecureBootCode))
		if p.vars != "" {
			a = append(a, "-drive", "if=pflash,format=raw,unit=1,file="+esc(p.vars))
		}
	case q.Code != "":
		a = append(a, "-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+esc(q.Code))
		if p.vars != "" {
			a = append(a, "-drive", "if=pflash,format=raw,unit=1,file="+esc(p.vars))
		}
	case q.BIOS != "":
		a = append(a, "-bios", q.BIOS)
	}
	if p.disk != "" && q.SD {
		d := "if=sd,format=" + string(p.format) + ",file=" + esc(p.disk)
		if c.Snapshot {
			d += ",snapshot=on"
		}
		a = append(a, "-drive", d)
	} else if p.disk != "" {
		d := "if=none,id=disk0,format=" + string(p.format) + ",file=" + esc(p.disk)
		if c.Snapshot {
			d += ",snapshot=on"
		}
		dev := "virtio-blk-pci,drive=disk0"
		if c.Kernel == "" { // -kernel takes bootindex 0 itself
			dev += ",bootindex=0"
		}
		a = append(a, "-drive", d, "-device", dev)
	}
	for i, x := range c.ExtraDrives {
		id := "disk" + strconv.Itoa(i+1)
		a = append(a, "-drive", "if=none,id="+id+",format=raw,file="+esc(x), "-device", "virtio-blk-pci,drive="+id)
	}
	if c.Net.User {
		n := "user,model=virtio-net-pci,restrict=on"
		if c.Net.Outside {
			n = "user,model=virtio-net-pci"
		}
		for _, f := range c.Net.Forwards {
			n += ",hostfwd=" + f.String()
		}
		for _, f := range c.Net.ToHost {
			n += ",guestfwd=" + f.String()
		}
		a = append(a, "-nic", n)
	} else if c.Net.Hub == "" {
		a = append(a, "-nic", "none")
	}
	if c.Net.Hub != "" {
		d := "virtio-net-pci,netdev=hub0"
		if c.Net.HubMAC != "" {
			d += ",mac=" + c.Net.HubMAC
		}
		a = append(a, "-netdev", "socket,id=hub0,connect="+c.Net.Hub, "-device", d)
	}
	if c.NoReboot {
		a = append(a, "-no-reboot")
	}
	return a, nil
}

// esc escapes a value inside a QEMU option list (a comma is written twice).
func esc(s string) string { return strings.ReplaceAll(s, ",", ",,") }
