package debian

import (
	"os/exec"
	"testing"

	"github.com/basaltos/basalt/internal/testutil"
)

// versionCases: a < b by dpkg --compare-versions (checked against dpkg in
// TestCompareVersionsDpkg).
var versionCases = []struct{ a, b string }{
	{"1.0", "1.1"},
	{"1.0~rc1", "1.0"},
	{"1.0~~", "1.0~"},
	{"1.0", "1.0-1"},
	{"1.0-1", "1.0-2"},
	{"1.0-1", "1.0-1+deb12u1"},
	{"1.0-1+deb12u1", "1.0-1+deb12u2"},
	{"2.0", "1:0.1"},
	{"1:1.0", "2:0.9"},
	{"1.9", "1.10"},
	{"1.0a", "1.0b"},
	{"1.0", "1.0a"},
	{"1.0a", "1.0+"},
	{"1.0", "1.0.1"},
	{"6.1.158-1", "6.1.192-2"},
	{"6.1.192-2", "6.1.192-2+b1"},
	{"252.33-1~deb12u1", "252.39-1~deb12u2"},
	{"2023.01+dfsg-2", "2023.01+dfsg-2+deb12u1"},
	{"0.9", "0.10"},
	{"1.01", "1.2"},
	{"1.0-0", "1.0-1"},
	{"a", "b"},
	{"1.0~beta", "1.0~rc"},
	{"7.4.052-1~bpo70+1", "7.4.052-1"},
}

func TestCompareVersions(t *testing.T) {
	for _, c := range versionCases {
		if got := CompareVersions(c.a, c.b); got != -1 {
			t.Errorf("CompareVersions(%q, %q) = %d, want -1", c.a, c.b, got)
		}
		if got := CompareVersions(c.b, c.a); got != 1 {
			t.Errorf("CompareVersions(%q, %q) = %d, want 1", c.b, c.a, got)
		}
		if got := CompareVersions(c.a, c.a); got != 0 {
			t.Errorf("CompareVersions(%q, %q) = %d, want 0", c.a, c.a, got)
		}
	}
	for _, eq := range [][2]string{{"1.0", "1.00"}, {"0:1.0", "1.0"}, {"1.0-0", "1.0"}, {"01.0", "1.0"}} {
		if got := CompareVersions(eq[0], eq[1]); got != 0 {
			t.Errorf("CompareVersions(%q, %q) = %d, want 0", eq[0], eq[1], got)
		}
	}
}

// TestCompareVersionsDpkg checks the table itself against dpkg.
func TestCompareVersionsDpkg(t *testing.T) {
	dpkg := testutil.NeedTool(t, "dpkg")
	for _, c := range versionCases {
		if err := exec.Command(dpkg, "--compare-versions", c.a, "lt", c.b).Run(); err != nil {
			t.Errorf("dpkg --compare-versions %s lt %s: %v", c.a, c.b, err)
		}
	}
}
