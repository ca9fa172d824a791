package build

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/basaltos/basalt/contract/ab"
	"github.com/basaltos/basalt/image/cache"
	"github.com/basaltos/basalt/image/disk"
	"github.com/basaltos/basalt/image/spec"
	"github.com/basaltos/basalt/internal/testutil"
)

// piSpec loads the Raspberry Pi example (examples/raspberry-pi) with the
// lock `make pi-inputs` wrote, copied into dir: the build runs offline from
// the shared cache.
func piSpec(t *testing.T, dir string) (*spec.Spec, string) {
	t.Helper()
	prepared, _ := filepath.Abs("../../.cache/pi")
	cacheDir, _ := filepath.Abs("../../.cache/basalt")
	testutil.NeedFile(t, filepath.Join(prepared, "basalt.lock"), "make pi-inputs (it fetches the Pi boards' Debian inputs)")
	for _, f := range []string{"basalt.yaml", "basalt.lock"} {
		if err := os.WriteFile(filepath.Join(dir, f), must(os.ReadFile(filepath.Join(prepared, f))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, _, err := spec.Load(filepath.Join(dir, "basalt.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return s, cacheDir
}

// mtype prints a file of a FAT image (mtools).
func mtype(t *testing.T, fat, name string) string {
	t.Helper()
	return run(t, "mtype", "-i", fat, "::/"+name)
}

// TestBuildPiBoards builds rpi3, rpi4, rpi5 and rpi4-tryboot from trixie
// (offline) and checks each with the real tools: the MBR (sfdisk --verify,
// types, active boot partition, the derived disk id), the boot FAT
// (fsck.vfat -n), the firmware and U-Boot files and the A/B files
// (config.txt and boot.scr chaining to U-Boot; config.txt, tryboot.txt and
// cmdline.txt per slot for tryboot); then a second build gives the same bytes.
func TestBuildPiBoards(t *testing.T) {
	sfdisk := testutil.NeedTool(t, "sfdisk")
	testutil.NeedTool(t, "mtype")
	dir := t.TempDir()
	s, cacheDir := piSpec(t, dir)
	// rpi4-tryboot is not in the example: it takes rpi4's Debian inputs
	// (the same packages, U-Boot unused).
	lockPath := filepath.Join(dir, "basalt.lock")
	lock, err := cache.ReadLock(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	lock.Boards["rpi4-tryboot"] = lock.Boards["rpi4"]
	if err := lock.Write(lockPath); err != nil {
		t.Fatal(err)
	}
	s.Boards = append(s.Boards, "rpi4-tryboot")
	o := Options{OutDir: filepath.Join(dir, "out"), CacheDir: cacheDir, Offline: true}
	arts, err := Build(context.Background(), s, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(arts) != 4 {
		t.Fatalf("artifacts %v", arts)
	}
	for _, a := range arts {
		t.Run(a.Board, func(t *testing.T) {
			if out := run(t, sfdisk, "--verify", a.Image); !strings.Contains(out, "No errors detected") {
				t.Errorf("sfdisk --verify: %s", out)
			}
			var dump struct {
				PartitionTable struct {
					Label, ID  string
					Partitions []struct {
						Start, Size int64
						Type        string
						Bootable    bool
					}
				}
			}
			if err := json.Unmarshal([]byte(run(t, sfdisk, "--json", a.Image)), &dump); err != nil {
				t.Fatal(err)
			}
			pt := dump.PartitionTable
			l, err := disk.Read(a.Image)
			if err != nil {
				t.Fatal(err)
			}
			if pt.Label != "dos" || len(pt.Partitions) != 4 || pt.ID != fmt.Sprintf("0x%08x", l.DiskID) || l.DiskID == 0 {
				t.Fatalf("table: %+v (disk id %08x)", pt, l.DiskID)
			}
			for i, want := range []string{"c", "83", "83", "83"} {
				if p := pt.Partitions[i]; p.Type != want || p.Bootable != (i == 0) || p.Start%2048 != 0 {
					t.Errorf("partition %d: %+v, want type %s, active only on 1, MiB-aligned", i+1, p, want)
				}
			}
			fat := extract(t, a.Image, l.Partitions[0])
			run(t, "fsck.vfat", "-n", fat)
			ls := run(t, "mdir", "-/", "-b", "-i", fat, "::/")
			has := func(names ...string) {
				t.Helper()
				for _, n := range names {
					if !strings.Contains(ls, "::/"+n+"\n") {
						t.Errorf("boot FAT lacks %s; it has:\n%s", n, ls)
					}
				}
			}
			uboot := map[string]string{"rpi3": "bcm2837-rpi-3-b.dtb", "rpi4": "bcm2711-rpi-4-b.dtb", "rpi5": "bcm2712-rpi-5-b.dtb"}
			switch a.Board {
			case "rpi3":
				has("bootcode.bin", "start.elf", "fixup.dat")
			case "rpi4", "rpi4-tryboot":
				has("start4.elf", "fixup4.dat")
			}
			if dtb, ok := uboot[a.Board]; ok {
				// The firmware loads U-Boot with the tree at the FAT's root;
				// U-Boot's boot.scr loads the slot's kernel, ${fdtfile} tree
				// and initrd.
				has("u-boot.bin", "boot.scr", "basalt/state.txt", dtb, "a/dtbs/broadcom/"+dtb, "a/vmlinuz", "a/initrd")
				if cfg := mtype(t, fat, "config.txt"); !strings.Contains(cfg, "\nkernel=u-boot.bin\n") || !strings.Contains(cfg, "\narm_64bit=1\n") {
					t.Errorf("config.txt:\n%s", cfg)
				}
				if scr := mtype(t, fat, "boot.scr"); !strings.Contains(scr, "booti ${kernel_addr_r}") || !strings.Contains(scr, "cgroup_enable=memory") {
					t.Errorf("boot.scr:\n%s", scr)
				}
				if st := mtype(t, fat, "basalt/state.txt"); st != string(ab.StateText("a", "", 0)) {
					t.Errorf("basalt/state.txt %q", st)
				}
				if a.Board == "rpi5" {
					// Debian's 6.12 has no Pi 5 SD driver: rpi5's kernel is
					// trixie-backports' split 7.x, all of its packages inputs.
					var m struct {
						Kernel string
						Inputs []struct{ Name, Version string }
					}
					if err := json.Unmarshal(must(os.ReadFile(a.Manifest)), &m); err != nil {
						t.Fatal(err)
					}
					var names []string
					for _, in := range m.Inputs {
						if strings.Contains(in.Version, "~bpo13") {
							names = append(names, strings.SplitN(in.Name, "-7", 2)[0])
						}
					}
					if strings.HasPrefix(m.Kernel, "6.12") || strings.Join(names, " ") != "linux-image linux-base linux-binary linux-modules" {
						t.Errorf("rpi5 kernel %s, backports inputs %v", m.Kernel, names)
					}
				}
				if a.Board == "rpi3" {
					return
				}
				// rpi4 and rpi5 carry the same U-Boot (rpi_arm64), the one
				// the raspi3b boot tests run from the rpi4 image.
				if u4, u5 := mtype(t, fat, "u-boot.bin"), ubootOf(t, arts, "rpi5"); u4 != u5 {
					t.Errorf("%s and rpi5 carry different U-Boot binaries", a.Board)
				}
				return
			}
			has("a/bcm2711-rpi-4-b.dtb", "a/vmlinuz", "a/initrd")
			if cfg, tb := mtype(t, fat, "config.txt"), mtype(t, fat, "tryboot.txt"); cfg != string(ab.PiConfig("a")) || tb != cfg {
				t.Errorf("config.txt:\n%s\ntryboot.txt:\n%s\nwant both booting slot a:\n%s", cfg, tb, ab.PiConfig("a"))
			}
			cmdline := mtype(t, fat, "a/cmdline.txt")
			for _, want := range []string{"basalt.slot=a ", "cgroup_memory=1 cgroup_enable=memory", "panic=10"} {
				if !strings.Contains(cmdline, want) {
					t.Errorf("a/cmdline.txt %q lacks %q", cmdline, want)
				}
			}
		})
	}

	o.OutDir = filepath.Join(dir, "out2")
	arts2, err := Build(context.Background(), s, o)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range arts {
		if arts2[i].SHA256 != a.SHA256 {
			t.Errorf("%s: second build %s, first %s: not reproducible", a.Board, arts2[i].SHA256, a.SHA256)
		}
	}
}

// ubootOf is u-boot.bin of board's image among arts.
func ubootOf(t *testing.T, arts []Artifact, board string) string {
	t.Helper()
	for _, a := range arts {
		if a.Board != board {
			continue
		}
		l, err := disk.Read(a.Image)
		if err != nil {
			t.Fatal(err)
		}
		return mtype(t, extract(t, a.Image, l.Partitions[0]), "u-boot.bin")
	}
	t.Fatalf("no %s image", board)
	return ""
}
