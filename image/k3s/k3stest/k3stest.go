// Package k3stest makes stand-ins for k3s release files, for tests: a data
// archive in k3s' format (a zstd tar of ./bin and ./etc with .sha256sums and
// .links, as k3s scripts/package-cli makes it), a stand-in binary that
// carries it under its <sha256>.tar.zst name, and a release directory with
// sha256sum files. Stand-ins run nothing k3s does; they only have its layout.
package k3stest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// File is one entry of a data archive: Target set means a symlink.
type File struct {
	Name   string // relative, e.g. "bin/k3s"
	Data   []byte
	Target string
}

// DefaultFiles is a small data dir in k3s' layout: bin/k3s, the containerd
// and CNI multicall links, bin/aux/, etc/.
func DefaultFiles() []File {
	fs := []File{
		{Name: "bin/k3s", Data: []byte("stand-in k3s-server\n")},
		{Name: "bin/cni", Data: []byte("stand-in cni\n")},
		{Name: "bin/runc", Data: []byte("stand-in runc\n")},
		{Name: "bin/containerd-shim-runc-v2", Data: []byte("stand-in shim\n")},
		{Name: "bin/aux/iptables", Data: []byte("stand-in iptables\n")},
		{Name: "etc/crictl-template.yaml", Data: []byte("runtime-endpoint: x\n")},
	}
	for _, l := range []string{"containerd", "crictl", "ctr", "kubectl", "k3s-agent", "k3s-server"} {
		fs = append(fs, File{Name: "bin/" + l, Target: "k3s"})
	}
	for _, l := range []string{"bandwidth", "bridge", "firewall", "flannel", "host-local", "loopback", "portmap"} {
		fs = append(fs, File{Name: "bin/" + l, Target: "cni"})
	}
	return fs
}

// Archive returns files as a k3s data archive (.tar.zst) and its sha256 hex,
// with bin/.sha256sums and bin/.links added as k3s does (unless files has
// its own bin/.sha256sums).
func Archive(files []File) ([]byte, string, error) {
	var sums, links []string
	own := false
	for _, f := range files {
		own = own || f.Name == "bin/.sha256sums"
	}
	for _, f := range files {
		rel, ok := strings.CutPrefix(f.Name, "bin/")
		if !ok {
			continue
		}
		if f.Target != "" {
			links = append(links, rel+" "+f.Target)
			continue
		}
		s := sha256.Sum256(f.Data)
		sums = append(sums, hex.EncodeToString(s[:])+" "+rel)
	}
	sort.Strings(sums)
	sort.Strings(links)
	all := append(append([]File{}, files...), File{Name: "bin/.links", Data: []byte(strings.Join(links, "\n") + "\n")})
	if !own {
		all = append(all, File{Name: "bin/.sha256sums", Data: []byte(strings.Join(sums, "\n") + "\n")})
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	dirs := map[string]bool{}
	for _, f := range all {
		for d := filepath.Dir(f.Name); d != "." && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Name: "./" + d + "/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
				return nil, "", err
			}
		}
		h := &tar.Header{Name: "./" + f.Name, Mode: 0o755, Size: int64(len(f.Data)), Typeflag: tar.TypeReg}
		if f.Target != "" {
			h = &tar.Header{Name: "./" + f.Name, Mode: 0o777, Typeflag: tar.TypeSymlink, Linkname: f.Target}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, "", err
		}
		if f.Target == "" {
			if _, err := tw.Write(f.Data); err != nil {
				return nil, "", err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	enc, err := zstd.NewWriter(nil, zstd.WithWindowSize(1<<20), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, "", err
	}
	z := enc.EncodeAll(tb.Bytes(), nil)
	s := sha256.Sum256(z)
	return z, hex.EncodeToString(s[:]), nil
}

// Binary returns a stand-in k3s binary: the static ELF exe with the data
// archive and its file name (<hash>.tar.zst) inside, where go:embed puts
// them in a real k3s (here appended, which the builder's finder treats alike).
func Binary(exe []byte, files []File) ([]byte, string, error) {
	z, hash, err := Archive(files)
	if err != nil {
		return nil, "", err
	}
	b := append(append([]byte{}, exe...), []byte("\x00embed/"+hash+".tar.zst\x00")...)
	return append(b, z...), hash, nil
}

// Release writes a k3s release directory for version's arch into dir:
// binary under its release name, the air-gap archive airgap (nil: none) and
// sha256sum-ARCH.txt listing both.
func Release(dir, binName string, bin []byte, airgapName string, airgap []byte, sumsName string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var sums strings.Builder
	for _, f := range []struct {
		name string
		data []byte
	}{{binName, bin}, {airgapName, airgap}} {
		if f.data == nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o755); err != nil {
			return err
		}
		s := sha256.Sum256(f.data)
		fmt.Fprintf(&sums, "%x  %s\n", s, f.name)
	}
	return os.WriteFile(filepath.Join(dir, sumsName), []byte(sums.String()), 0o644)
}
