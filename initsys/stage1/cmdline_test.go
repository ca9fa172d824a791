package stage1

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		in      string
		want    Cmdline
		wantErr string
	}{
		{"console=ttyS0 quiet\n", Cmdline{Slot: "a"}, ""},
		{"BOOT_IMAGE=/a/vmlinuz console=ttyS0 basalt.slot=b", Cmdline{Slot: "b"}, ""},
		{"basalt.slot=b basalt.slot=a", Cmdline{Slot: "a"}, ""},
		{"basalt.debug=1 basalt.slot=a", Cmdline{Slot: "a", Debug: true}, ""},
		{"basalt.debug", Cmdline{Slot: "a", Debug: true}, ""},
		{"basalt.debug=0", Cmdline{Slot: "a"}, ""},
		{"basalt.debug=yes basalt.debug=no", Cmdline{Slot: "a"}, ""},
		{`dyndbg="file foo.c +p" basalt.slot=b`, Cmdline{Slot: "b"}, ""},
		{`x="basalt.slot=b"`, Cmdline{Slot: "a"}, ""},
		{"basalt.slotx=b xbasalt.slot=b", Cmdline{Slot: "a"}, ""},
		{"basalt.slot=c basalt.debug=1", Cmdline{Slot: "a", Debug: true}, `basalt.slot="c": want a or b`},
		{"basalt.slot=", Cmdline{Slot: "a"}, ""},
		{"", Cmdline{Slot: "a"}, ""},
		{"basalt.debug.grow_steps=4", Cmdline{Slot: "a", GrowSteps: 4}, ""},
		{"basalt.debug.grow_steps=x", Cmdline{Slot: "a"}, ""},
		{"console=ttyS1 basalt.debug.no_watchdog", Cmdline{Slot: "a", NoWatchdog: true}, ""},
		{"basalt.slot=b basalt.verity=" + strings.Repeat("ab", 32) + " basalt.verity.blocks=147", Cmdline{Slot: "b", VerityRoot: bytes.Repeat([]byte{0xab}, 32), VerityBlocks: 147}, ""},
		{"basalt.verity=abc basalt.verity.blocks=147", Cmdline{Slot: "a"}, "want 64 hex digits"},
		{"basalt.verity=" + strings.Repeat("ab", 32), Cmdline{Slot: "a"}, "basalt.verity.blocks=\"\": want the number"},
		{"basalt.verity.blocks=1", Cmdline{Slot: "a"}, "want 64 hex digits"},
	}
	for _, tt := range tests {
		got, err := ParseCmdline(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseCmdline(%q) err = %v, want %q", tt.in, err, tt.wantErr)
			}
		} else if err != nil {
			t.Errorf("ParseCmdline(%q): %v", tt.in, err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseCmdline(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func FuzzParseCmdline(f *testing.F) {
	f.Add("console=ttyS0 basalt.slot=b basalt.debug=1")
	f.Add(`a="b c basalt.slot=x`)
	f.Add("basalt.verity=" + strings.Repeat("ab", 32) + " basalt.verity.blocks=147")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCmdline(s)
		if !c.Slot.Valid() {
			t.Fatalf("ParseCmdline(%q) slot %q invalid", s, c.Slot)
		}
		// A verity root that parses is whole: hash and block count.
		if err == nil && (c.VerityRoot == nil) != (c.VerityBlocks == 0) {
			t.Fatalf("ParseCmdline(%q): half a verity root %+v", s, c)
		}
	})
}
