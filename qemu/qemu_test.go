package qemu

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/basaltos/basalt/boards"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func board(t *testing.T, name string) *boards.Board {
	t.Helper()
	b, err := boards.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestArgs checks the command line per board against testdata/args/*.golden
// (one argument per line; go test -update rewrites them).
func TestArgs(t *testing.T) {
	tests := []struct {
		golden string
		cfg    Config
		plan   plan
	}{
		{"qemu-x86_64", Config{Board: board(t, "qemu-x86_64"), NoReboot: true},
			plan{accel: KVM, disk: "/img/demo.img", format: Raw, vars: "/tmp/vm/vars.fd"}},
		{"qemu-arm64", Config{Board: board(t, "qemu-arm64")},
			plan{accel: TCG, disk: "/img/demo.qcow2", format: QCOW2, vars: "/tmp/vm/vars.fd"}},
		{"qemu-armv7", Config{Board: board(t, "qemu-armv7"), Snapshot: true, Memory: 512, SMP: 1},
			plan{accel: TCG, disk: "/img/demo.img", format: Raw}},
		{"qemu-x86_64-net", Config{Board: board(t, "qemu-x86_64"), Stdin: strings.NewReader(""),
			Net:         Net{User: true, Forwards: []Forward{{"tcp", 2222, 22}, {"tcp", 6443, 6443}}, ToHost: []ToHost{{8080, 41234}}},
			ExtraDrives: []string{"/img/cidata.img"}},
			plan{accel: TCG, disk: "/tmp/vm/disk.qcow2", format: QCOW2, vars: "/tmp/vm/vars.fd"}},
		{"qemu-armv7-kernel", Config{Board: board(t, "qemu-armv7"), NoReboot: true,
			Kernel: "/k/vmlinuz", Initrd: "/k/initrd", Append: "console=ttyAMA0 basalt.slot=a"},
			plan{accel: TCG, disk: "/img/disk.img", format: Raw}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			a, err := args(&tt.cfg, tt.plan)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(a, "\n") + "\n"
			file := filepath.Join("testdata", "args", tt.golden+".golden")
			if *update {
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
		})
	}
}

func TestArgsErrors(t *testing.T) {
	if _, err := args(&Config{Board: board(t, "pc-x86_64")}, plan{accel: TCG}); err == nil || !strings.Contains(err.Error(), "pc-x86_64 has no qemu section") {
		t.Errorf("err = %v", err)
	}
}

func TestParseForward(t *testing.T) {
	tests := []struct {
		in      string
		want    Forward
		wantErr string
	}{
		{"127.0.0.1:2222-:22", Forward{"tcp", 2222, 22}, ""},
		{"2222-:22", Forward{"tcp", 2222, 22}, ""},
		{"6443-6443", Forward{"tcp", 6443, 6443}, ""},
		{"udp:127.0.0.1:5353-:53", Forward{"udp", 5353, 53}, ""},
		{"localhost:8080-:80", Forward{"tcp", 8080, 80}, ""},
		{"0.0.0.0:2222-:22", Forward{}, `host address "0.0.0.0": only 127.0.0.1 may be bound`},
		{":2222-:22", Forward{}, `host address ""`},
		{"2222", Forward{}, "want [tcp:|udp:]"},
		{"2222-:99999", Forward{}, "guest port"},
		{"x-:22", Forward{}, "host port"},
	}
	for _, tt := range tests {
		got, err := ParseForward(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseForward(%q) err = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseForward(%q): %v", tt.in, err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseForward(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestChooseAccel(t *testing.T) {
	works := func() error { return nil }
	broken := func() error { return errors.New("no") }
	tests := []struct {
		host  string
		guest boards.Arch
		probe func() error
		want  Accel
	}{
		{"amd64", boards.AMD64, works, KVM},
		{"amd64", boards.AMD64, broken, TCG},
		{"amd64", boards.ARM64, works, TCG},
		{"arm64", boards.ARM64, works, KVM},
		{"arm64", boards.ARMHF, works, TCG},
		{"arm", boards.ARMHF, broken, TCG},
	}
	for _, tt := range tests {
		if got := chooseAccel(tt.host, tt.guest, tt.probe); got != tt.want {
			t.Errorf("chooseAccel(%s, %s) = %s, want %s", tt.host, tt.guest, got, tt.want)
		}
	}
	if got := resolveAccel(TCG, boards.AMD64); got != TCG {
		t.Errorf("resolveAccel(TCG) = %s", got)
	}
}

func TestProbeKVMNotKVM(t *testing.T) {
	for _, dev := range []string{"/dev/null", filepath.Join(t.TempDir(), "kvm")} {
		if err := ProbeKVM(dev); err == nil {
			t.Errorf("ProbeKVM(%s) = nil, want error", dev)
		}
	}
}

func TestDetectFormatAndSparseCopy(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "a.img")
	data := make([]byte, 3<<20)
	copy(data[1<<20:], "basalt")
	if err := os.WriteFile(raw, data, 0o644); err != nil {
		t.Fatal(err)
	}
	q := filepath.Join(dir, "a.qcow2")
	hdr := append([]byte("QFI\xfb\x00\x00\x00\x03"), make([]byte, 24)...)
	hdr[24+4] = 0x40 // virtual size 0x4000_0000 = 1 GiB
	if err := os.WriteFile(q, hdr, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		file   string
		format Format
		size   int64
	}{{raw, Raw, 3 << 20}, {q, QCOW2, 1 << 30}} {
		f, n, err := DetectFormat(tt.file)
		if err != nil || f != tt.format || n != tt.size {
			t.Errorf("DetectFormat(%s) = %s, %d, %v; want %s, %d", tt.file, f, n, err, tt.format, tt.size)
		}
	}
	out := filepath.Join(dir, "big.img")
	if err := sparseCopy(raw, out, 8<<20); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 8<<20 || string(got[1<<20:1<<20+6]) != "basalt" || !allZero(got[3<<20:]) {
		t.Errorf("sparse copy: len %d, content wrong", len(got))
	}
	if _, _, err := growDisk(raw, Raw, 3<<20, 1<<20, dir); err == nil || !strings.Contains(err.Error(), "smaller than image") {
		t.Errorf("growDisk smaller: err = %v", err)
	}
}
