package build

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/basaltos/basalt/contract"
)

// BenchmarkBuildVsHostTools measures a warm-cache build of the default
// image (local test kernel, host systemd-boot) against the same work done
// by the host tools in the same run: depmod over the same modules, cpio +
// zstd of the same initramfs content, mksquashfs of the same root directory
// (same compressor, level and block size), mkfs.vfat + mcopy of the same
// boot tree, mkfs.ext4 of the data size, sgdisk for the same table, dd to
// assemble, then the sha256 of the image and of each partition (our build
// writes those sums into the manifest; the host side hashes the image in one
// job while a second job hashes the four partitions read back from the
// image, so both sides use two cores for it). It reports both times,
// time-ratio (ours/host) and no-checksums-time-ratio (both sides without
// their checksum step), each step of both sides (s/op; the host's are
// host-*), the time ratios of the squashfs and checksum steps, the image
// size and size-ratio (our root squashfs / mksquashfs's). The machine's
// load weighs on both sides alike: compare ratios, not absolute times.
func BenchmarkBuildVsHostTools(b *testing.B) {
	for _, tool := range []string{"mksquashfs", "unsquashfs", "mkfs.vfat", "mcopy", "mkfs.ext4", "sgdisk", "dd", "truncate", "depmod", "cpio", "zstd", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s not on PATH (sbin tools: PATH=$PATH:/sbin:/usr/sbin)", tool)
		}
	}
	dir := b.TempDir()
	s := writeSpec(b, dir, "")
	ctx := context.Background()
	o := Options{OutDir: filepath.Join(dir, "warm"), Epoch: DefaultEpoch}
	arts, err := Build(ctx, s, o) // warm: device binary compiled, files in the page cache
	if err != nil {
		b.Fatal(err)
	}
	var m Manifest
	if err := json.Unmarshal(must(os.ReadFile(arts[0].Manifest)), &m); err != nil {
		b.Fatal(err)
	}
	// The host tools get the same inputs as directories: our root and boot
	// trees, unpacked from the first build.
	rootDir, bootDir := filepath.Join(dir, "rootfs"), filepath.Join(dir, "bootfs")
	var rootPart, bootPart PartInfo
	for _, p := range m.Partitions {
		switch p.Name {
		case contract.PartRootA:
			rootPart = p
		case contract.PartBoot:
			bootPart = p
		}
	}
	img := arts[0].Image
	sh(b, fmt.Sprintf("dd if=%s of=%s/root.sqfs bs=1M skip=%d count=%d status=none && unsquashfs -q -n -d %s %s/root.sqfs",
		img, dir, rootPart.Start>>20, (rootPart.Content+1<<20-1)>>20, rootDir, dir))
	sh(b, fmt.Sprintf("dd if=%s of=%s/boot.fat bs=1M skip=%d count=%d status=none && mkdir %s && mcopy -s -n -i %s/boot.fat '::*' %s/",
		img, dir, bootPart.Start>>20, bootPart.Size>>20, bootDir, dir, bootDir))

	// The initramfs content, for the host's cpio (as root it includes
	// dev/console; elsewhere cpio cannot create it and skips it).
	initDir := filepath.Join(dir, "initramfs")
	sh(b, fmt.Sprintf("mkdir %s && cd %s && zstd -dcq %s/%s/%s | { cpio -idm --quiet 2>/dev/null || true; }",
		initDir, initDir, bootDir, contract.SlotDir(contract.SlotA), contract.InitrdFile))

	var ours, host time.Duration
	var hostRoot int64
	steps := map[string]time.Duration{}
	step := func(name string, d time.Duration) { steps[strings.TrimPrefix(name, "qemu-x86_64: ")] += d }
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := Build(ctx, s, Options{OutDir: filepath.Join(dir, fmt.Sprint("ours", i)), Epoch: DefaultEpoch, Step: step}); err != nil {
			b.Fatal(err)
		}
		ours += time.Since(t0)

		t0 = time.Now()
		hostRoot = hostBuild(b, filepath.Join(dir, fmt.Sprint("host", i)), rootDir, bootDir, initDir, m, step)
		host += time.Since(t0)
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(ours.Seconds()/n, "ours-s/op")
	b.ReportMetric(host.Seconds()/n, "host-s/op")
	b.ReportMetric(ours.Seconds()/host.Seconds(), "time-ratio")
	for name, d := range steps {
		b.ReportMetric(d.Seconds()/n, strings.ReplaceAll(name, " ", "-")+"-s/op")
	}
	b.ReportMetric((ours-steps["checksums"]).Seconds()/(host-steps["host checksums"]).Seconds(), "no-checksums-time-ratio")
	b.ReportMetric(steps["root squashfs"].Seconds()/steps["host root squashfs"].Seconds(), "squashfs-time-ratio")
	b.ReportMetric(steps["checksums"].Seconds()/steps["host checksums"].Seconds(), "checksums-time-ratio")
	b.ReportMetric(float64(m.Image.Size), "image-bytes")
	b.ReportMetric(float64(rootPart.Content), "root-bytes")
	b.ReportMetric(float64(rootPart.Content)/float64(hostRoot), "size-ratio")
}

