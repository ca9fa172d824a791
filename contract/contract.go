// Package contract is the on-disk contract between the build host (image/...)
// and the device (initsys/...): partition labels, boot-partition paths,
// kernel command-line keys and the console markers tests wait for.
//
// It imports neither side; both import it. Keep it small and stable: a change
// here is a change of the image format.
package contract

// GPT partition names (PARTLABEL) and the FAT volume label of the boot partition.
const (
	PartBoot  = "basalt-boot"
	PartRootA = "basalt-root-a"
	PartRootB = "basalt-root-b"
	PartData  = "basalt-data"

	// BootFSLabel is the FAT volume label of the boot partition.
	BootFSLabel = "BASALT"
	// DataFSLabel is the ext4 volume label of the data partition.
	DataFSLabel = "basalt-data"
)

// MBRPartitions are the partitions of an MBR disk (Pi boards) in table
// order: MBR has no partition names, so both sides name partition N+1
// MBRPartitions[N] on a disk whose first partition is the FAT labelled
// BootFSLabel.
var MBRPartitions = [4]string{PartBoot, PartRootA, PartRootB, PartData}

// Slot names a root slot.
type Slot string

const (
	SlotA Slot = "a"
	SlotB Slot = "b"
)

// PartLabel returns the PARTLABEL of the slot's root partition.
func (s Slot) PartLabel() string {
	if s == SlotB {
		return PartRootB
	}
	return PartRootA
}

// Other returns the other slot.
func (s Slot) Other() Slot {
	if s == SlotB {
		return SlotA
	}
	return SlotB
}

// Valid reports whether s names a slot.
func (s Slot) Valid() bool { return s == SlotA || s == SlotB }

// Paths on the boot partition, relative to its root, slash-separated.
const (
	// BootConfig is the device config a user edits after flashing;
	// BootConfigDir holds its drop-ins (*.yaml, merged in name order).
	BootConfig    = "basalt/config.yaml"
	BootConfigDir = "basalt/config.d"
	// BootStateFile is the A/B state file read by boot.scr (U-Boot boards).
	BootStateFile = "basalt/state.txt"
	// BootVersionFile, inside a slot directory, names the version of that slot.
	BootVersionFile = "version"
	// A slot's boot files, inside SlotDir: KernelFile, InitrdFile, DTBDir/.
	KernelFile = "vmlinuz"
	InitrdFile = "initrd"
	// UKIFile, inside SlotDir, is the slot's signed unified kernel image
	// (Secure Boot images: EFI stub + kernel + initrd + command line, in
	// place of KernelFile and InitrdFile).
	UKIFile = "uki.efi"
	DTBDir  = "dtbs"
	// SlotArgsFile, inside a slot directory, holds the kernel arguments of
	// that slot's content (its verity root) for boot.scr, as the U-Boot
	// env text "basalt_args=ARGS"; systemd-boot entries carry them in
	// their options line.
	SlotArgsFile = "args.txt"
)

// SlotDir returns the boot-partition directory of the slot's boot files
// (KernelFile, InitrdFile, DTBDir, BootVersionFile, SlotArgsFile).
func SlotDir(s Slot) string { return string(s) }

// Kernel command-line keys.
const (
	CmdlineSlot  = "basalt.slot"
	CmdlineDebug = "basalt.debug"
)

// Console markers: stable strings that tests and users wait for.
const (
	// MarkerPrefix starts every line the init says (initsys/say).
	MarkerPrefix = "basalt: "
	// MarkerReady is stage 2's line once the boot sequence has run.
	MarkerReady = "basalt: ready"
	// MarkerOrchestratorReady is printed when the orchestrator's health
	// turns ready (k3s server /readyz ok, or agent kubelet healthy and
	// node registered), followed by " (k3s ROLE)".
	MarkerOrchestratorReady = "basalt: orchestrator ready"
)

// RootMountedMarker is the stage-1 marker printed once the slot's root is mounted.
func RootMountedMarker(s Slot) string { return "basalt: root " + string(s) + " mounted" }

// Paths inside the root filesystem.
const (
	// InitPath is where the device binary lives in the slot root and in the initramfs.
	InitPath = "/sbin/basalt-init"
	// ModulesDir is the kernel modules directory (ModulesDir/<release>/...).
	ModulesDir = "/lib/modules"
	// ModulesLoadFile, in ModulesDir/<release>/ of the initramfs, lists the
	// modules stage 1 loads, one name a line, in order; modules.dep beside it
	// gives their dependencies.
	ModulesLoadFile = "modules.load"
	// ReleaseFile describes the image in the root: KEY=value lines,
	// os-release style (Release).
	ReleaseFile = "/etc/basalt-release"
	// ServicesFile lists the services stage 2 supervises (YAML list of
	// name, path, args, env, restart: always|on-failure|once, ready_file, ready_exec).
	ServicesFile = "/etc/basalt/services.yaml"
	// DataMountPoint is where stage 2 mounts the data partition; the root
	// provides it and /var, /run, /tmp as empty directories.
	DataMountPoint = "/data"
	// BakedConfig is the device-config default baked from the spec's
	// config: section (a versioned basalt document), the first source the
	// device merges; the boot partition's BootConfig and drop-ins follow.
	BakedConfig = "/etc/basalt/config.yaml"
	// ZoneInfoDir holds the zone files the builder puts in the root (from
	// Debian's tzdata) and the device points /etc/localtime at.
	ZoneInfoDir = "/usr/share/zoneinfo"
	// LogDir holds the logs kept on data: NAME.log per service and InitLog.
	LogDir = "/var/log/basalt"
	// InitLog is PID 1's kept log: the init's own lines (stage 1's first),
	// each with MarkerPrefix, as on the console.
	InitLog = LogDir + "/basalt-init.log"
)

// IsUTC reports whether the time-zone name tz means UTC, which needs no
// zone file: without /etc/localtime the device keeps UTC.
func IsUTC(tz string) bool {
	switch tz {
	case "UTC", "Etc/UTC", "UCT", "Etc/UCT", "Zulu", "Etc/Zulu", "Universal", "Etc/Universal", "GMT", "Etc/GMT":
		return true
	}
	return false
}
