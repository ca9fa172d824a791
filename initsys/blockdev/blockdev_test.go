package blockdev

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseUevent(t *testing.T) {
	tests := []struct {
		in   string
		want Uevent
	}{
		{"MAJOR=254\nMINOR=2\nDEVNAME=vda2\nDEVTYPE=partition\nDISKSEQ=9\nPARTN=2\nPARTNAME=basalt-root-a\n",
			Uevent{"MAJOR": "254", "MINOR": "2", "DEVNAME": "vda2", "DEVTYPE": "partition", "DISKSEQ": "9", "PARTN": "2", "PARTNAME": "basalt-root-a"}},
		{"MAJOR=254\nDEVNAME=vda\nDEVTYPE=disk\n", Uevent{"MAJOR": "254", "DEVNAME": "vda", "DEVTYPE": "disk"}},
		{"PARTNAME=a=b\ngarbage\n=x\n", Uevent{"PARTNAME": "a=b"}},
		{"", Uevent{}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, ParseUevent([]byte(tt.in))); diff != "" {
			t.Errorf("ParseUevent(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

// fakeSys writes a /sys tree: name -> uevent content, each device under
// devices/<disk>/ (the name without its trailing digits) with its
// class/block symlink, as the kernel lays them out.
func fakeSys(t *testing.T, root string, devs map[string]string) {
	t.Helper()
	for name, ue := range devs {
		dir := filepath.Join(root, "devices", strings.TrimRight(name, "0123456789"), name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "uevent"), []byte(ue), 0o644); err != nil {
			t.Fatal(err)
		}
		class := filepath.Join(root, "class", "block")
		os.MkdirAll(class, 0o755)
		if err := os.Symlink(dir, filepath.Join(class, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func part(name, label string) string {
	return "DEVNAME=" + name + "\nDEVTYPE=partition\nPARTN=" + name[len(name)-1:] + "\nPARTNAME=" + label + "\n"
}

func TestFindAndWait(t *testing.T) {
	tests := []struct {
		name    string
		devs    map[string]string
		labels  []string
		want    map[string]Dev
		wantErr string
	}{
		{name: "found", devs: map[string]string{
			"vda": "DEVNAME=vda\nDEVTYPE=disk\n", "vda1": part("vda1", "basalt-boot"),
			"vda2": part("vda2", "basalt-root-a"), "vda3": part("vda3", "basalt-root-b"), "sr0": "DEVNAME=sr0\n"},
			labels: []string{"basalt-root-a", "basalt-boot"},
			want: map[string]Dev{"basalt-root-a": {"vda2", "basalt-root-a", 2, "vda"},
				"basalt-boot": {"vda1", "basalt-boot", 1, "vda"}}},
		{name: "missing", devs: map[string]string{"vda": "DEVNAME=vda\n", "vda1": part("vda1", "EFI")},
			labels: []string{"basalt-root-a"}, wantErr: "partitions basalt-root-a not found (context deadline exceeded); block devices: vda vda1=EFI"},
		{name: "no devices", devs: nil, labels: []string{"basalt-root-a"},
			wantErr: "block devices: none (disk driver not loaded?)"},
		{name: "ambiguous", devs: map[string]string{"vda2": part("vda2", "basalt-root-a"), "vdb2": part("vdb2", "basalt-root-a")},
			labels: []string{"basalt-root-a"}, wantErr: `partition label "basalt-root-a" is on both vda2 and vdb2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			fakeSys(t, root, tt.devs)
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			got, err := Wait(ctx, root, tt.labels...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestWaitAppears: a device that shows up while waiting is found.
func TestWaitAppears(t *testing.T) {
	root := t.TempDir()
	ready := make(chan struct{})
	go func() {
		fakeSys(t, root, map[string]string{"vda2": part("vda2", "basalt-root-a")})
		close(ready)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got, err := Wait(ctx, root, "basalt-root-a")
	<-ready
	if err != nil {
		t.Fatal(err)
	}
	if p := got["basalt-root-a"].Path("/dev"); p != "/dev/vda2" {
		t.Errorf("path = %s, want /dev/vda2", p)
	}
}

func FuzzParseUevent(f *testing.F) {
	f.Add([]byte("DEVNAME=vda2\nPARTNAME=basalt-root-a\n"))
	f.Add([]byte("=\n==\nA"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for k := range ParseUevent(data) {
			if k == "" || strings.ContainsAny(k, "=\n") {
				t.Fatalf("bad key %q", k)
			}
		}
	})
}

// fatBootSector is the first sector of a FAT32 filesystem labelled label.
func fatBootSector(label string) []byte {
	b := make([]byte, 512)
	copy(b[71:82], label+"           ")
	copy(b[82:], "FAT32   ")
	b[510], b[511] = 0x55, 0xaa
	return b
}

// TestMBRByPosition: an MBR disk (no PARTNAME) whose partition 1 is the FAT
// labelled BASALT has its partitions named by position; another MBR disk
// is left alone.
func TestMBRByPosition(t *testing.T) {
	root := t.TempDir()
	sys, dev := filepath.Join(root, "sys"), filepath.Join(root, "dev")
	mbr := func(name string) string {
		return "DEVNAME=" + name + "\nDEVTYPE=partition\nPARTN=" + name[len(name)-1:] + "\n"
	}
	fakeSys(t, sys, map[string]string{"sda": "DEVNAME=sda\nDEVTYPE=disk\n", "sda1": mbr("sda1"), "sda2": mbr("sda2"), "sda3": mbr("sda3"), "sda4": mbr("sda4"),
		"sdb1": mbr("sdb1"), "sdb2": mbr("sdb2")})
	os.MkdirAll(dev, 0o755)
	os.WriteFile(filepath.Join(dev, "sda1"), fatBootSector("BASALT"), 0o644)
	os.WriteFile(filepath.Join(dev, "sdb1"), fatBootSector("CAMERA"), 0o644)
	devs, err := List(sys)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range devs {
		got[d.Name] = d.PartName
	}
	want := map[string]string{"sda": "", "sda1": "basalt-boot", "sda2": "basalt-root-a", "sda3": "basalt-root-b", "sda4": "basalt-data", "sdb1": "", "sdb2": ""}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	if l := FATLabel(filepath.Join(dev, "sdb1")); l != "CAMERA" {
		t.Errorf("FATLabel = %q", l)
	}
}
