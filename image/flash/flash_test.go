package flash

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/image/disk"
	"github.com/basaltos/basalt/image/fat"
	"github.com/basaltos/basalt/image/tree"
	"github.com/basaltos/basalt/internal/testutil"
)

// testImage writes a 64 MiB MBR image, mostly holes: a FAT boot partition
// and a data partition with a few MiB of bytes.
func testImage(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img")
	tr := tree.New(0)
	tr.AddBytes("config.txt", 0o644, []byte("os_prefix=a/\n"))
	l := disk.Layout{Scheme: disk.MBR, DiskID: 0x1c874ae7, Partitions: []disk.Partition{
		{Name: contract.PartBoot, MBRType: disk.MBRTypeFAT32LBA, Bootable: true, Size: 40 << 20},
		{Name: contract.PartRootA, MBRType: disk.MBRTypeLinux, Size: 20 << 20},
	}}
	err := disk.Write(p, l, func(part disk.Partition, w io.WriterAt) error {
		if part.Name == contract.PartBoot {
			return fat.Write(w, part.Size, tr, fat.Options{Label: contract.BootFSLabel, HiddenSectors: uint32(part.Start / disk.SectorSize)})
		}
		_, err := w.WriteAt(bytes.Repeat([]byte("basalt"), 700000), 5<<20)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func sameBytes(t *testing.T, a, b string, n int64) {
	t.Helper()
	x, _ := os.ReadFile(a)
	f, err := os.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	y := make([]byte, n)
	if _, err := io.ReadFull(f, y); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Errorf("%s differs from the image", b)
	}
}

func TestFlashFile(t *testing.T) {
	img := testImage(t)
	dst := filepath.Join(t.TempDir(), "card")
	os.WriteFile(dst, bytes.Repeat([]byte{0xff}, 100<<20), 0o644) // old content
	tg, err := Check(dst)
	if err != nil || tg.Block {
		t.Fatalf("Check(file) = %+v, %v", tg, err)
	}
	var last int64
	r, err := Write(context.Background(), img, tg, Options{Progress: func(done, total int64) { last = done }})
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(img)
	if last != fi.Size() || r.Size != fi.Size() || r.Written >= r.Size || r.Written < 4<<20 || r.Zeroed != 0 {
		t.Errorf("result %+v (progress ended at %d)", r, last)
	}
	sameBytes(t, img, dst, fi.Size())
	if st, _ := os.Stat(dst); st.Size() != fi.Size() {
		t.Errorf("file target is %d bytes, want the image's %d", st.Size(), fi.Size())
	}
}

// dropping is a card that acknowledges writes it does not do.
type dropping struct {
	f       *os.File
	dropped bool
}

func (d *dropping) WriteAt(p []byte, off int64) (int, error) {
	if !d.dropped && off > 0 && len(p) > 8192 {
		d.dropped = true
		n, err := d.f.WriteAt(p[:len(p)-4096], off)
		return n + 4096, err
	}
	return d.f.WriteAt(p, off)
}

// TestFlashShortWrite: a write the card drops is caught by the read-back.
func TestFlashShortWrite(t *testing.T) {
	img := testImage(t)
	dst := filepath.Join(t.TempDir(), "card")
	os.WriteFile(dst, nil, 0o644)
	tg, _ := Check(dst)
	_, err := Write(context.Background(), img, tg, Options{writerAt: func(f *os.File) io.WriterAt { return &dropping{f: f} }})
	if err == nil || !strings.Contains(err.Error(), "verify failed") {
		t.Fatalf("err = %v, want the verify to fail", err)
	}
}

func TestCheckRefuses(t *testing.T) {
	for _, tt := range []struct{ path, want string }{
		{"/dev/null", "not a block device or a regular file"},
		{filepath.Join(t.TempDir(), "none"), "no such file"},
		{t.TempDir(), "not a block device or a regular file"},
	} {
		if _, err := Check(tt.path); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Check(%s) = %v, want %q", tt.path, err, tt.want)
		}
	}
}

// losetup attaches a loop device to a file (root only).
func losetup(t *testing.T, file string, args ...string) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("loop devices need root")
	}
	out, err := exec.Command(testutil.NeedTool(t, "losetup"), append([]string{"-f", "--show"}, append(args, file)...)...).Output()
	if err != nil {
		t.Skipf("losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

// TestFlashLoop: onto a loop device full of old bytes: the image's holes
// are zeroed, not left with the old content; a mounted device, a partition
// and the host's system disk are refused.
func TestFlashLoop(t *testing.T) {
	img := testImage(t)
	back := filepath.Join(t.TempDir(), "card")
	os.WriteFile(back, bytes.Repeat([]byte{0xff}, 80<<20), 0o644)
	dev := losetup(t, back)
	tg, err := Check(dev)
	if err != nil || !tg.Block || tg.Size != 80<<20 {
		t.Fatalf("Check(%s) = %+v, %v", dev, tg, err)
	}
	r, err := Write(context.Background(), img, tg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(img)
	if r.Zeroed == 0 || r.Written+r.Zeroed < fi.Size() {
		t.Errorf("result %+v", r)
	}
	sameBytes(t, img, dev, fi.Size())

	// The image's first partition, as the kernel sees it on a loop device.
	pdev := losetup(t, back)
	want := "is partition " + filepath.Base(pdev) + "p1 of " + pdev + ": flash the whole disk (" + pdev + ")"
	if _, err := Check(partNode(t, pdev, 1)); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("partition: %v, want %q", err, want)
	}
	fsFile := filepath.Join(t.TempDir(), "fs")
	os.WriteFile(fsFile, nil, 0o644)
	os.Truncate(fsFile, 16<<20)
	if out, err := exec.Command(testutil.NeedTool(t, "mkfs.ext4"), "-q", "-F", fsFile).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v %s", err, out)
	}
	fsDev := losetup(t, fsFile)
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "ro", fsDev, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	defer exec.Command("umount", mnt).Run()
	if _, err := Check(fsDev); err == nil || !strings.Contains(err.Error(), "is mounted ("+filepath.Base(fsDev)+" on "+mnt+")") {
		t.Errorf("mounted: %v", err)
	}
	for d := range systemDisks() {
		if _, err := Check("/dev/" + d); err == nil {
			t.Errorf("system disk /dev/%s accepted", d)
		}
	}
}

// partNode returns a device node of partition n of loop device dev. The
// kernel adds the partitions of the image on dev when partx asks (BLKPG;
// losetup -P's scan does not happen in every container), and sysfs then
// lists them; where no devtmpfs makes their /dev node (containers), the
// test makes one itself from the partition's major:minor in sysfs.
func partNode(t *testing.T, dev string, n int) string {
	t.Helper()
	if out, err := exec.Command(testutil.NeedTool(t, "partx"), "-a", dev).CombinedOutput(); err != nil {
		t.Fatalf("partx -a %s: %v %s", dev, err, out)
	}
	t.Cleanup(func() { exec.Command("partx", "-d", dev).Run() })
	name := fmt.Sprintf("%sp%d", filepath.Base(dev), n)
	var mm []byte
	for i := 0; i < 50; i++ {
		if _, err := os.Stat("/dev/" + name); err == nil {
			return "/dev/" + name
		}
		if b, err := os.ReadFile(filepath.Join("/sys/class/block", name, "dev")); err == nil {
			mm = b
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var major, minor uint32
	if _, err := fmt.Sscanf(string(mm), "%d:%d", &major, &minor); err != nil {
		t.Fatalf("partition %s of %s: not in sysfs after partx -a (%q)", name, dev, mm)
	}
	node := filepath.Join(t.TempDir(), name)
	if err := unix.Mknod(node, unix.S_IFBLK|0o600, int(unix.Mkdev(major, minor))); err != nil {
		t.Fatalf("mknod %s: %v", node, err)
	}
	return node
}

func TestDropIn(t *testing.T) {
	doc, err := DropIn("90-flash.yaml", []string{"hostname=store-042", "update.interval=6h", "update.channel=https://u.example/c"})
	if err != nil {
		t.Fatal(err)
	}
	want := "apiVersion: basalt.dev/v1alpha1\nkind: DeviceConfig\nhostname: store-042\nupdate:\n    interval: 6h\n    channel: https://u.example/c\n"
	if string(doc) != want {
		t.Errorf("drop-in:\n%s\nwant:\n%s", doc, want)
	}
	for _, tt := range []struct {
		sets []string
		want string
	}{
		{[]string{"hostname"}, "want key=value"},
		{[]string{"hostname=a", "hostname=b"}, "set twice"},
		{[]string{"hostname=a", "hostname.x=b"}, "is a value, not a section"},
		{[]string{"hostnme=a"}, "hostnme"},
	} {
		if _, err := DropIn("x.yaml", tt.sets); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: err = %v, want %q", tt.sets, err, tt.want)
		}
	}
	b := Batch{Sets: []string{"hostname=store-{n}"}, First: 41}
	csv := filepath.Join(t.TempDir(), "cards.csv")
	os.WriteFile(csv, []byte("update.interval\n1h\n2h\n"), 0o644)
	if err := b.ReadCSV(csv); err != nil {
		t.Fatal(err)
	}
	got, err := b.Card(1)
	if err != nil || strings.Join(got, " ") != "hostname=store-42 update.interval=2h" {
		t.Errorf("card 2: %v, %v", got, err)
	}
	if _, err := b.Card(2); err == nil {
		t.Error("card 3 of a 2-row CSV")
	}
}

// The permission error names the node's owner, group and mode and who we are.
func TestPermissionMessage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sdz")
	os.WriteFile(p, nil, 0o600)
	os.Chmod(p, 0o660) // past the umask
	err := permission(p, os.ErrPermission)
	for _, want := range []string{p, "owner uid", "mode 0660", "you are uid", `join the group that owns it (often "disk")`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v: lacks %q", err, want)
		}
	}
}
