package verity

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	cv "github.com/basaltos/basalt/contract/verity"
	"github.com/basaltos/basalt/internal/testutil"
)

var (
	testSalt = []byte("basalt-test-salt-0123456789abcde")
	testUUID = [16]byte{0x12, 0x34, 0x56, 0x78, 0x12, 0x34, 0x42, 0x34, 0x92, 0x34, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc}
)

func uuidString(u [16]byte) string {
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// testData is size deterministic pseudo-random bytes.
func testData(size int) []byte {
	b := make([]byte, size)
	r := rand.New(rand.NewPCG(uint64(size), 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

var rootHashRE = regexp.MustCompile(`Root hash:\s+([0-9a-f]{64})`)

// veritysetupFormat runs the real tool on data (padded to a block) with
// the hash area after it in the same file, as a slot holds them, and
// returns the file's bytes and the root hash it printed.
func veritysetupFormat(t *testing.T, data []byte) ([]byte, []byte) {
	t.Helper()
	vs := testutil.NeedTool(t, "veritysetup")
	blocks := DataBlocks(int64(len(data)))
	p := filepath.Join(t.TempDir(), "slot")
	padded := make([]byte, int64(blocks)*cv.BlockSize)
	copy(padded, data)
	if err := os.WriteFile(p, padded, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(vs, "format", fmt.Sprintf("--hash-offset=%d", len(padded)), fmt.Sprintf("--data-blocks=%d", blocks),
		"--salt="+hex.EncodeToString(testSalt), "--uuid="+uuidString(testUUID), p, p).CombinedOutput()
	if err != nil {
		t.Fatalf("veritysetup format: %v\n%s", err, out)
	}
	m := rootHashRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no root hash in veritysetup's output:\n%s", out)
	}
	root, _ := hex.DecodeString(string(m[1]))
	img, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return img, root
}

// TestBuildMatchesVeritysetup: for one, two and three tree levels (and a
// data area that does not end on a block), the hash area and root hash are
// the bytes veritysetup writes for the same data, salt and UUID.
func TestBuildMatchesVeritysetup(t *testing.T) {
	for _, size := range []int{100, 128 * cv.BlockSize, 147*cv.BlockSize - 5, (128*128 + 1) * cv.BlockSize} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			data := testData(size)
			want, wantRoot := veritysetupFormat(t, data)
			tr, err := Build(bytes.NewReader(data), int64(size), testSalt, testUUID)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(tr.RootHash, wantRoot) {
				t.Errorf("root hash %x, veritysetup %x", tr.RootHash, wantRoot)
			}
			if got := want[tr.Offset():]; !bytes.Equal(got, tr.Area) {
				t.Errorf("hash area differs from veritysetup's (%d vs %d bytes)", len(tr.Area), len(got))
			}
		})
	}
}

// TestVeritysetupVerifies: what Build writes after the data, the real tool
// verifies with the root hash; a flipped data byte it refuses, as does Verify.
func TestVeritysetupVerifies(t *testing.T) {
	vs := testutil.NeedTool(t, "veritysetup")
	data := testData(300*cv.BlockSize + 17)
	tr, err := Build(bytes.NewReader(data), int64(len(data)), testSalt, testUUID)
	if err != nil {
		t.Fatal(err)
	}
	img := make([]byte, tr.Offset()+int64(len(tr.Area)))
	copy(img, data)
	copy(img[tr.Offset():], tr.Area)
	p := filepath.Join(t.TempDir(), "slot")
	verify := func() error {
		if err := os.WriteFile(p, img, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(vs, "verify", fmt.Sprintf("--hash-offset=%d", tr.Offset()), p, p, hex.EncodeToString(tr.RootHash)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := verify(); err != nil {
		t.Fatalf("veritysetup verify: %v", err)
	}
	if _, root, err := Verify(bytes.NewReader(img), int64(len(data)), tr.RootHash); err != nil || !bytes.Equal(root, tr.RootHash) {
		t.Fatalf("Verify: %x, %v", root, err)
	}
	img[200*cv.BlockSize+5] ^= 1
	if err := verify(); err == nil {
		t.Error("veritysetup verified a flipped byte")
	}
	if _, _, err := Verify(bytes.NewReader(img), int64(len(data)), tr.RootHash); err == nil {
		t.Error("Verify accepted a flipped byte")
	}
	if _, _, err := Verify(bytes.NewReader(make([]byte, len(img))), int64(len(data)), nil); err == nil || !strings.Contains(err.Error(), "no verity superblock") {
		t.Errorf("Verify of zeros: %v", err)
	}
}

// TestBuildReproducible: same data, salt and UUID give the same bytes.
func TestBuildReproducible(t *testing.T) {
	data := testData(5000 * cv.BlockSize)
	var sums [2][32]byte
	for i := range sums {
		tr, err := Build(bytes.NewReader(data), int64(len(data)), testSalt, testUUID)
		if err != nil {
			t.Fatal(err)
		}
		sums[i] = sha256.Sum256(append(tr.Area, tr.RootHash...))
	}
	if sums[0] != sums[1] {
		t.Errorf("two builds differ: %x %x", sums[0], sums[1])
	}
}
