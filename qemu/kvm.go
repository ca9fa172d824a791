package qemu

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/basaltos/basalt/boards"
)

// KVM ioctls (linux/kvm.h) and the only API version there has ever been.
const (
	kvmGetAPIVersion = 0xAE00
	kvmCreateVM      = 0xAE01
	kvmCreateVCPU    = 0xAE41
	kvmGetMSRs       = 0xC008AE88 // _IOWR(KVMIO, 0x88, struct kvm_msrs)
	kvmSetMSRs       = 0x4008AE89 // _IOW(KVMIO, 0x89, struct kvm_msrs)
	kvmAPIVersion    = 12

	// msrArchCapabilities is IA32_ARCH_CAPABILITIES, which QEMU's -cpu
	// max/host copies from KVM's feature MSRs into each vCPU.
	msrArchCapabilities = 0x10a
)

// kvmMSRs is struct kvm_msrs with one struct kvm_msr_entry.
type kvmMSRs struct {
	n, _  uint32
	index uint32
	_     uint32
	data  uint64
}

// ProbeKVM reports whether dev (normally /dev/kvm) can run a VM: it opens
// it, checks KVM_GET_API_VERSION, creates a VM and a vCPU and, on x86, sets
// the vCPU's IA32_ARCH_CAPABILITIES to the value KVM offers, as QEMU does.
// A device node alone proves nothing: containers and nested hosts often have
// one that does not work (seen here: QEMU aborts with "failed to set MSR
// 0x10a" although every ioctl before succeeds).
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
	defer unix.Close(vm)
	vcpu, err := unix.IoctlRetInt(vm, kvmCreateVCPU)
	if err != nil {
		return fmt.Errorf("%s: KVM_CREATE_VCPU: %w", dev, err)
	}
	defer unix.Close(vcpu)
	if runtime.GOARCH != "amd64" {
		return nil
	}
	m := kvmMSRs{n: 1, index: msrArchCapabilities}
	if n, err := msrIoctl(fd, kvmGetMSRs, &m); err != nil || n != 1 {
		return nil // not a feature MSR here: QEMU will not set it either
	}
	if n, err := msrIoctl(vcpu, kvmSetMSRs, &m); err != nil || n != 1 {
		return fmt.Errorf("%s: KVM_SET_MSRS IA32_ARCH_CAPABILITIES=%#x refused (%d set, %v): nested KVM without it aborts QEMU", dev, m.data, n, err)
	}
	return nil
}

func msrIoctl(fd int, req uintptr, m *kvmMSRs) (int, error) {
	n, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(unsafe.Pointer(m)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
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
