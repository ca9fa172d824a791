package k3s

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/basaltos/basalt/image/cache"
	"github.com/klauspost/compress/zstd"
)

// How a k3s release binary carries its data (k3s scripts/package-cli and
// cmd/k3s/main.go): ./bin and ./etc are tarred, compressed with
// `zstd -16 --long=25` and the result stored as pkg/data/embed/<sha256 of
// the .tar.zst>.tar.zst, which go:embed puts verbatim into the binary. At
// start k3s unpacks it to <data-dir>/data/<hash>/ unless bin/k3s is there.
//
// FindData finds those bytes the same way they were made: it looks for the
// embedded file's name (64 hex digits + ".tar.zst") in the binary, then for a
// zstd frame whose bytes hash to that name. The hash check makes the find
// exact: nothing else in the binary can match it.

// Data locates the data archive inside a k3s binary.
type Data struct {
	Hash   string // sha256 of the .tar.zst, hex: the data/<hash> directory name
	Offset int64
	Size   int64
}

// ErrNoData marks a binary without a k3s data archive.
var ErrNoData = errors.New("no k3s data archive in the binary")

var dataName = regexp.MustCompile(`[0-9a-f]{64}\.tar\.zst`)

var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// FindData returns where the data archive is in the binary b.
func FindData(b []byte) (Data, error) {
	var hashes []string
	seen := map[string]bool{}
	for _, m := range dataName.FindAll(b, -1) {
		h := string(m[:64])
		if !seen[h] {
			seen[h] = true
			hashes = append(hashes, h)
		}
	}
	if len(hashes) == 0 {
		return Data{}, fmt.Errorf("%w: no embedded <sha256>.tar.zst name found (is it a k3s release binary?)", ErrNoData)
	}
	for off := 0; ; {
		i := bytes.Index(b[off:], zstdMagic)
		if i < 0 {
			break
		}
		start := off + i
		off = start + 1
		for end := start; ; {
			n, ok := frameLen(b[end:])
			if !ok {
				break
			}
			end += n
			sum := sha256.Sum256(b[start:end])
			h := hex.EncodeToString(sum[:])
			if seen[h] {
				return Data{Hash: h, Offset: int64(start), Size: int64(end - start)}, nil
			}
			if !bytes.HasPrefix(b[end:], zstdMagic) {
				break
			}
		}
	}
	return Data{}, fmt.Errorf("%w: found the name %s.tar.zst but no zstd data with that sha256", ErrNoData, hashes[0])
}

// frameLen returns the length of the zstd frame at the start of b, from its
// header and block headers (RFC 8878, section 3.1.1), without decoding it.
func frameLen(b []byte) (int, bool) {
	if len(b) < 6 || !bytes.HasPrefix(b, zstdMagic) {
		return 0, false
	}
	fhd := b[4]
	if fhd&0x08 != 0 { // reserved bit
		return 0, false
	}
	single := fhd&0x20 != 0
	n := 5
	if !single {
		n++
	}
	n += [4]int{0, 1, 2, 4}[fhd&3]
	switch fhd >> 6 {
	case 0:
		if single {
			n++
		}
	case 1:
		n += 2
	case 2:
		n += 4
	case 3:
		n += 8
	}
	for {
		if n+3 > len(b) {
			return 0, false
		}
		h := uint32(b[n]) | uint32(b[n+1])<<8 | uint32(b[n+2])<<16
		n += 3
		size := int(h >> 3)
		switch (h >> 1) & 3 {
		case 1: // RLE: one byte
			size = 1
		case 3: // reserved
			return 0, false
		}
		if size > 128<<10 {
			return 0, false
		}
		n += size
		if n > len(b) {
			return 0, false
		}
		if h&1 != 0 {
			break
		}
	}
	if fhd&0x04 != 0 {
		n += 4
	}
	return n, n <= len(b)
}

// maxWindow is the zstd window the decoder accepts: k3s compresses with
// --long=25 (32 MiB).
const maxWindow = 1 << 27

// Extract unpacks the data archive d of binary b into dir (which must exist
// and be empty), as k3s does, then checks the unpacked bin/ against its
// .sha256sums list (k3s pkg/dataverify) and that bin/k3s is there.
func Extract(b []byte, d Data, dir string) error {
	zr, err := zstd.NewReader(bytes.NewReader(b[d.Offset:d.Offset+d.Size]), zstd.WithDecoderMaxWindow(maxWindow), zstd.WithDecoderConcurrency(1))
	if err != nil {
		return err
	}
	defer zr.Close()
	if err := untar(zr, dir); err != nil {
		return fmt.Errorf("k3s data %s: %w", d.Hash, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "bin", "k3s")); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("k3s data %s: no bin/k3s in the archive", d.Hash)
	}
	if err := verifySums(filepath.Join(dir, "bin")); err != nil {
		return fmt.Errorf("k3s data %s: %w", d.Hash, err)
	}
	return nil
}

func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if name == "." {
			continue
		}
		if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("tar entry %q leaves the data directory", h.Name)
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		mode := fs.FileMode(h.Mode) & fs.ModePerm
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
		case tar.TypeLink:
			target := path.Clean(strings.TrimPrefix(h.Linkname, "./"))
			if strings.HasPrefix(target, "../") || path.IsAbs(target) {
				return fmt.Errorf("tar hard link %q leaves the data directory", h.Linkname)
			}
			if err := os.Link(filepath.Join(dir, filepath.FromSlash(target)), p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("tar entry %q: unsupported type %q", h.Name, h.Typeflag)
		}
	}
}

// verifySums checks the files listed in bin/.sha256sums ("<hex> <name>"
// lines, k3s scripts/package-cli).
func verifySums(bin string) error {
	f, err := os.Open(filepath.Join(bin, ".sha256sums"))
	if errors.Is(err, os.ErrNotExist) {
		return nil // older releases have none
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 2 {
			continue
		}
		got, err := cache.FileSHA(filepath.Join(bin, filepath.FromSlash(fields[1])))
		if err != nil {
			return fmt.Errorf("bin/%s: %w", fields[1], err)
		}
		if got != fields[0] {
			return fmt.Errorf("bin/%s: sha256 %s, .sha256sums says %s", fields[1], got, fields[0])
		}
	}
	return sc.Err()
}

// CNIPlugins returns the names in the unpacked bin/ that are symlinks to the
// cni multicall binary, sorted: k3s links each, and cni itself, from
// data/cni/ (its stable CNI bin dir, first on PATH).
func CNIPlugins(dir string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(dir, "bin"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		if t, err := os.Readlink(filepath.Join(dir, "bin", e.Name())); err == nil && t == "cni" {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}
