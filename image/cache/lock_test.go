package cache

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), LockName)
	l, err := ReadLock(path)
	if err != nil || len(l.Boards) != 0 {
		t.Fatalf("missing lock: %+v, %v", l, err)
	}
	s := strings.Repeat("ab", 32)
	l.Boards["qemu-x86_64"] = []LockedPackage{
		{Want: "systemd-boot-efi", Name: "systemd-boot-efi", Version: "252.39-1~deb12u2", Arch: "amd64", Mirror: "http://m/debian", Suite: "bookworm", Filename: "pool/s.deb", Size: 3, SHA256: s},
		{Want: "linux-image-cloud-amd64", Name: "linux-image-6.1.0-56-cloud-amd64", Version: "6.1.192-2", Arch: "amd64", Mirror: "http://m/debian-security", Suite: "bookworm-security", Filename: "pool/k.deb", Size: 9, SHA256: s,
			InRelease: LockedRelease{URL: "http://m/debian-security/dists/bookworm-security/InRelease", Date: "Wed, 25 Nov 2026 02:22:30 UTC", SHA256: s}},
	}
	if err := l.Write(path); err != nil {
		t.Fatal(err)
	}
	got, err := ReadLock(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(l, got); diff != "" {
		t.Errorf("round trip (-want +got)\n%s", diff)
	}
	if p, ok := got.Find("qemu-x86_64", "linux-image-cloud-amd64"); !ok || p.URL() != "http://m/debian-security/pool/k.deb" {
		t.Errorf("Find = %+v, %v", p, ok)
	}
	first, _ := os.ReadFile(path)
	got.Write(path)
	if second, _ := os.ReadFile(path); string(first) != string(second) {
		t.Error("lock output is not stable")
	}

	for _, bad := range []struct{ data, want string }{
		{"boards:\n  b:\n    - want: x\n", ".boards.b[0]: want, name, version, filename and a sha256 are required"},
		{"bords: {}\n", "field bords not found"},
	} {
		os.WriteFile(path, []byte(bad.data), 0o644)
		if _, err := ReadLock(path); err == nil || !strings.Contains(err.Error(), bad.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("ReadLock(%q) err = %v, want %q", bad.data, err, bad.want)
		}
	}
}
