package modules

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/basaltos/basalt/contract"
)

// A real excerpt of the Debian 6.1 cloud-amd64 modules.dep (depmod), with
// the boot closure of virtio_blk, virtio_pci and squashfs.
const depFile = `kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/fs/squashfs/squashfs.ko:
kernel/drivers/md/dm-verity.ko: kernel/drivers/md/dm-bufio.ko kernel/drivers/md/dm-mod.ko
kernel/drivers/md/dm-bufio.ko:
kernel/drivers/md/dm-mod.ko:
kernel/fs/nls/nls_cp437.ko.xz:
`

func TestOrder(t *testing.T) {
	deps, err := ParseDep(strings.NewReader(depFile))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		load    []string
		builtin map[string]bool
		want    []string
		wantErr string
	}{
		{name: "deps first", load: []string{"virtio_pci"}, want: []string{
			"kernel/drivers/virtio/virtio_pci_legacy_dev.ko", "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
			"kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio_pci.ko"}},
		{name: "each once, list order kept", load: []string{"virtio_blk", "virtio_pci", "squashfs", "virtio_blk"}, want: []string{
			"kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/block/virtio_blk.ko",
			"kernel/drivers/virtio/virtio_pci_legacy_dev.ko", "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
			"kernel/drivers/virtio/virtio_pci.ko", "kernel/fs/squashfs/squashfs.ko"}},
		{name: "dash and underscore are one name", load: []string{"dm_verity"}, want: []string{
			"kernel/drivers/md/dm-bufio.ko", "kernel/drivers/md/dm-mod.ko", "kernel/drivers/md/dm-verity.ko"}},
		{name: "compressed", load: []string{"nls_cp437"}, want: []string{"kernel/fs/nls/nls_cp437.ko.xz"}},
		{name: "builtin skipped", load: []string{"ext4", "squashfs"}, builtin: map[string]bool{"ext4": true},
			want: []string{"kernel/fs/squashfs/squashfs.ko"}},
		{name: "unknown", load: []string{"squashfs", "ext4"}, wantErr: "module ext4 is not in modules.dep"},
		{name: "empty", load: nil, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := deps.Order(tt.load, tt.builtin)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var paths []string
			for _, m := range got {
				paths = append(paths, m.Path)
			}
			if diff := cmp.Diff(tt.want, paths); diff != "" {
				t.Errorf("Order(%v) (-want +got):\n%s", tt.load, diff)
			}
		})
	}
}

func TestOrderCycleAndMissingDep(t *testing.T) {
	deps, err := ParseDep(strings.NewReader("a.ko: b.ko\nb.ko: a.ko\nc.ko: d.ko\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := deps.Order([]string{"a"}, nil); err == nil || !strings.Contains(err.Error(), "cycle: a -> b -> a") {
		t.Errorf("cycle: err = %v", err)
	}
	if _, err := deps.Order([]string{"c"}, nil); err == nil || !strings.Contains(err.Error(), "module d (needed by c)") {
		t.Errorf("missing dep: err = %v", err)
	}
}

func TestParseDepErrors(t *testing.T) {
	for _, in := range []string{"no colon here\n", ": a.ko\n"} {
		if _, err := ParseDep(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("ParseDep(%q) err = %v, want line 1 error", in, err)
		}
	}
}

func TestReadList(t *testing.T) {
	got, err := ReadList(strings.NewReader("# boot modules\nvirtio_pci\n\n  virtio_blk  \nsquashfs"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"virtio_pci", "virtio_blk", "squashfs"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func FuzzParseDep(f *testing.F) {
	f.Add(depFile)
	f.Add("a.ko: b.ko\nb.ko: a.ko\n")
	f.Add(":\n\n#x\n")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDep(strings.NewReader(s))
		if err != nil {
			return
		}
		names := make([]string, 0, len(d))
		for n := range d {
			names = append(names, n)
		}
		got, err := d.Order(names, nil)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, m := range got {
			for _, dep := range m.Deps {
				if !seen[dep] {
					t.Fatalf("%s loaded before its dependency %s", m.Path, dep)
				}
			}
			seen[contract.ModuleName(m.Path)] = true
		}
	})
}
