package cli

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/image/disk"
	"github.com/basaltos/basalt/image/fat"
	"github.com/basaltos/basalt/image/tree"
	"github.com/basaltos/basalt/internal/errclass"
)

// TestFlashSetShow: flash into files with --set (a counter per card) and
// --config; `basalt config show` on each card shows its own drop-in.
func TestFlashSetShow(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "pi.img")
	l := disk.Layout{Scheme: disk.MBR, DiskID: 7, Partitions: []disk.Partition{
		{Name: contract.PartBoot, MBRType: disk.MBRTypeFAT32LBA, Bootable: true, Size: 40 << 20},
	}}
	if err := disk.Write(img, l, func(p disk.Partition, w io.WriterAt) error {
		return fat.Write(w, p.Size, tree.New(0), fat.Options{Label: contract.BootFSLabel, HiddenSectors: uint32(p.Start / disk.SectorSize)})
	}); err != nil {
		t.Fatal(err)
	}
	site := filepath.Join(dir, "50-site.yaml")
	os.WriteFile(site, []byte("apiVersion: basalt.dev/v1alpha1\nkind: DeviceConfig\ntimezone: UTC\n"), 0o644)
	cards := []string{filepath.Join(dir, "card1"), filepath.Join(dir, "card2")}
	for _, c := range cards {
		os.WriteFile(c, nil, 0o644)
	}
	code, stdout, stderr := runCLI(append([]string{"flash", img}, append(cards, "--yes", "--config", site, "--set", "hostname=store-{n}", "--first", "41")...)...)
	if code != 0 || !strings.Contains(stdout, "verified sha256") || !strings.Contains(stdout, "added basalt/config.d/90-flash.yaml") {
		t.Fatalf("flash: %d\n%s\n%s", code, stdout, stderr)
	}
	for i, c := range cards {
		code, stdout, stderr := runCLI("config", "show", c)
		want := []string{"hostname: store-4" + string(rune('1'+i)) + " # basalt/config.d/90-flash.yaml:3", "timezone: UTC # basalt/config.d/50-site.yaml:3"}
		for _, w := range want {
			if code != 0 || !strings.Contains(stdout, w) {
				t.Errorf("config show %s: %d, want %q in\n%s%s", c, code, w, stdout, stderr)
			}
		}
	}
	// A bad --set key is refused before anything is written.
	if code, _, stderr := runCLI("flash", img, cards[0], "--yes", "--set", "hostnme=x"); code != errclass.ExitInvalid || !strings.Contains(stderr, "hostnme") {
		t.Errorf("bad key: %d %s", code, stderr)
	}
	if code, _, stderr := runCLI("flash", img, "/dev/null", "--yes"); code != errclass.ExitInvalid || !strings.Contains(stderr, "not a block device or a regular file") {
		t.Errorf("/dev/null: %d %s", code, stderr)
	}
	// Without --yes and without a yes on stdin nothing is written.
	if code, _, stderr := runCLI("flash", img, cards[0]); code == 0 || !strings.Contains(stderr, "not confirmed: nothing written") {
		t.Errorf("unconfirmed: %d %s", code, stderr)
	}
}
