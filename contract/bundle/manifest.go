// Package bundle is the OTA update bundle format, shared by the builder
// (which writes and signs bundles), `basalt serve` (which indexes them) and
// the device (which verifies and applies them).
//
// A bundle is one tar file whose first member is manifest.json, the second
// manifest.sig (ed25519 over the exact manifest bytes; empty when not
// signed yet), then one member per payload in manifest order:
//
//	manifest.json   Manifest (JSON)
//	manifest.sig    64-byte ed25519 signature
//	rootfs          the root slot's content (squashfs, + verity tree when on)
//	kernel          the slot's vmlinuz
//	initrd          the slot's initramfs
//	dtbs/<path>     device trees, when the board has any
//
// A Secure Boot image's slots boot one signed unified kernel image each
// (contract.UKIFile), whose signed command line names the slot; so its
// bundle carries, in place of kernel and initrd, one UKI per slot it may
// be installed into (uki-a, uki-b) and the device writes the target's.
//
// So a device reads 1 MiB at most, checks the signature with its baked
// keys, and only then reads a payload byte: it applies the bundle in one
// streaming pass, hashing as it writes. Payload order and sizes are part
// of the signed manifest; a member that does not match is an error.
//
// Delta updates fit later (docs/update.md, "Delta updates"): with verity
// on, the rootfs payload's hash area is already a signed block-hash index;
// without, another payload kind before the rootfs. The device would copy
// the blocks its running slot has and fetch the others with HTTP Range.
package bundle

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/verity"
	"path"
	"strconv"
	"strings"
)

// FormatVersion is the manifest format this package reads and writes.
const FormatVersion = 1

// Member names and limits.
const (
	ManifestName = "manifest.json"
	SigName      = "manifest.sig"
	// MaxManifest bounds what a reader buffers before the signature check.
	MaxManifest = 1 << 20
)

// Payload kinds (and names, except dtbs/<path>).
const (
	RootFS = "rootfs"
	Kernel = "kernel"
	Initrd = "initrd"
	DTB    = "dtb"
	// UKI is a slot's signed unified kernel image (Secure Boot), one per
	// slot: named UKIName(slot).
	UKI = "uki"
)

// UKIName is the name of slot's UKI payload: uki-<slot>.
func UKIName(slot contract.Slot) string { return UKI + "-" + string(slot) }

// UKI reports whether m carries per-slot UKIs (a Secure Boot image) rather
// than kernel and initrd.
func (m Manifest) UKI() bool {
	_, ok := m.Payload(UKIName(contract.SlotA))
	return ok
}

// DTBPrefix starts the names of device-tree payloads: dtbs/<path under the
// slot's dtbs dir>.
const DTBPrefix = "dtbs/"

// KeysFile is where the image's trusted update public keys live in the
// root: one or more PEM "PUBLIC KEY" blocks (ed25519, PKIX). Several keys
// allow rotation: a bundle signed by any of them is accepted.
const KeysFile = "/etc/basalt/update-keys.pem"

// CompatKey is the key of contract.ReleaseFile holding the image's
// compatibility string; a device applies only bundles with the same one.
const CompatKey = "UPDATE_COMPAT"

// Manifest describes a bundle: what image, version and board it is for and
// each payload with its size and sha256.
type Manifest struct {
	Format int `json:"format"`
	// Image is the spec's name, Version its version, Board the board.
	Image   string `json:"image"`
	Version string `json:"version"`
	Board   string `json:"board"`
	// Compat must equal the device's UPDATE_COMPAT (the image name unless
	// the spec says otherwise).
	Compat string `json:"compat"`
	// AllowDowngrade lets a device with update.allow_downgrade install it
	// over a higher version.
	AllowDowngrade bool `json:"allow_downgrade,omitempty"`
	// Cmdline is the slot's kernel command line with "${slot}" for the slot
	// (BLS entries; U-Boot boards keep the one in boot.scr).
	Cmdline string `json:"cmdline"`
	// Epoch is the build time (SOURCE_DATE_EPOCH), Unix seconds.
	Epoch    int64     `json:"epoch"`
	Payloads []Payload `json:"payloads"`
}

