// Package compress names the compressions basalt's filesystem writers
// offer: one enum for the squashfs root (image/squashfs) and the initramfs
// (image/initramfs), parsed and printed the same way. Each writer says
// which ones it supports.
package compress

import (
	"fmt"
	"strings"
)

// Compression is a codec.
type Compression uint8

// The zero value is the default everywhere: zstd.
const (
	Zstd Compression = iota
	Gzip
	XZ
	// None stores the data uncompressed.
	None
)

var names = [...]string{Zstd: "zstd", Gzip: "gzip", XZ: "xz", None: "none"}

func (c Compression) String() string {
	if int(c) < len(names) {
		return names[c]
	}
	return fmt.Sprintf("compression(%d)", uint8(c))
}

// Parse returns the Compression named s, if it is one of allowed (all when
// allowed is empty); the error lists what is allowed.
func Parse(s string, allowed ...Compression) (Compression, error) {
	if len(allowed) == 0 {
		allowed = []Compression{Zstd, Gzip, XZ, None}
	}
	var want []string
	for _, c := range allowed {
		if c.String() == s {
			return c, nil
		}
		want = append(want, c.String())
	}
	return 0, fmt.Errorf("compression %q: want %s", s, strings.Join(want, ", "))
}
