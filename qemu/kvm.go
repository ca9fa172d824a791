package qemu

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/basaltos/basalt/boards"
)

// KVM ioctls (linux/kvm.h) and the only API version there has ever been.
const (
	kvmGetAPIVersion = 0xAE00
	kvmCreateVM      = 0xAE01
	kvmAPIVersion    = 12
)

// ProbeKVM reports whether dev (normally /dev/kvm) can run a VM: it opens
// it, checks KVM_GET_API_VERSION and creates (and drops) a VM. A device
// node alone proves nothing: containers often have one that does not work.
func ProbeKVM(dev string) error {
	fd, err := unix.Open(dev, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	defer unix.Close(fd)
	v, err := unix.IoctlRetInt(fd, kvmGetAPIVersion)
	if err != nil {
		return fmt.Errorf("%s: KVM_GET_API_VERSION: %w", dev, err)
	}
	if v != kvmAPIVersion {
		return fmt.Errorf("%s: KVM API version %d, want %d", dev, v, kvmAPIVersion)
	}
	vm, err := unix.IoctlRetInt(fd, kvmCreateVM)
	if err != nil {
		return fmt.Errorf("%s: KVM_CREATE_VM: %w", dev, err)
	}
	unix.Close(vm)
	return nil
}

// chooseAccel returns KVM when the host's Go architecture runs the guest
// natively and probe succeeds, else TCG.
func chooseAccel(hostGOARCH string, guest boards.Arch, probe func() error) Accel {
	goarch, _ := guest.GOARCH()
	if hostGOARCH != goarch || probe() != nil {
		return TCG
	}
	return KVM
}

// resolveAccel turns Auto into KVM or TCG for this host.
func resolveAccel(a Accel, guest boards.Arch) Accel {
	if a != Auto {
		return a
	}
	return chooseAccel(runtime.GOARCH, guest, func() error { return ProbeKVM("/dev/kvm") })
}
