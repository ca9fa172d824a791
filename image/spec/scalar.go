package spec

import (
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// scalar is a type written as one YAML scalar and parsed from its text.
type scalar interface {
	parseScalar(s string) error
	// pattern is the JSON Schema pattern of the accepted strings.
	pattern() string
}

// Size is a byte count written with a binary unit: "512MiB", "2GiB",
// "1048576" (bytes). It is a multiple of 1 MiB when it names a partition.
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}}

func (s *Size) parseScalar(v string) error {
	num, mult := v, int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(v, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(v, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return fmt.Errorf("size %q: want a whole number with a unit (allowed: B, KiB, MiB, GiB, TiB), e.g. 256MiB", v)
	}
	*s = Size(n * mult)
	return nil
}

func (*Size) pattern() string { return `^[0-9]+ ?(B|KiB|MiB|GiB|TiB)?$` }

// String writes s with the largest binary unit that divides it.
func (s Size) String() string {
	for _, u := range sizeUnits[:4] {
		if s != 0 && int64(s)%u.mult == 0 && (u.suffix == "TiB" || int64(s)%(u.mult<<10) != 0) {
			return fmt.Sprintf("%d%s", int64(s)/u.mult, u.suffix)
		}
	}
	return fmt.Sprintf("%dB", int64(s))
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Size) UnmarshalYAML(n *yaml.Node) error { return unmarshalScalar(n, s) }

// MarshalYAML implements yaml.Marshaler.
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }

// Mode is a file permission written in octal ("0644", "0o4755"): the
// permission bits plus setuid, setgid and sticky.
type Mode fs.FileMode

func (m *Mode) parseScalar(v string) error {
	t := strings.TrimPrefix(strings.TrimPrefix(v, "0o"), "0O")
	n, err := strconv.ParseUint(t, 8, 32)
	if err != nil || n > 0o7777 {
		return fmt.Errorf("mode %q: want octal permissions up to 07777, e.g. \"0644\"", v)
	}
	fm := fs.FileMode(n & 0o777)
	if n&0o4000 != 0 {
		fm |= fs.ModeSetuid
	}
	if n&0o2000 != 0 {
		fm |= fs.ModeSetgid
	}
	if n&0o1000 != 0 {
		fm |= fs.ModeSticky
	}
	*m = Mode(fm)
	return nil
}

func (*Mode) pattern() string { return `^(0o?)?[0-7]{3,4}$` }

// FileMode returns m as an fs.FileMode.
func (m Mode) FileMode() fs.FileMode { return fs.FileMode(m) }

// UnmarshalYAML implements yaml.Unmarshaler.
func (m *Mode) UnmarshalYAML(n *yaml.Node) error { return unmarshalScalar(n, m) }

func unmarshalScalar(n *yaml.Node, s scalar) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a scalar", n.Line)
	}
	return s.parseScalar(n.Value)
}

// Files is one host file or a list of them: `key: a.pub` or `key: [a.pub, b.pub]`.
type Files []string

// UnmarshalYAML implements yaml.Unmarshaler.
func (f *Files) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*f = Files{n.Value}
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return fmt.Errorf("line %d: want a file name or a list of file names", n.Line)
	}
	*f = l
	return nil
}
