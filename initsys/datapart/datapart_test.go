package datapart

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/basaltos/basalt/internal/testutil"
	"github.com/google/go-cmp/cmp"
)

const MiB = 1 << 20

// makeDisk partitions a size-byte file with sgdisk like the builder's layout.
func makeDisk(t *testing.T, size int64) string {
	t.Helper()
	testutil.NeedTool(t, "sgdisk")
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sgdisk", "-o",
		"-n", "1:2048:+4M", "-c", "1:basalt-boot",
		"-n", "2:0:+4M", "-c", "2:basalt-root-a",
		"-n", "3:0:+4M", "-c", "3:basalt-root-b",
		"-n", "4:0:0", "-c", "4:basalt-data", p).CombinedOutput()
	if err != nil {
		t.Fatalf("sgdisk: %v\n%s", err, out)
	}
	return p
}

func sgdiskVerify(t *testing.T, p string) {
	t.Helper()
	out, err := exec.Command("sgdisk", "-v", p).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v %s: %v\n%s", p, err, out)
	}
}

// faultyFile fails every WriteAt after budget writes.
type faultyFile struct {
	*os.File
	budget int
}

var errCut = errors.New("power cut")

func (f *faultyFile) WriteAt(b []byte, off int64) (int, error) {
	if f.budget == 0 {
		return 0, errCut
	}
	f.budget--
	return f.File.WriteAt(b, off)
}

func growFile(t *testing.T, p string, budget int) (bool, Partition, error) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	var w interface {
		ReadAt([]byte, int64) (int, error)
		WriteAt([]byte, int64) (int, error)
	} = f
	if budget >= 0 {
		w = &faultyFile{f, budget}
	}
	return GrowTable(w, f.Sync, fi.Size(), 512, "basalt-data")
}

func TestGrowTable(t *testing.T) {
	p := makeDisk(t, 32*MiB)
	if err := os.Truncate(p, 64*MiB); err != nil {
		t.Fatal(err)
	}
	did, part, err := growFile(t, p, -1)
	if err != nil || !did {
		t.Fatalf("GrowTable = %v, %v", did, err)
	}
	wantLast := uint64(64*MiB/512 - 34)
	if part.LastLBA != wantLast || part.Index != 4 {
		t.Errorf("partition %+v, want index 4 last LBA %d", part, wantLast)
	}
	sgdiskVerify(t, p)
	out, _ := exec.Command("sgdisk", "-i", "4", p).CombinedOutput()
	if !strings.Contains(string(out), "Last sector: 131038") {
		t.Errorf("sgdisk -i 4:\n%s", out)
	}
	// Names and GUIDs are kept: compare every partition but the size.
	f, _ := os.Open(p)
	tab, err := ReadTable(f, 64*MiB, 512)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, q := range tab.Partitions() {
		names = append(names, q.Name)
	}
	if diff := cmp.Diff([]string{"basalt-boot", "basalt-root-a", "basalt-root-b", "basalt-data"}, names); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	did, _, err = growFile(t, p, -1)
	if err != nil || did {
		t.Errorf("second GrowTable = %v, %v; want nothing to do", did, err)
	}
}

func TestGrowTablePowerCut(t *testing.T) {
	ref := makeDisk(t, 32*MiB)
	if err := os.Truncate(ref, 64*MiB); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := growFile(t, ref, -1); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(ref)
	for budget := 0; budget <= 5; budget++ {
		p := filepath.Join(t.TempDir(), "cut.img")
		if err := os.WriteFile(p, orig, 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, err := growFile(t, p, budget)
		if budget < 5 && !errors.Is(err, errCut) {
			t.Errorf("budget %d: err %v, want the cut", budget, err)
		}
		f, _ := os.Open(p)
		_, rerr := ReadTable(f, 64*MiB, 512)
		f.Close()
		if rerr != nil {
			t.Errorf("budget %d: no readable table after the cut: %v", budget, rerr)
			continue
		}
		if _, _, err := growFile(t, p, -1); err != nil {
			t.Errorf("budget %d: next boot: %v", budget, err)
		}
		got, _ := os.ReadFile(p)
		if !bytes.Equal(got, want) {
			t.Errorf("budget %d: disk after the next boot differs from an uncut growth", budget)
		}
	}
}

func TestPlanErrors(t *testing.T) {
	p := makeDisk(t, 32*MiB)
	f, _ := os.Open(p)
	defer f.Close()
	tests := []struct{ name, label, want string }{
		{"missing label", "basalt-nope", `no GPT partition named "basalt-nope"`},
		{"not last", "basalt-root-a", "partition is not the last on the disk"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tab, err := ReadTable(f, 32*MiB, 512)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = tab.Plan(32*MiB, tc.label)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Plan(%s) = %v, want %q", tc.label, err, tc.want)
			}
		})
	}
}

func TestReadSuperblock(t *testing.T) {
	testutil.NeedTool(t, "mkfs.ext4")
	p := filepath.Join(t.TempDir(), "data.ext4")
	os.WriteFile(p, nil, 0o644)
	os.Truncate(p, 16*MiB)
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-b", "4096", "-L", "basalt-data", p).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	f, _ := os.Open(p)
	defer f.Close()
	sb, err := ReadSuperblock(f)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Superblock{BlockSize: 4096, BlocksCount: 4096, Label: "basalt-data"}, sb); diff != "" {
		t.Errorf("superblock (-want +got):\n%s", diff)
	}
	if _, err := ReadSuperblock(bytes.NewReader(make([]byte, 4096))); err == nil {
		t.Error("zeros read as ext4")
	}
}

func FuzzReadTable(f *testing.F) {
	seed, err := os.ReadFile("testdata/gpt-head.bin")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(make([]byte, 34*512))
	f.Fuzz(func(t *testing.T, b []byte) {
		size := int64(len(b)) / 512 * 512
		tab, err := ReadTable(bytes.NewReader(b), size, 512)
		if err != nil {
			return
		}
		tab.Partitions()
		if _, _, err := tab.Plan(size+64*512, "basalt-data"); err != nil {
			return
		}
	})
}

func TestGrowSizes(t *testing.T) {
	tests := []struct {
		have, want uint64
		steps      int
		out        []uint64
	}{
		{100, 200, 0, []uint64{200}},
		{100, 200, 1, []uint64{200}},
		{100, 200, 4, []uint64{125, 150, 175, 200}},
		{100, 103, 2, []uint64{101, 103}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.out, growSizes(tt.have, tt.want, tt.steps)); diff != "" {
			t.Errorf("growSizes(%d, %d, %d) (-want +got):\n%s", tt.have, tt.want, tt.steps, diff)
		}
	}
}
