// Package spec is basalt.yaml: the versioned, declarative description of an
// image (apiVersion basalt.dev/v1alpha1, kind Image), its strict decoding
// with file:line errors, its validation (all errors at once, each with its
// YAML path; warnings apart), its defaults (in defaults.go, one place), the
// embedded default spec, and the JSON Schema generated from these types.
//
// Struct tags: `yaml` names the key, `desc` documents it (in the schema),
// `enum` lists the allowed values, `required:"true"` marks required keys.
package spec

// APIVersion and Kind identify a basalt image spec.
const (
	APIVersion = "basalt.dev/v1alpha1"
	Kind       = "Image"
)

// Spec is one basalt.yaml.
type Spec struct {
	APIVersion string   `yaml:"apiVersion" required:"true" enum:"basalt.dev/v1alpha1" desc:"Version of the spec format."`
	Kind       string   `yaml:"kind" required:"true" enum:"Image" desc:"Kind of document."`
	Name       string   `yaml:"name" required:"true" desc:"Image name: lower-case letters, digits and '-', starting with a letter (at most 63 bytes); names the output files."`
	Version    string   `yaml:"version" required:"true" desc:"Image version, semver-like (1.2.3, 1.2.3-rc.1); updates must increase it."`
	Boards     []string `yaml:"boards" required:"true" desc:"Boards to build an image for (see 'basalt boards')."`

	Kernel      map[string]KernelSource     `yaml:"kernel,omitempty" desc:"Per-board kernel override, keyed by board name; default: the board's Debian kernel package."`
	Bootloader  map[string]BootloaderSource `yaml:"bootloader,omitempty" desc:"Per-board override of the bootloader binary put on the boot partition (UEFI boards: the systemd-boot EFI binary), keyed by board name."`
	Debian      Debian                      `yaml:"debian,omitempty" desc:"Where Debian packages (kernels, bootloaders) come from."`
	Overlays    []Overlay                   `yaml:"overlays,omitempty" desc:"Host files and directories copied into the root filesystem."`
	Disk        Disk                        `yaml:"disk,omitempty" desc:"Partition and disk sizes."`
	ConfigTrust string                      `yaml:"configTrust,omitempty" enum:"any,signed" desc:"Which device config sources the device merges: any (every source, as documented), or signed: config.yaml, drop-ins and NoCloud seeds only with a valid detached signature (FILE.sig, basalt config sign) by a configKey, and only basalt.hostname, basalt.fqdn and basalt.timezone from the kernel command line; the rest is refused and reported."`
	ConfigKey   Files                       `yaml:"configKey,omitempty" desc:"With configTrust: signed, host file (or list) with the ed25519 public keys (PEM, from basalt keygen) config sources must be signed by; baked into the root."`
	SecureBoot  *SecureBoot                 `yaml:"secureBoot,omitempty" desc:"Sign the UEFI boot chain for Secure Boot: each slot boots a unified kernel image (systemd's EFI stub + kernel + initrd + command line with the slot's verity root hash) signed with the db key, and systemd-boot is signed too. UEFI boards only."`
	Verity      string                      `yaml:"verity,omitempty" enum:"on,off" desc:"dm-verity on each root slot: a hash tree after the squashfs, its root hash on the kernel command line; the device mounts the slot only through it. off: no tree, no check (a flipped bit is read as data)."`

	Config   *DeviceConfig `yaml:"config,omitempty" desc:"Device config baked into the image (/etc/basalt/config.yaml), the first source the device merges: the keys of a kind: DeviceConfig document (hostname, users, ssh_authorized_keys, write_files, ntp, network, cluster, update, registries; see docs/config.md)."`
	Services []Service     `yaml:"services,omitempty" desc:"Programs the init supervises (written to /etc/basalt/services.yaml)."`
	Debug    Debug         `yaml:"debug,omitempty" desc:"Debugging aids baked into the image."`
	// Timezones are zones of Debian's tzdata put in the root.
	Timezones []string `yaml:"timezones,omitempty" desc:"Time zones the root carries in /usr/share/zoneinfo, from Debian's tzdata (fetched and locked like the kernel), for drop-ins or NoCloud seeds that set a timezone: IANA names (Europe/Paris) or \"all\" for every zone (~400 KiB compressed). The config's own timezone is always included; UTC needs none."`

	Orchestrator *Orchestrator `yaml:"orchestrator,omitempty" desc:"The orchestrator the device runs: k3s (a server or agent per config.cluster) or none (an OS-only image, the default when this key is absent)."`
	Images       []Image       `yaml:"images,omitempty" desc:"Container images preloaded for air-gapped use: pulled for the board's platform (or read from local tarballs) at build time and imported by k3s at first boot. Needs orchestrator kind k3s."`
	Manifests    []Manifest    `yaml:"manifests,omitempty" desc:"Kubernetes manifests k3s applies (its auto-deploy directory). Needs orchestrator kind k3s."`
	Update       *Update       `yaml:"update,omitempty" desc:"Over-the-air update settings: the keys bundles are verified with, downgrade policy."`

	// File is the spec's file name (in messages), Dir the directory its
	// relative paths resolve against.
	File, Dir string `yaml:"-"`
	// lines maps YAML paths to their line in File.
	lines map[string]int
}

