package disk

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/internal/testutil"
	"github.com/google/go-cmp/cmp"
)

const MiB = 1 << 20

func basaltLayout(seed string, size int64) Layout {
	return Layout{
		Scheme:   GPT,
		Size:     size,
		DiskGUID: DeriveGUID(seed, "disk"),
		Partitions: []Partition{
			{Name: contract.PartBoot, Type: TypeESP, GUID: DeriveGUID(seed, contract.PartBoot), Size: 8 * MiB},
			{Name: contract.PartRootA, Type: RootType("amd64"), GUID: DeriveGUID(seed, contract.PartRootA), Size: 16 * MiB, Attributes: AttrReadOnly},
			{Name: contract.PartRootB, Type: RootType("amd64"), GUID: DeriveGUID(seed, contract.PartRootB), Size: 16 * MiB, Attributes: AttrReadOnly},
			{Name: contract.PartData, Type: TypeLinuxFS, GUID: DeriveGUID(seed, contract.PartData)},
		},
	}
}

// stamp writes the partition name at the start and the end of each partition.
func stamp(p Partition, w io.WriterAt) error {
	if _, err := w.WriteAt([]byte(p.Name), 0); err != nil {
		return err
	}
	_, err := w.WriteAt([]byte(p.Name), p.Size-int64(len(p.Name)))
	return err
}

