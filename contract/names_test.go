package contract

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCmdlineFields(t *testing.T) {
	got := CmdlineFields("  a=1\tb=\"x y\"  \"c d\"=2 e \"\"\n")
	if diff := cmp.Diff([]string{"a=1", "b=x y", "c d=2", "e", ""}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"virtio-blk": "virtio_blk", "kernel/drivers/block/virtio_blk.ko.xz": "virtio_blk",
		"dm-verity.ko.zst": "dm_verity", "nls_cp437.ko": "nls_cp437", "a.ko.gz": "a", "b.ko.ko": "b", ".ko": ".ko",
	} {
		if got := ModuleName(in); got != want {
			t.Errorf("ModuleName(%q) = %q, want %q", in, got, want)
		}
	}
	if _, ok := ModuleStem("modules.dep"); ok {
		t.Error("modules.dep has a module suffix")
	}
}
