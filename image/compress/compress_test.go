package compress

import "testing"

func TestParse(t *testing.T) {
	for _, c := range []Compression{Zstd, Gzip, XZ, None} {
		if got, err := Parse(c.String()); err != nil || got != c {
			t.Errorf("Parse(%q) = %v, %v", c, got, err)
		}
	}
	if _, err := Parse("xz", Zstd, Gzip, None); err == nil || err.Error() != `compression "xz": want zstd, gzip, none` {
		t.Errorf("xz where it is not allowed: %v", err)
	}
	if Compression(9).String() != "compression(9)" {
		t.Error(Compression(9).String())
	}
}
