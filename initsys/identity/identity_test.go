package identity

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestMachineIDStable(t *testing.T) {
	p := filepath.Join(t.TempDir(), "machine-id")
	id, created, err := MachineID(p)
	if err != nil || !created || !valid(id) {
		t.Fatalf("first MachineID = %q, %v, %v", id, created, err)
	}
	again, created, err := MachineID(p)
	if err != nil || created || again != id {
		t.Errorf("second MachineID = %q, %v, %v; want %q kept", again, created, err, id)
	}
	os.WriteFile(p, []byte("uninitialized\n"), 0o644)
	if fresh, created, _ := MachineID(p); !created || fresh == id {
		t.Errorf("invalid id not replaced: %q %v", fresh, created)
	}
}

func TestHostname(t *testing.T) {
	tests := []struct{ configured, id, want string }{
		{"", "0123456789abcdef0123456789abcdef", "basalt-012345"},
		{"store-7", "0123456789abcdef0123456789abcdef", "store-7"},
	}
	for _, tc := range tests {
		if got := Hostname(tc.configured, tc.id); got != tc.want {
			t.Errorf("Hostname(%q) = %q, want %q", tc.configured, got, tc.want)
		}
	}
}

func TestHosts(t *testing.T) {
	got := Hosts("127.0.0.1 localhost\n127.0.1.1 old\n10.0.0.5 registry\n", "basalt-abc123")
	want := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tbasalt-abc123\n10.0.0.5 registry\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("hosts (-want +got):\n%s", diff)
	}
}

func TestTimezone(t *testing.T) {
	etc, zones := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(zones, "Europe"), 0o755)
	os.WriteFile(filepath.Join(zones, "Europe/Paris"), []byte("TZif"), 0o644)
	if err := Timezone(etc, zones, "Europe/Paris"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.Readlink(filepath.Join(etc, "localtime"))
	tz, _ := os.ReadFile(filepath.Join(etc, "timezone"))
	if diff := cmp.Diff(filepath.Join(zones, "Europe/Paris")+" Europe/Paris\n", got+" "+string(tz)); diff != "" {
		t.Errorf("localtime, timezone (-want +got):\n%s", diff)
	}
	if err := Timezone(etc, zones, "Mars/Olympus"); err == nil || !strings.Contains(err.Error(), "timezones:") {
		t.Errorf("unknown zone: err = %v, want one naming the spec's timezones:", err)
	}
	// UTC needs no zone file: localtime goes, timezone says UTC.
	if err := Timezone(etc, zones, "UTC"); err != nil {
		t.Fatal(err)
	}
	tz, _ = os.ReadFile(filepath.Join(etc, "timezone"))
	if _, err := os.Lstat(filepath.Join(etc, "localtime")); !os.IsNotExist(err) || string(tz) != "UTC\n" {
		t.Errorf("UTC without a zone file: localtime err %v, timezone %q", err, tz)
	}
}

// TestWriteFileUnchanged: the same content and mode leave the file (its
// inode) alone; other content or mode replace it.
func TestWriteFileUnchanged(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hostname")
	if err := WriteFile(p, []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ino := func() uint64 {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	for _, tc := range []struct {
		data    string
		perm    os.FileMode
		replace bool
	}{
		{"a\n", 0o644, false},
		{"b\n", 0o644, true},
		{"b\n", 0o600, true},
		{"b\n", 0o600, false},
	} {
		before := ino()
		if err := WriteFile(p, []byte(tc.data), tc.perm); err != nil {
			t.Fatal(err)
		}
		if got := ino() != before; got != tc.replace {
			t.Errorf("WriteFile(%q, %v): replaced %v, want %v", tc.data, tc.perm, got, tc.replace)
		}
		if !Same(p, []byte(tc.data), tc.perm) {
			t.Errorf("after WriteFile(%q, %v): not Same", tc.data, tc.perm)
		}
	}
}
