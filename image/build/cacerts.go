package build

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/basaltos/basalt/image/debian"
)

// caPackage ships the Mozilla CA certificates k3s and containerd trust
// (registries, the HelmChart controller's downloads, an agent's server over
// a public name).
const caPackage = "ca-certificates"

// caBundle is the bundle update-ca-certificates would write, where Go's
// crypto/x509 (k3s, containerd) reads it on Linux.
const caBundle = "etc/ssl/certs/ca-certificates.crt"

// readCACerts builds the bundle from the package's
// usr/share/ca-certificates/mozilla/*.crt, in name order, as
// update-ca-certificates does with its default configuration (every
// certificate of the package enabled).
func readCACerts(f debian.Fetched) ([]byte, error) {
	d, err := debian.OpenDeb(f.Path)
	if err != nil {
		return nil, err
	}
	certs := map[string][]byte{}
	err = d.Extract(func(hdr *tar.Header, r io.Reader) error {
		if hdr.Typeflag != tar.TypeReg || !strings.HasPrefix(hdr.Name, "usr/share/ca-certificates/") || !strings.HasSuffix(hdr.Name, ".crt") {
			return nil
		}
		b, err := io.ReadAll(r)
		certs[hdr.Name] = b
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s %s has no certificates under usr/share/ca-certificates", f.Package.Name, f.Version)
	}
	names := make([]string, 0, len(certs))
	for n := range certs {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	for _, n := range names {
		buf.Write(bytes.TrimRight(certs[n], "\n"))
		buf.WriteByte('\n')
	}
	return buf.Bytes(), nil
}
