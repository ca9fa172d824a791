package build

import (
	"github.com/basaltos/basalt/internal/testutil"
	"path/filepath"
	"slices"
	"testing"

	"github.com/basaltos/basalt/image/kmod"
)

// ext4 on armmp is a module with "softdep: pre: crypto-crc32c", an alias: stage 1
// must load crc32c_generic before ext4, or mounting data fails ("Cannot
// load crc32c driver").
func TestBootModulesSoftdepAlias(t *testing.T) {
	dir, _ := filepath.Abs("../../.cache/testkernel/armhf/lib/modules")
	testutil.NeedFile(t, dir, "run `bash scripts/testkernel.sh armhf .cache/testkernel/armhf`")
	rel, err := releaseDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := kmod.Scan(rel)
	if err != nil {
		t.Fatal(err)
	}
	_, load, err := bootModules(ix, []string{"virtio_blk", "ext4"})
	if err != nil {
		t.Fatal(err)
	}
	crc, ext4 := slices.Index(load, "crc32c_generic"), slices.Index(load, "ext4")
	if crc < 0 || ext4 < 0 || crc > ext4 || slices.Contains(load, "crc32_arm_ce") {
		t.Errorf("load order %v: want crc32c_generic before ext4, no crc32_arm_ce", load)
	}
	for _, dep := range []string{"jbd2", "mbcache", "virtio_blk"} {
		if i := slices.Index(load, dep); i < 0 || (dep != "virtio_blk" && i > ext4) {
			t.Errorf("load order %v: %s missing or after ext4", load, dep)
		}
	}
}