func sha(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

func TestWriteGPT(t *testing.T) {
	sgdisk := testutil.NeedTool(t, "sgdisk")
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	l := basaltLayout("spec-1", 1024*MiB)
	if err := Write(img, l, stamp); err != nil {
		t.Fatal(err)
	}

	out, err := exec.Command(sgdisk, "-v", img).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Fatalf("sgdisk -v: %v\n%s", err, out)
	}

	// sgdisk -p: number, start, end, name per partition.
	out, err = exec.Command(sgdisk, "-p", img).CombinedOutput()
	if err != nil {
		t.Fatalf("sgdisk -p: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Disk identifier (GUID): "+l.DiskGUID) {
		t.Errorf("sgdisk -p does not show disk GUID %s:\n%s", l.DiskGUID, out)
	}
	row := regexp.MustCompile(`(?m)^\s+(\d+)\s+(\d+)\s+(\d+)\s+.*\s(\S+)$`)
	var got []string
	for _, m := range row.FindAllStringSubmatch(string(out), -1) {
		got = append(got, strings.Join(m[1:], " "))
	}
	want := []string{
		"1 2048 18431 basalt-boot",
		"2 18432 51199 basalt-root-a",
		"3 51200 83967 basalt-root-b",
		"4 83968 2097118 basalt-data",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("sgdisk -p partitions (-want +got):\n%s\n%s", d, out)
	}
	for i, p := range l.Partitions {
		out, err := exec.Command(sgdisk, "-i", fmt.Sprint(i+1), img).CombinedOutput()
		if err != nil {
			t.Fatalf("sgdisk -i: %v\n%s", err, out)
		}
		for _, s := range []string{"Partition unique GUID: " + p.GUID, p.Type} {
			if !strings.Contains(string(out), s) {
				t.Errorf("sgdisk -i %d: missing %q:\n%s", i+1, s, out)
			}
		}
	}
	if out, _ := exec.Command(sgdisk, "-A", "2:get:60", img).CombinedOutput(); !strings.Contains(string(out), "2:60:1") {
		t.Errorf("attribute 60 of partition 2 not set: %s", out)
	}

	// Content landed in each partition's window.
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	at := func(off int64, n int) string {
		b := make([]byte, n)
		if _, err := f.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	resolved, err := l.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range resolved.Partitions {
		if got := at(p.Start, len(p.Name)); got != p.Name {
			t.Errorf("%s: first bytes %q", p.Name, got)
		}
		if got := at(p.Start+p.Size-int64(len(p.Name)), len(p.Name)); got != p.Name {
			t.Errorf("%s: last bytes %q", p.Name, got)
		}
	}

	// Read returns what was written.
	back, err := Read(img)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(resolved, back); d != "" {
		t.Errorf("Read (-want +got):\n%s", d)
	}

	// Sparse: only the tables and the stamps occupy blocks.
	var st syscall.Stat_t
	if err := syscall.Stat(img, &st); err != nil {
		t.Fatal(err)
	}
	if used := st.Blocks * 512; used > 1*MiB {
		t.Errorf("image of %d bytes uses %d bytes on disk; want it sparse (< 1 MiB)", st.Size, used)
	}
}

func TestReproducible(t *testing.T) {
	dir := t.TempDir()
	var sums []string
	for i, seed := range []string{"spec-1", "spec-1", "spec-2"} {
		img := filepath.Join(dir, fmt.Sprintf("%d.img", i))
		if err := Write(img, basaltLayout(seed, 64*MiB), stamp); err != nil {
			t.Fatal(err)
		}
		sums = append(sums, sha(t, img))
	}
	if sums[0] != sums[1] {
		t.Errorf("same inputs, different images: %s %s", sums[0], sums[1])
	}
	if sums[0] == sums[2] {
		t.Errorf("different seeds, same image %s", sums[0])
	}
}

func TestOverflowErrors(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	err := Write(img, basaltLayout("s", 64*MiB), func(p Partition, w io.WriterAt) error {
		if p.Name == contract.PartRootA {
			_, err := w.WriteAt([]byte("xx"), p.Size-1)
			return err
		}
		return nil
	})
	if !errors.Is(err, ErrOutOfBounds) || !strings.Contains(err.Error(), contract.PartRootA) {
		t.Fatalf("got %v, want ErrOutOfBounds naming %s", err, contract.PartRootA)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Errorf("files left behind after a failed write: %v", ents)
	}
}

func TestMBR(t *testing.T) {
	sgdisk := testutil.NeedTool(t, "sgdisk")
	img := filepath.Join(t.TempDir(), "rpi.img")
	l := Layout{Scheme: MBR, DiskID: 0xb5a17001, Partitions: []Partition{
		{Name: "boot", MBRType: MBRTypeFAT32LBA, Bootable: true, Size: 8 * MiB},
		{Name: "root-a", MBRType: MBRTypeLinux, Size: 4 * MiB},
		{Name: "root-b", MBRType: MBRTypeLinux, Size: 4 * MiB},
		{Name: "data", MBRType: MBRTypeLinux, Size: 2 * MiB},
	}}
	if err := Write(img, l, stamp); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sgdisk, "-p", img).CombinedOutput()
	if err != nil {
		t.Fatalf("sgdisk -p: %v\n%s", err, out)
	}
	row := regexp.MustCompile(`(?m)^\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+ \S+\s+([0-9A-F]{4})\s`)
	var got []string
	for _, m := range row.FindAllStringSubmatch(string(out), -1) {
		got = append(got, strings.Join(m[1:], " "))
	}
	want := []string{"1 2048 18431 0700", "2 18432 26623 8300", "3 26624 34815 8300", "4 34816 38911 8300"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("sgdisk -p on MBR (-want +got):\n%s\n%s", d, out)
	}
	back, err := Read(img)
	if err != nil {
		t.Fatal(err)
	}
	if back.DiskID != l.DiskID || len(back.Partitions) != 4 || back.Partitions[0].MBRType != MBRTypeFAT32LBA || !back.Partitions[0].Bootable || back.Partitions[3].Start != 17*MiB {
		t.Errorf("Read: %+v", back)
	}
}

func TestResolveErrors(t *testing.T) {
	ok := basaltLayout("s", 64*MiB)
	tests := []struct {
		name string
		edit func(l *Layout)
		want string
	}{
		{"no disk GUID", func(l *Layout) { l.DiskGUID = "" }, "disk GUID: empty"},
		{"bad type", func(l *Layout) { l.Partitions[0].Type = "esp" }, "partition 1 (basalt-boot): type"},
		{"no part GUID", func(l *Layout) { l.Partitions[1].GUID = "" }, "partition 2 (basalt-root-a): GUID: empty"},
		{"unaligned", func(l *Layout) { l.Partitions[1].Start = 9*MiB + 512 }, "not a MiB boundary"},
		{"odd size", func(l *Layout) { l.Partitions[0].Size = 1000 }, "not a positive multiple of 512"},
		{"fill not last", func(l *Layout) { l.Partitions[0].Size = 0 }, "size 0 is only allowed on the last"},
		{"too small", func(l *Layout) { l.Size = 40 * MiB }, "no room left"},
		{"long name", func(l *Layout) { l.Partitions[0].Name = strings.Repeat("x", 37) }, "longer than 36"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := ok
			l.Partitions = append([]Partition(nil), ok.Partitions...)
			tc.edit(&l)
			_, err := l.Resolve()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestDeriveGUID(t *testing.T) {
	a, b := DeriveGUID("seed", "disk"), DeriveGUID("seed", "root")
	if a == b || a != DeriveGUID("seed", "disk") {
		t.Errorf("DeriveGUID not a function of its inputs: %s %s", a, b)
	}
	if !regexp.MustCompile(`^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$`).MatchString(a) {
		t.Errorf("DeriveGUID = %s, not an upper-case RFC 4122 v4 GUID", a)
	}
}

func TestWindowRead(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "w")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write([]byte("0123456789"))
	w := NewWindow(f, 2, 4, "p")
	buf := make([]byte, 8)
	n, err := w.ReadAt(buf, 1)
	if n != 3 || err != io.EOF || !bytes.Equal(buf[:n], []byte("345")) {
		t.Errorf("ReadAt = %d %v %q", n, err, buf[:n])
	}
}

// TestMinSize: MinSize is what Resolve gives a layout without a disk size.
func TestMinSize(t *testing.T) {
	sizes := []int64{256 * MiB, 100*MiB + 512, 100 * MiB, 64 * MiB}
	for _, sc := range []Scheme{GPT, MBR} {
		l := Layout{Scheme: sc, DiskGUID: DeriveGUID("t", "disk")}
		for i, n := range sizes {
			l.Partitions = append(l.Partitions, Partition{Name: fmt.Sprint(i), Type: TypeLinuxFS, GUID: DeriveGUID("t", fmt.Sprint(i)), MBRType: MBRTypeLinux, Size: n})
		}
		r, err := l.Resolve()
		if err != nil {
			t.Fatal(err)
		}
		if got := MinSize(sc, sizes...); got != r.Size {
			t.Errorf("%s: MinSize %d, Resolve %d", sc, got, r.Size)
		}
		l.Size = r.Size - Align
		if _, err := l.Resolve(); err == nil {
			t.Errorf("%s: a disk 1 MiB under MinSize resolved", sc)
		}
	}
	if MinSize(GPT, 1*MiB) != 3*MiB || MinSize(MBR, 1*MiB) != 2*MiB {
		t.Errorf("one 1 MiB partition: GPT %d, MBR %d", MinSize(GPT, MiB), MinSize(MBR, MiB))
	}
}
