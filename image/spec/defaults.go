package spec

// Defaults, in one place. ApplyDefaults fills every unset field that has one;
// the JSON Schema reads its "default" values from here too.
const (
	DefaultSuite    = "trixie"
	DefaultBootSize = Size(256 << 20)
	DefaultDataSize = Size(64 << 20)
	// RootSlotAlign is what an automatic root slot size is rounded up to.
	RootSlotAlign = Size(64 << 20)
	// DefaultVerity: every root slot is verified unless the spec says off.
	DefaultVerity = VerityOn
)

// The values of the spec's configTrust key.
const (
	ConfigTrustAny    = "any"
	ConfigTrustSigned = "signed"
)

// The values of the spec's verity key.
const (
	VerityOn  = "on"
	VerityOff = "off"
)

// ApplyDefaults fills s's unset fields with their defaults.
func ApplyDefaults(s *Spec) {
	if s.Debian.Suite == "" {
		s.Debian.Suite = DefaultSuite
	}
	if s.Debian.Components == nil {
		s.Debian.Components = []string{"main", "non-free-firmware"}
	}
	if s.Disk.Boot == 0 {
		s.Disk.Boot = DefaultBootSize
	}
	if s.Disk.Data == 0 {
		s.Disk.Data = DefaultDataSize
	}
	if s.ConfigTrust == "" {
		s.ConfigTrust = ConfigTrustAny
	}
	if s.Verity == "" {
		s.Verity = DefaultVerity
	}
}

// AutoRootSlot returns the default root slot size for content bytes of
// squashfs: twice the content, rounded up to RootSlotAlign.
func AutoRootSlot(content int64) Size {
	n := 2 * content
	return Size((n + int64(RootSlotAlign) - 1) / int64(RootSlotAlign) * int64(RootSlotAlign))
}