// Payload is one member after the signature.
type Payload struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Verity is set on the rootfs when the image uses dm-verity.
	Verity *Verity `json:"verity,omitempty"`
}

// Verity describes the dm-verity hash tree appended to a rootfs payload
// (filled by the builder when verity is on; the device puts
// Verity.CmdlineArgs() on the slot's kernel command line: ab.Entry.Args).
// The payload is the slot's exact bytes: squashfs, then the hash area at
// HashOffset.
type Verity = verity.Params

// Name returns the bundle's file name: NAME-VERSION-BOARD.bundle.
func (m Manifest) Name() string { return m.Image + "-" + m.Version + "-" + m.Board + ".bundle" }

// Payload returns the payload called name.
func (m Manifest) Payload(name string) (Payload, bool) {
	for _, p := range m.Payloads {
		if p.Name == name {
			return p, true
		}
	}
	return Payload{}, false
}

// ParseManifest decodes and checks manifest bytes strictly (unknown keys
// are errors).
func ParseManifest(b []byte) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("%s: %w", ManifestName, err)
	}
	if dec.More() {
		return m, fmt.Errorf("%s: data after the JSON object", ManifestName)
	}
	return m, m.Check()
}

// Check reports the first problem of m.
func (m Manifest) Check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s: %s", ManifestName, fmt.Sprintf(format, a...))
	}
	if m.Format != FormatVersion {
		return bad("format %d, this device reads format %d", m.Format, FormatVersion)
	}
	for k, v := range map[string]string{"image": m.Image, "board": m.Board, "compat": m.Compat} {
		if v == "" || strings.ContainsAny(v, "/\\\x00\n") {
			return bad("%s %q: want a non-empty name without slashes", k, v)
		}
	}
	if _, err := ParseVersion(m.Version); err != nil {
		return bad("%v", err)
	}
	seen := map[string]bool{}
	for i, p := range m.Payloads {
		want := p.Name
		if p.Kind == DTB {
			rest, ok := strings.CutPrefix(p.Name, DTBPrefix)
			if !ok || rest == "" || path.Clean(rest) != rest || strings.HasPrefix(rest, "../") || rest == ".." || strings.HasPrefix(rest, "/") {
				return bad("payload %d: device tree name %q: want dtbs/<relative path>", i, p.Name)
			}
		} else if p.Kind == UKI {
			if p.Name != UKIName(contract.SlotA) && p.Name != UKIName(contract.SlotB) {
				return bad("payload %d: a %s payload must be called %s or %s, not %q", i, UKI, UKIName(contract.SlotA), UKIName(contract.SlotB), p.Name)
			}
		} else if p.Kind != RootFS && p.Kind != Kernel && p.Kind != Initrd {
			return bad("payload %d: kind %q (allowed: rootfs, kernel, initrd, dtb, uki)", i, p.Kind)
		} else if want != p.Kind {
			return bad("payload %d: a %s payload must be called %s, not %q", i, p.Kind, p.Kind, p.Name)
		}
		if seen[p.Name] {
			return bad("payload %q twice", p.Name)
		}
		seen[p.Name] = true
		if p.Size < 0 {
			return bad("payload %s: size %d", p.Name, p.Size)
		}
		if h, err := hex.DecodeString(p.SHA256); err != nil || len(h) != 32 {
			return bad("payload %s: sha256 %q is not 64 hex digits", p.Name, p.SHA256)
		}
		if p.Verity != nil && p.Kind != RootFS {
			return bad("payload %s: only the rootfs has a verity section", p.Name)
		}
	}
	// What a slot boots: kernel + initrd, or (Secure Boot) a UKI for each
	// slot, never both.
	need, not := []string{RootFS, Kernel, Initrd}, []string{UKIName(contract.SlotA), UKIName(contract.SlotB)}
	if seen[UKIName(contract.SlotA)] || seen[UKIName(contract.SlotB)] {
		need, not = []string{RootFS, UKIName(contract.SlotA), UKIName(contract.SlotB)}, []string{Kernel, Initrd}
	}
	for _, k := range need {
		if !seen[k] {
			return bad("no %s payload", k)
		}
	}
	for _, k := range not {
		if seen[k] {
			return bad("payload %s beside %s (a bundle carries kernel and initrd, or one UKI per slot)", k, strings.Join(need[1:], " and "))
		}
	}
	return nil
}