// AllZones in Spec.Timezones puts every zone of tzdata in the root.
const AllZones = "all"

// KernelSource overrides where a board's kernel comes from. Exactly one of
// Package, Deb or Vmlinuz is set.
type KernelSource struct {
	Package string `yaml:"package,omitempty" desc:"Debian package (or metapackage) with the kernel, fetched from the mirror."`
	Deb     string `yaml:"deb,omitempty" desc:"Local kernel .deb file (relative to the spec file)."`
	Vmlinuz string `yaml:"vmlinuz,omitempty" desc:"Local kernel image; needs modules."`
	Modules string `yaml:"modules,omitempty" desc:"With vmlinuz: the modules directory, either lib/modules (holding one release directory) or the release directory itself."`
	SHA256  string `yaml:"sha256,omitempty" desc:"Expected sha256 (hex) of deb or vmlinuz."`
}

// BootloaderSource overrides the bootloader binary of a board. Exactly one of
// Deb or File is set.
type BootloaderSource struct {
	Deb    string `yaml:"deb,omitempty" desc:"Local .deb holding the board's bootloader file (e.g. systemd-boot-efi)."`
	File   string `yaml:"file,omitempty" desc:"Local bootloader binary (e.g. systemd-bootx64.efi)."`
	SHA256 string `yaml:"sha256,omitempty" desc:"Expected sha256 (hex) of deb or file."`
}

// SecureBoot names the key the boot chain is signed with: dir, or key and
// cert.
type SecureBoot struct {
	Dir  string `yaml:"dir,omitempty" desc:"Key directory from basalt keygen --secure-boot: signs with its db.key and db.crt, and puts its PK.auth, KEK.auth and db.auth in the image's /loader/keys/auto/, which systemd-boot enrolls on first boot while the firmware is in setup mode (loader.conf secure-boot-enroll force)."`
	Key  string `yaml:"key,omitempty" desc:"PEM RSA private key to sign with (instead of dir; the firmware must already trust its certificate: nothing is enrolled)."`
	Cert string `yaml:"cert,omitempty" desc:"With key: its PEM X.509 certificate."`
	Stub string `yaml:"stub,omitempty" desc:"Local systemd EFI stub (linuxx64.efi.stub, linuxaa64.efi.stub); default: from the board's Debian package systemd-boot-efi, fetched and locked like the kernel."`
}

// Debian names the package source.
type Debian struct {
	Mirror string `yaml:"mirror,omitempty" desc:"Debian mirror URL; default: $BASALT_DEBIAN_MIRROR, else the host's apt sources."`
	Suite  string `yaml:"suite,omitempty" desc:"Debian suite (release codename): trixie (Debian 13, current stable, 6.12 kernels with the Raspberry Pi 3/4/5 device trees) or bookworm (Debian 12, oldstable, 6.1 kernels)."`
	// Components are the archive areas indexed in each suite.
	Components []string `yaml:"components,omitempty" enum:"main,contrib,non-free,non-free-firmware" desc:"Archive areas the packages are resolved from; non-free-firmware holds the Raspberry Pi boot firmware (raspi-firmware) and Wi-Fi firmware."`
}

// Overlay copies a host file or directory into the root.
type Overlay struct {
	From   string `yaml:"from" required:"true" desc:"Host file or directory, relative to the spec file."`
	To     string `yaml:"to" required:"true" desc:"Absolute path in the root filesystem."`
	Mode   *Mode  `yaml:"mode,omitempty" desc:"Octal permissions for files (e.g. \"0644\"); default: the host file's permission bits."`
	UID    uint32 `yaml:"uid,omitempty" desc:"Owner user id."`
	GID    uint32 `yaml:"gid,omitempty" desc:"Owner group id."`
	SHA256 string `yaml:"sha256,omitempty" desc:"Expected sha256 (hex) of a file overlay."`
}

// Disk sizes the partitions. Sizes are written like "256MiB", "2GiB".
type Disk struct {
	Boot     Size `yaml:"boot,omitempty" desc:"Boot (FAT32) partition size."`
	RootSlot Size `yaml:"rootSlot,omitempty" desc:"Size of each root slot (A and B); default: twice the root content, rounded up to 64 MiB."`
	Data     Size `yaml:"data,omitempty" desc:"Data (ext4) partition size in the image; it grows to fill the medium on first boot."`
	Total    Size `yaml:"total,omitempty" desc:"Whole image size; default: just large enough. Any extra space goes to data."`
}