// hostBuild does the image's work with the host tools into dir, reporting
// each step to step as "host <step>", and returns the size of mksquashfs's
// root.
func hostBuild(b *testing.B, dir, rootDir, bootDir, initDir string, m Manifest, step func(string, time.Duration)) int64 {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	sqfs, fat, ext4, img := dir+"/root.sqfs", dir+"/boot.fat", dir+"/data.ext4", dir+"/disk.img"
	var last PartInfo
	var sgdisk []string
	for _, p := range m.Partitions {
		sgdisk = append(sgdisk, fmt.Sprintf("-n %d:%d:%d -t %d:%s -c %d:%s -u %d:%s",
			p.Number, p.Start/512, (p.Start+p.Size)/512-1, p.Number, p.Type, p.Number, p.Name, p.Number, p.GUID))
		last = p
	}
	part := func(name string) PartInfo {
		for _, p := range m.Partitions {
			if p.Name == name {
				return p
			}
		}
		b.Fatalf("no partition %s", name)
		return PartInfo{}
	}
	boot, root, data := part(contract.PartBoot), part(contract.PartRootA), part(contract.PartData)
	dd := func(src string, p PartInfo) string {
		return fmt.Sprintf("dd if=%s of=%s bs=1M seek=%d conv=notrunc,sparse status=none", src, img, p.Start>>20)
	}
	for _, st := range []struct{ name, script string }{
		// Our module scan reads every module's .modinfo to close the boot
		// modules over their dependencies; depmod does that (and more)
		// over the same tree, printing instead of writing into it.
		{"kernel modules", fmt.Sprintf("depmod -n -b %s %s >/dev/null", rootDir, m.Kernel)},
		// Our initramfs: newc cpio, zstd at klauspost's SpeedBetterCompression
		// (about level 7), one thread.
		{"initramfs", fmt.Sprintf("cd %s && find . | LC_ALL=C sort | cpio -o -H newc --reproducible --quiet | zstd -q -7 -T1 >%s/initrd", initDir, dir)},
		{"root squashfs", fmt.Sprintf("mksquashfs %s %s -quiet -no-progress -noappend -comp zstd -Xcompression-level %d -b %d -processors %d -all-time %d -mkfs-time %d >/dev/null",
			rootDir, sqfs, rootSquashfs.Level, rootSquashfs.BlockSize, runtime.GOMAXPROCS(0), DefaultEpoch, DefaultEpoch)},
		{"boot fat", fmt.Sprintf("mkfs.vfat -C -F 32 -n %s %s %d >/dev/null && mcopy -s -i %s %s/* ::", contract.BootFSLabel, fat, boot.Size>>10, fat, bootDir)},
		{"data ext4", fmt.Sprintf("mkfs.ext4 -q -F -L %s %s %dk", contract.DataFSLabel, ext4, data.Size>>10)},
		{"disk image", strings.Join([]string{
			fmt.Sprintf("truncate -s %d %s", last.Start+last.Size+1<<20, img),
			"sgdisk -q " + strings.Join(sgdisk, " ") + " " + img + " >/dev/null",
			dd(fat, boot), dd(sqfs, root), dd(ext4, data),
		}, " && ")},
		{"checksums", hashes(img, m.Partitions)},
	} {
		t0 := time.Now()
		sh(b, st.script)
		step("host "+st.name, time.Since(t0))
	}
	fi, err := os.Stat(sqfs)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}

// hashes is the host's checksum step: the sha256 of the image in one
// background job, of each partition (read from the image) in another. It
// uses openssl, which hashes with the CPU's SHA instructions as Go does:
// coreutils' sha256sum here does not (2.6 s for 500 MB of zeros against
// openssl's 0.55 s) and would flatter our side.
func hashes(img string, parts []PartInfo) string {
	var p []string
	for _, x := range parts {
		p = append(p, fmt.Sprintf("dd if=%s bs=1M skip=%d count=%d status=none | openssl dgst -sha256", img, x.Start>>20, x.Size>>20))
	}
	return fmt.Sprintf("{ openssl dgst -sha256 %s >/dev/null & h=$!; { %s; } >/dev/null; wait $h; }", img, strings.Join(p, " && "))
}

func sh(b *testing.B, script string) {
	b.Helper()
	if out, err := exec.Command("sh", "-ec", script).CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", script, err, out)
	}
}