// Version is a parsed semver-like version: 1.2.3 or 1.2.3-rc.1.
type Version struct {
	Nums []int
	Pre  string
}

// ParseVersion parses v: dot-separated numbers (at least one), optionally
// followed by -PRERELEASE.
func ParseVersion(v string) (Version, error) {
	core, pre, _ := strings.Cut(v, "-")
	var out Version
	out.Pre = pre
	if core == "" {
		return out, fmt.Errorf("version %q: want numbers like 1.2.3 or 1.2.3-rc.1", v)
	}
	for _, f := range strings.Split(core, ".") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 || len(f) > 9 {
			return out, fmt.Errorf("version %q: want numbers like 1.2.3 or 1.2.3-rc.1", v)
		}
		out.Nums = append(out.Nums, n)
	}
	return out, nil
}

// CompareVersions compares a and b as versions (-1, 0, +1); a release
// sorts after its pre-releases (1.0.0-rc.1 < 1.0.0). Unparsable versions
// are an error.
func CompareVersions(a, b string) (int, error) {
	va, err := ParseVersion(a)
	if err != nil {
		return 0, err
	}
	vb, err := ParseVersion(b)
	if err != nil {
		return 0, err
	}
	for i := range max(len(va.Nums), len(vb.Nums)) {
		x, y := at(va.Nums, i), at(vb.Nums, i)
		if x != y {
			return cmpInt(x, y), nil
		}
	}
	switch {
	case va.Pre == vb.Pre:
		return 0, nil
	case va.Pre == "":
		return 1, nil
	case vb.Pre == "":
		return -1, nil
	}
	return comparePre(va.Pre, vb.Pre), nil
}

func at(n []int, i int) int {
	if i < len(n) {
		return n[i]
	}
	return 0
}

func cmpInt(a, b int) int {
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

// comparePre compares dot-separated pre-release identifiers as semver
// does: numbers numerically and below words, words by bytes.
func comparePre(a, b string) int {
	fa, fb := strings.Split(a, "."), strings.Split(b, ".")
	for i := range min(len(fa), len(fb)) {
		na, ea := strconv.Atoi(fa[i])
		nb, eb := strconv.Atoi(fb[i])
		switch {
		case ea == nil && eb == nil:
			if c := cmpInt(na, nb); c != 0 {
				return c
			}
		case ea == nil:
			return -1
		case eb == nil:
			return 1
		default:
			if c := strings.Compare(fa[i], fb[i]); c != 0 {
				return c
			}
		}
	}
	return cmpInt(len(fa), len(fb))
}

// ErrSignature is returned when a bundle's signature does not verify
// with any trusted key (bad signature or unknown key).
var ErrSignature = errors.New("signature does not verify")

// IndexName is the file of a channel directory that lists its bundles:
// the device polls CHANNEL_URL/index.json.
const IndexName = "index.json"

// Index is a channel's index.json: the newest bundle per board and compat.
type Index struct {
	Bundles []IndexEntry `json:"bundles"`
}

// IndexEntry is one bundle of an Index.
type IndexEntry struct {
	Image   string `json:"image"`
	Version string `json:"version"`
	Board   string `json:"board"`
	Compat  string `json:"compat"`
	// File is the bundle's path relative to the channel URL.
	File string `json:"file"`
	Size int64  `json:"size"`
	// ManifestSHA256 identifies the bundle (also its HTTP ETag).
	ManifestSHA256 string `json:"manifest_sha256"`
}

// Find returns the entry for board and compat.
func (ix Index) Find(board, compat string) (IndexEntry, bool) {
	for _, e := range ix.Bundles {
		if e.Board == board && e.Compat == compat {
			return e, true
		}
	}
	return IndexEntry{}, false
}