// Service is a program stage 2 supervises, each in its own process group.
type Service struct {
	Name      string   `yaml:"name" required:"true" desc:"Unique service name (in logs and status)."`
	Path      string   `yaml:"path" required:"true" desc:"Absolute path of the program in the root."`
	Args      []string `yaml:"args,omitempty" desc:"Arguments after the program name."`
	Env       []string `yaml:"env,omitempty" desc:"KEY=VALUE entries added to the environment."`
	Restart   string   `yaml:"restart,omitempty" enum:"always,on-failure,once" desc:"Restart policy, with exponential backoff; default always."`
	ReadyFile string   `yaml:"readyFile,omitempty" desc:"A file whose existence means the service is ready."`
	ReadyExec []string `yaml:"readyExec,omitempty" desc:"A command whose success means the service is ready."`
}

// VerityOn reports whether root slots carry a dm-verity hash tree.
func (s *Spec) VerityOn() bool { return s.Verity != VerityOff }

// Debug holds debugging aids.
type Debug struct {
	Shell bool `yaml:"shell,omitempty" desc:"Install busybox (Debian busybox-static) as /bin/busybox with /bin/sh, for the emergency console and SSH sessions. Also installed when a config user has ssh_authorized_keys."`
}

// Orchestrator selects and locates the orchestrator. The node's role and
// join settings are device config (config.cluster), so drop-ins can change them.
type Orchestrator struct {
	Kind    string  `yaml:"kind" required:"true" enum:"k3s,none" desc:"k3s, or none for an OS-only image."`
	Version string  `yaml:"version,omitempty" desc:"k3s release (v1.X.Y+k3sN) downloaded from the k3s GitHub release for the board's arch and verified against its sha256sum file; pinned in basalt.lock. Needed unless path is given or $BASALT_K3S is set."`
	Path    string  `yaml:"path,omitempty" desc:"Local k3s binary (relative to the spec file) instead of the download: static, for the board's arch. $BASALT_K3S (a binary, or a directory of release files: k3s, k3s-arm64, k3s-armhf, k3s-airgap-images-ARCH.tar.zst) overrides both."`
	SHA256  string  `yaml:"sha256,omitempty" desc:"Expected sha256 (hex) of path."`
	Mirror  string  `yaml:"mirror,omitempty" desc:"Base URL of k3s releases (default https://github.com/k3s-io/k3s/releases/download): MIRROR/VERSION/ASSET."`
	Airgap  *Airgap `yaml:"airgap,omitempty" desc:"k3s' air-gap images archive (pause, coredns, ...). Default: the release's k3s-airgap-images-ARCH.tar.zst when version is downloaded, none with path."`
}

// Airgap locates k3s' air-gap images archive.
type Airgap struct {
	Path   string `yaml:"path,omitempty" desc:"Local k3s-airgap-images-ARCH.tar.zst (or .tar) relative to the spec file."`
	SHA256 string `yaml:"sha256,omitempty" desc:"Expected sha256 (hex) of path."`
	None   bool   `yaml:"none,omitempty" desc:"Preload no air-gap archive (k3s then pulls its images from the network)."`
}

// Image is a container image to preload. Exactly one of Ref, Path is set.
type Image struct {
	Ref  string `yaml:"ref,omitempty" desc:"Registry reference (name:tag or name@sha256:...), pulled for the board's platform with the host's docker credentials; a tag is resolved to a digest and pinned in basalt.lock."`
	Path string `yaml:"path,omitempty" desc:"Local OCI-layout or docker-archive tarball (relative to the spec file)."`
}

// Manifest is Kubernetes YAML for k3s' auto-deploy directory.
type Manifest struct {
	Path string `yaml:"path" required:"true" desc:"Host YAML file, directory of YAML files, or glob (relative to the spec file). HelmChart resources may inline their chart as chartContent."`
}

// Update configures A/B OTA updates.
type Update struct {
	Channel        string `yaml:"channel,omitempty" desc:"http(s) URL the device polls for bundles."`
	PublicKey      Files  `yaml:"publicKey,omitempty" desc:"Host file (or list of files, for key rotation) with the ed25519 public keys (PEM, from basalt keygen) bundles are verified with; baked into the root. Without one the image accepts no update."`
	Interval       string `yaml:"interval,omitempty" desc:"Poll interval (Go duration, e.g. 6h)."`
	AllowDowngrade bool   `yaml:"allowDowngrade,omitempty" desc:"Mark this image's bundles as installable over a higher version (the device must allow downgrades too: update.allow_downgrade in its config)."`
}
