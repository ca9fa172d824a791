package datapart

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/basaltos/basalt/internal/testutil"
)

// TestGrowMBR: on a Pi card's MBR (made by sfdisk), data (partition 4)
// grows to the end of the medium, sfdisk finds the table valid, the other
// entries are untouched, and a second run has nothing to do.
func TestGrowMBR(t *testing.T) {
	sfdisk := testutil.NeedTool(t, "sfdisk")
	p := filepath.Join(t.TempDir(), "card.img")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 32*MiB); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sfdisk, "-q", p)
	cmd.Stdin = strings.NewReader("label: dos\nlabel-id: 0x1c874ae7\nstart=2048, size=8192, type=c, bootable\nsize=8192, type=83\nsize=8192, type=83\nsize=8192, type=83\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	before, _ := exec.Command(sfdisk, "-d", p).Output()
	if err := os.Truncate(p, 64*MiB); err != nil {
		t.Fatal(err)
	}
	did, part, err := growFile(t, p, -1)
	if err != nil || !did {
		t.Fatalf("GrowTable = %v, %v", did, err)
	}
	if part.Index != 4 || part.FirstLBA != 26624 || part.LastLBA != 64*MiB/512-1 {
		t.Errorf("partition %+v", part)
	}
	out, err := exec.Command(sfdisk, "--verify", p).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No errors detected") {
		t.Errorf("sfdisk --verify: %v\n%s", err, out)
	}
	after, _ := exec.Command(sfdisk, "-d", p).Output()
	want := strings.Replace(string(before), "start=       26624, size=        8192, type=83", "start=       26624, size=      104448, type=83", 1)
	if string(after) != want {
		t.Errorf("table after growing:\n%s\nwant:\n%s", after, want)
	}
	if did, _, err := growFile(t, p, -1); err != nil || did {
		t.Errorf("second GrowTable = %v, %v; want nothing to do", did, err)
	}
}
