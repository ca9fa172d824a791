package dm

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestIoctlNumbers(t *testing.T) {
	// DM_DEV_CREATE and DM_TABLE_LOAD as strace prints them for dmsetup.
	if got := ioctlNumber(cmdDevCreate); got != 0xc138fd03 {
		t.Errorf("DM_DEV_CREATE = %#x", got)
	}
	if got := ioctlNumber(cmdTableLoad); got != 0xc138fd09 {
		t.Errorf("DM_TABLE_LOAD = %#x", got)
	}
}

func TestHeader(t *testing.T) {
	b, err := header("basalt-root", 8)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if len(b) != 320 || le.Uint32(b[0:]) != 4 || le.Uint32(b[offDataSize:]) != 320 || le.Uint32(b[offDataStart:]) != 312 {
		t.Errorf("header: len %d version %d size %d start %d", len(b), le.Uint32(b), le.Uint32(b[offDataSize:]), le.Uint32(b[offDataStart:]))
	}
	if got := cstring(b[offName:offUUID]); got != "basalt-root" {
		t.Errorf("name %q", got)
	}
	for _, bad := range []string{"", strings.Repeat("x", 128)} {
		if _, err := header(bad, 0); err == nil {
			t.Errorf("header(%q) accepted", bad)
		}
	}
}

func TestTableData(t *testing.T) {
	d, err := tableData([]Target{{Start: 0, Length: 1176, Type: "verity", Params: "1 a b"}})
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if len(d) != 48 || le.Uint64(d[8:]) != 1176 || le.Uint32(d[20:]) != 48 || cstring(d[24:40]) != "verity" || cstring(d[40:]) != "1 a b" {
		t.Errorf("spec: % x", d)
	}
	if _, err := tableData([]Target{{Type: "a-type-name-too-long"}}); err == nil {
		t.Error("long type accepted")
	}
}

// answer builds a TABLE_STATUS answer as the kernel lays it out.
func answer(targets []Target) []byte {
	b, _ := header("x", 4096)
	le := binary.LittleEndian
	out := b[headerSize:]
	off := 0
	for _, t := range targets {
		s := out[off:]
		le.PutUint64(s[0:], t.Start)
		le.PutUint64(s[8:], t.Length)
		copy(s[24:], t.Type)
		copy(s[specSize:], t.Params)
		off += (specSize + len(t.Params) + 1 + 7) &^ 7
		le.PutUint32(s[20:], uint32(off))
	}
	le.PutUint32(b[offTargetCount:], uint32(len(targets)))
	le.PutUint32(b[offDataSize:], uint32(headerSize+off))
	return b
}

func TestParseStatus(t *testing.T) {
	want := []Target{{0, 1176, "verity", "V"}, {1176, 8, "linear", "C"}}
	got, err := parseStatus(answer(want))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	full := answer(want)
	full[offFlags+1] = 1 // DM_BUFFER_FULL_FLAG
	if _, err := parseStatus(full); err == nil {
		t.Error("full buffer accepted")
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add(answer([]Target{{0, 8, "verity", "V"}}))
	f.Fuzz(func(t *testing.T, b []byte) { parseStatus(b) })
}
