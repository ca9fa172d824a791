package verity

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSuperblockRoundTrip(t *testing.T) {
	s := New(147, []byte{0, 0x11, 0x22, 0x33}, [16]byte{1, 2, 3})
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestParseRefuses(t *testing.T) {
	good, _ := New(8, []byte("salt"), [16]byte{}).Marshal()
	for _, tc := range []struct {
		name string
		edit func([]byte)
		want string
	}{
		{"zeros", func(b []byte) { clear(b) }, "signature"},
		{"version", func(b []byte) { b[8] = 2 }, "version 2"},
		{"hash type", func(b []byte) { b[12] = 0 }, "hash type 0"},
		{"algorithm", func(b []byte) { copy(b[32:], "sha1\x00\x00") }, `algorithm "sha1"`},
		{"block size", func(b []byte) { b[65] = 2 }, "block sizes 512/4096"},
		{"no data", func(b []byte) { clear(b[72:80]) }, "0 data blocks"},
		{"salt size", func(b []byte) { b[81] = 1 }, "salt size 260"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(good)
			tc.edit(b)
			_, err := Parse(b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse: %v, want an error with %q", err, tc.want)
			}
		})
	}
	if _, err := Parse(make([]byte, SuperblockSize)); !errors.Is(err, ErrNoSuperblock) {
		t.Errorf("zeros: %v, want ErrNoSuperblock", err)
	}
	if _, err := Parse(good[:100]); err == nil {
		t.Error("short superblock parsed")
	}
}

func TestLevels(t *testing.T) {
	for _, tc := range []struct {
		blocks uint64
		want   []uint64
	}{
		{1, []uint64{}},
		{2, []uint64{1}},
		{128, []uint64{1}},
		{129, []uint64{1, 2}},
		{147, []uint64{1, 2}},
		{128*128 + 1, []uint64{1, 2, 129}},
	} {
		if diff := cmp.Diff(tc.want, Levels(tc.blocks)); diff != "" {
			t.Errorf("Levels(%d) (-want +got):\n%s", tc.blocks, diff)
		}
	}
	// veritysetup reported 3 hash blocks for 147 data blocks; plus the superblock.
	if got := HashAreaSize(147); got != 4*BlockSize {
		t.Errorf("HashAreaSize(147) = %d, want %d", got, 4*BlockSize)
	}
}

func TestTable(t *testing.T) {
	n, p := Table("/dev/vda2", 147, bytes.Repeat([]byte{0xab}, 32), []byte{1, 2})
	if n != 147*8 {
		t.Errorf("length %d sectors, want %d", n, 147*8)
	}
	want := "1 /dev/vda2 /dev/vda2 4096 4096 147 148 sha256 " + strings.Repeat("ab", 32) + " 0102"
	if p != want {
		t.Errorf("table\n got %q\nwant %q", p, want)
	}
}

func TestParseRootHash(t *testing.T) {
	if _, err := ParseRootHash(strings.Repeat("0f", 32)); err != nil {
		t.Error(err)
	}
	for _, s := range []string{"", "xyz", strings.Repeat("0f", 31)} {
		if _, err := ParseRootHash(s); err == nil {
			t.Errorf("ParseRootHash(%q) accepted", s)
		}
	}
}

func FuzzParse(f *testing.F) {
	good, _ := New(147, []byte("salt"), [16]byte{9}).Marshal()
	f.Add(good)
	f.Add(make([]byte, SuperblockSize))
	f.Add([]byte("verity\x00\x00\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			return
		}
		// What parses marshals back to the same meaningful bytes.
		out, err := s.Marshal()
		if err != nil {
			t.Fatalf("parsed superblock does not marshal: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if diff := cmp.Diff(s, again); diff != "" {
			t.Fatalf("re-parse (-first +second):\n%s", diff)
		}
	})
}
