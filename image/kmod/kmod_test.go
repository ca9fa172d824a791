package kmod

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/internal/testutil"
)

// elfModule returns a minimal ELF64 relocatable file whose only section
// besides the string table is .modinfo with the given key=value pairs.
func elfModule(info ...string) []byte {
	modinfo := []byte(strings.Join(info, "\x00") + "\x00")
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shentsize = 64, 64
	off1 := ehsize
	off2 := off1 + len(modinfo)
	shoff := off2 + len(shstr)
	var b bytes.Buffer
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	le := binary.LittleEndian
	w := func(v any) { binary.Write(&b, le, v) }
	w(uint16(1))  // ET_REL
	w(uint16(62)) // x86-64
	w(uint32(1))
	w(uint64(0)) // entry
	w(uint64(0)) // phoff
	w(uint64(shoff))
	w(uint32(0))
	w(uint16(ehsize))
	w(uint16(0)) // phentsize
	w(uint16(0))
	w(uint16(shentsize))
	w(uint16(3)) // shnum
	w(uint16(2)) // shstrndx
	b.Write(modinfo)
	b.Write(shstr)
	sh := func(name, typ uint32, off, size int) {
		w(name)
		w(typ)
		w(uint64(0))
		w(uint64(0))
		w(uint64(off))
		w(uint64(size))
		w(uint32(0))
		w(uint32(0))
		w(uint64(1))
		w(uint64(0))
	}
	sh(0, 0, 0, 0)
	sh(1, 1, off1, len(modinfo)) // PROGBITS
	sh(10, 3, off2, len(shstr))  // STRTAB
	return b.Bytes()
}

// synthTree writes a small modules dir: dm-verity -> dm-bufio -> dm-mod,
// plus reed_solomon; vfat -> fat; a softdep; ext4 built in; compressed files.
func synthTree(t *testing.T) string {
	dir := t.TempDir()
	write := func(rel string, data []byte) {
		p := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	xzb := func(b []byte) []byte {
		var out bytes.Buffer
		w, _ := xz.NewWriter(&out)
		w.Write(b)
		w.Close()
		return out.Bytes()
	}
	zstb := func(b []byte) []byte {
		e, _ := zstd.NewWriter(nil)
		return e.EncodeAll(b, nil)
	}
	write("kernel/drivers/md/dm-mod.ko", elfModule("name=dm_mod", "depends=", "alias=devname:mapper/control"))
	write("kernel/drivers/md/dm-bufio.ko.xz", xzb(elfModule("name=dm_bufio", "depends=dm-mod")))
	write("kernel/lib/reed_solomon/reed_solomon.ko.zst", zstb(elfModule("name=reed_solomon", "depends=")))
	write("kernel/drivers/md/dm-verity.ko", elfModule("license=GPL", "name=dm_verity", "depends=dm-bufio,dm-mod,reed_solomon", "softdep=pre: crc32c post: nothing"))
	write("kernel/fs/fat/fat.ko", elfModule("name=fat", "depends="))
	write("kernel/fs/fat/vfat.ko", elfModule("name=vfat", "depends=fat", "alias=fs-vfat"))
	write("kernel/crypto/crc32c_generic.ko", elfModule("name=crc32c_generic", "alias=crc32c"))
	write("modules.builtin", []byte("kernel/fs/ext4/ext4.ko\nkernel/fs/nls/nls_cp437.ko\n"))
	write("modules.order", []byte("kernel/fs/fat/fat.ko\nkernel/fs/fat/vfat.ko\n"))
	return dir
}

func paths(ms []*Module) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Path)
	}
	return out
}

func TestSynthetic(t *testing.T) {
	ix, err := Scan(synthTree(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		names   []string
		want    []string
		wantErr string
	}{
		{[]string{"vfat"}, []string{"kernel/fs/fat/fat.ko", "kernel/fs/fat/vfat.ko"}, ""},
		{[]string{"dm-verity", "ext4", "nls_cp437"}, []string{
			"kernel/drivers/md/dm-mod.ko", "kernel/drivers/md/dm-bufio.ko.xz",
			"kernel/lib/reed_solomon/reed_solomon.ko.zst", "kernel/drivers/md/dm-verity.ko"}, ""},
		{[]string{"dm_verityy"}, nil, `unknown kernel module "dm_verityy"`},
		{[]string{"vfta"}, nil, "close names: vfat"},
	}
	for _, tt := range tests {
		got, err := ix.Closure(tt.names)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Closure(%v) err = %v, want %q", tt.names, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, paths(got)); diff != "" {
			t.Errorf("Closure(%v) (-want +got)\n%s", tt.names, diff)
		}
	}

	var dep, alias bytes.Buffer
	if err := ix.WriteDep(&dep, ix.Modules()); err != nil {
		t.Fatal(err)
	}
	wantDep := `kernel/fs/fat/fat.ko:
kernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko
kernel/crypto/crc32c_generic.ko:
kernel/drivers/md/dm-bufio.ko.xz: kernel/drivers/md/dm-mod.ko
kernel/drivers/md/dm-mod.ko:
kernel/drivers/md/dm-verity.ko: kernel/drivers/md/dm-bufio.ko.xz kernel/drivers/md/dm-mod.ko kernel/lib/reed_solomon/reed_solomon.ko.zst
kernel/lib/reed_solomon/reed_solomon.ko.zst:
`
	if diff := cmp.Diff(wantDep, dep.String()); diff != "" {
		t.Errorf("modules.dep (-want +got)\n%s", diff)
	}
	sub, _ := ix.Closure([]string{"vfat"})
	ix.WriteAlias(&alias, sub)
	wantAlias := "# Aliases extracted from modules themselves.\nalias fs-vfat vfat\n"
	if diff := cmp.Diff(wantAlias, alias.String()); diff != "" {
		t.Errorf("modules.alias (-want +got)\n%s", diff)
	}
}

func TestScanErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Scan(dir); err == nil || !strings.Contains(err.Error(), "no .ko files below "+dir) {
		t.Errorf("empty dir: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "bad.ko"), []byte("not elf"), 0o644)
	if _, err := Scan(dir); err == nil || !strings.Contains(err.Error(), "bad.ko: not an ELF module") {
		t.Errorf("bad module: %v", err)
	}
}

// FuzzParseModule feeds untrusted bytes to the ELF .modinfo reader.
func FuzzParseModule(f *testing.F) {
	f.Add(elfModule("name=a", "depends=b,c", "softdep=pre: d"))
	f.Add([]byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ParseModule(data)
	})
}

// realKernel returns the modules dir unpacked by scripts/testkernel.sh.
func realKernel(t *testing.T) (root, release, dir string) { return realKernelB(t) }

func realKernelB(t testing.TB) (root, release, dir string) {
	root, _ = filepath.Abs("../../.cache/testkernel/amd64")
	rel, err := os.ReadFile(filepath.Join(root, "release"))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no test kernel: run `bash scripts/testkernel.sh amd64 .cache/testkernel/amd64` (%v)", err)
		}
		t.Skipf("no test kernel (run `bash scripts/testkernel.sh amd64 .cache/testkernel/amd64`): %v", err)
	}
	release = strings.TrimSpace(string(rel))
	return root, release, filepath.Join(root, "lib/modules", release)
}

// depSets parses modules.dep into module path -> sorted dependency paths.
func depSets(t *testing.T, data []byte) map[string][]string {
	m := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			t.Fatalf("bad modules.dep line %q", sc.Text())
		}
		deps := strings.Fields(v)
		sort.Strings(deps)
		m[k] = deps
	}
	return m
}

// TestRealDepmod: our modules.dep for the whole Debian cloud-amd64 tree has
// the same dependency set per module as host depmod's.
func TestRealDepmod(t *testing.T) {
	_, _, dir := realKernel(t)
	ix, err := Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ours bytes.Buffer
	if err := ix.WriteDep(&ours, ix.Modules()); err != nil {
		t.Fatal(err)
	}
	theirs, err := os.ReadFile(filepath.Join(dir, "modules.dep"))
	if err != nil {
		t.Fatal(err)
	}
	want, got := depSets(t, theirs), depSets(t, ours.Bytes())
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("modules.dep dependency sets (-depmod +ours)\n%s", diff)
	}
	t.Logf("%d modules, modules.dep identical as sets per module", len(got))

	var alias bytes.Buffer
	if err := ix.WriteAlias(&alias, ix.Modules()); err != nil {
		t.Fatal(err)
	}
	theirAlias, err := os.ReadFile(filepath.Join(dir, "modules.alias"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sortedLines(theirAlias), sortedLines(alias.Bytes())); diff != "" {
		t.Errorf("modules.alias lines (-depmod +ours)\n%s", diff)
	}
	// Each line must list a module before the modules it needs (modprobe
	// loads the list from the end).
	for _, line := range strings.Split(strings.TrimSpace(ours.String()), "\n") {
		_, v, _ := strings.Cut(line, ":")
		deps := strings.Fields(v)
		for i, d := range deps {
			m, _ := ix.Module(strings.TrimSuffix(filepath.Base(d), ".ko"))
			for _, earlier := range deps[:i] {
				if slices.Contains(m.Depends, contract.ModuleName(earlier)) {
					t.Errorf("%s: %s listed after %s, which it needs", line, d, earlier)
				}
			}
		}
	}
}

func sortedLines(b []byte) []string {
	l := strings.Split(strings.TrimSpace(string(b)), "\n")
	sort.Strings(l)
	return l
}

// TestRealClosure: the closure of the boot modules equals what
// `modprobe --show-depends` lists, in a valid load order.
func TestRealClosure(t *testing.T) {
	root, release, dir := realKernel(t)
	modprobe := testutil.NeedTool(t, "modprobe")
	names := []string{"virtio_blk", "squashfs", "overlay", "vfat", "nls_cp437", "dm-verity"}
	ix, err := Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	mods, err := ix.Closure(names)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(modprobe, append([]string{"--show-depends", "-d", root, "-S", release, "-a"}, names...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("modprobe: %v\n%s", err, out)
	}
	var want []string
	for _, l := range strings.Split(string(out), "\n") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(l), "insmod "); ok {
			want = append(want, strings.TrimPrefix(p, dir+"/"))
		}
	}
	got := paths(mods)
	sort.Strings(want)
	sorted := append([]string(nil), got...)
	sort.Strings(sorted)
	if diff := cmp.Diff(want, sorted); diff != "" {
		t.Errorf("closure (-modprobe +ours)\n%s", diff)
	}
	loaded := map[string]bool{}
	for _, m := range mods {
		for _, d := range m.Depends {
			if !loaded[d] {
				t.Errorf("%s loaded before its dependency %s", m.Name, d)
			}
		}
		loaded[m.Name] = true
	}
	t.Logf("closure of %v: %d modules: %v", names, len(got), got)
}
