package uboot

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/basaltos/basalt/internal/testutil"
	"github.com/google/go-cmp/cmp"
)

var cases = []struct {
	name, script string
	epoch        int64
}{
	{"basalt boot", "echo hello\nsetenv bootargs console=ttyAMA0\n", 1700000000},
	{"x", "b", 0},
	{"exactly-thirty-two-bytes-long-nm", "echo 32\n", 1},
	{"a name longer than thirty-two bytes is cut", "load mmc 0:1 ${kernel_addr_r} a/vmlinuz\nbootz\n", 4102444800 - 1},
	{"", "odd length script..", 1234567890},
}

// TestMatchesMkimage checks byte equality with mkimage for the same inputs
// and that dumpimage accepts our output.
func TestMatchesMkimage(t *testing.T) {
	mkimage := testutil.NeedTool(t, "mkimage")
	dumpimage := testutil.NeedTool(t, "dumpimage")
	for i, c := range cases {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			dir := t.TempDir()
			in, want := filepath.Join(dir, "s.txt"), filepath.Join(dir, "want.scr")
			if err := os.WriteFile(in, []byte(c.script), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(mkimage, "-A", "arm", "-O", "linux", "-T", "script", "-C", "none", "-n", c.name, "-d", in, want)
			cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(c.epoch, 10))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("mkimage: %v\n%s", err, out)
			}
			wantB, err := os.ReadFile(want)
			if err != nil {
				t.Fatal(err)
			}
			got := Script(c.name, []byte(c.script), c.epoch)
			if !bytes.Equal(got, wantB) {
				t.Errorf("Script differs from mkimage:\nwant % x\ngot  % x", wantB, got)
			}
			ours := filepath.Join(dir, "ours.scr")
			if err := os.WriteFile(ours, got, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(dumpimage, "-l", ours).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "ARM Linux Script") {
				t.Errorf("dumpimage -l: %v\n%s", err, out)
			}
		})
	}
}

func TestParseScript(t *testing.T) {
	for i, c := range cases {
		name, script, err := ParseScript(Script(c.name, []byte(c.script), c.epoch))
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		wantName := c.name
		if len(wantName) > 32 {
			wantName = wantName[:32]
		}
		if diff := cmp.Diff([]string{wantName, c.script}, []string{name, string(script)}); diff != "" {
			t.Errorf("%d: round trip (-want +got):\n%s", i, diff)
		}
	}
}

func TestParseScriptErrors(t *testing.T) {
	good := Script("n", []byte("echo\n"), 5)
	corrupt := func(off int, v byte) []byte {
		b := bytes.Clone(good)
		b[off] ^= v
		return b
	}
	for _, c := range []struct {
		name string
		in   []byte
		want string
	}{
		{"short", good[:10], "shorter than"},
		{"magic", corrupt(0, 1), "bad magic"},
		{"header crc", corrupt(40, 1), "header CRC"},
		{"data crc", corrupt(70, 1), "data CRC"},
		{"truncated", good[:len(good)-1], "data size"},
	} {
		_, _, err := ParseScript(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want error containing %q", c.name, err, c.want)
		}
	}
}

func FuzzParseScript(f *testing.F) {
	for _, c := range cases {
		f.Add(Script(c.name, []byte(c.script), c.epoch))
	}
	f.Add([]byte{})
	f.Add(make([]byte, 72))
	f.Fuzz(func(t *testing.T, b []byte) {
		name, script, err := ParseScript(b)
		if err != nil {
			return
		}
		if len(name) > 32 || len(script) > len(b) {
			t.Fatalf("name %q or script of %d bytes out of a %d-byte input", name, len(script), len(b))
		}
	})
}
