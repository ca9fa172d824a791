package k3s

import (
	"bytes"
	"strings"
	"testing"

	"github.com/basaltos/basalt/image/k3s/k3stest"
)

// FuzzFindData: the data-archive finder reads whatever binary it is given
// (a local orchestrator.path or BASALT_K3S file): it must never panic, and
// what it finds must lie inside the input.
func FuzzFindData(f *testing.F) {
	bin, _, err := k3stest.Binary([]byte("\x7fELF"), k3stest.DefaultFiles())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(bin)
	f.Add([]byte("\x28\xb5\x2f\xfd\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := FindData(b)
		if err == nil && (d.Offset < 0 || d.Offset+d.Size > int64(len(b))) {
			t.Fatalf("FindData = %+v outside %d bytes", d, len(b))
		}
	})
}

// FuzzParseChecksums: a release's sha256sum file is downloaded text.
func FuzzParseChecksums(f *testing.F) {
	f.Add([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef  k3s\n"), "k3s")
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		if sum, err := ParseChecksums(data, name); err == nil && len(sum) != 64 {
			t.Fatalf("sum %q", sum)
		}
	})
}

// FuzzVersionIn: the version finder reads a local binary's bytes: it must
// never panic, and what it finds must be in the input and end in +k3sN.
func FuzzVersionIn(f *testing.F) {
	f.Add([]byte("gitVersionv1.33.1+k3s1go1.24.2"))
	f.Add([]byte("v+k3s1v1.+k3sv1.2.3-+k3s9"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v := versionIn(b)
		if v != "" && (!bytes.Contains(b, []byte(v)) || !strings.Contains(v, "+k3s") || v[0] != 'v') {
			t.Fatalf("versionIn = %q", v)
		}
	})
}
