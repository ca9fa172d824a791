package debian

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ulikunitz/xz"
)

// testNow is the fake clock: fake InRelease files are dated an hour before.
var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func newKey(t testing.TB, name string) *openpgp.Entity {
	t.Helper()
	cfg := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Time: func() time.Time { return testNow.Add(-24 * time.Hour) }}
	e, err := openpgp.NewEntity(name, "", name+"@example.org", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// buildTar returns a tar of files (name -> content; a name ending in "/" is
// a directory, content "->x" makes a symlink to x), compressed with xz.
func buildTarXZ(t testing.TB, files map[string]string) []byte {
	t.Helper()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, n := range names {
		c := files[n]
		h := &tar.Header{Name: "./" + n, Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg}
		switch {
		case strings.HasSuffix(n, "/"):
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		case strings.HasPrefix(c, "->"):
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, c[2:], 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(c))
		}
	}
	tw.Close()
	var out bytes.Buffer
	xw, err := xz.NewWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	xw.Write(raw.Bytes())
	xw.Close()
	return out.Bytes()
}

// buildAr returns an ar archive of members (name, data) in order.
func buildAr(members ...[2]string) []byte {
	var b bytes.Buffer
	b.WriteString("!<arch>\n")
	for _, m := range members {
		fmt.Fprintf(&b, "%-16s%-12s%-6s%-6s%-8s%-10d`\n", m[0], "0", "0", "0", "100644", len(m[1]))
		b.WriteString(m[1])
		if len(m[1])%2 == 1 {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// fakePkg is a package of the fake mirror.
type fakePkg struct {
	name, version, depends string
	component              string            // "" is main
	files                  map[string]string // data.tar content
}

func (p fakePkg) deb(t testing.TB) []byte {
	ctl := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: amd64\n", p.name, p.version)
	if p.depends != "" {
		ctl += "Depends: " + p.depends + "\n"
	}
	return buildAr(
		[2]string{"debian-binary", "2.0\n"},
		[2]string{"control.tar.xz", string(buildTarXZ(t, map[string]string{"control": ctl}))},
		[2]string{"data.tar.xz", string(buildTarXZ(t, p.files))},
	)
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// fakeMirror serves files from memory on a loopback HTTP server and counts
// requests.
type fakeMirror struct {
	srv   *httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	hits  int
}

func newFakeMirror(t testing.TB) *fakeMirror {
	m := &fakeMirror{files: map[string][]byte{}}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.hits++
		b, ok := m.files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *fakeMirror) set(path string, b []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[path] = b
}

func (m *fakeMirror) get(path string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.files[path]
}

// suiteOpts tweak a fake suite.
type suiteOpts struct {
	signer     *openpgp.Entity // nil: unsigned InRelease
	validUntil string
}

// addSuite publishes pkgs as suite below prefix ("/debian") and returns the
// Source for it.
func (m *fakeMirror) addSuite(t testing.TB, prefix, suite string, pkgs []fakePkg, o suiteOpts) Source {
	t.Helper()
	idxs := map[string]*bytes.Buffer{"main": {}, "non-free-firmware": {}}
	for _, p := range pkgs {
		deb := p.deb(t)
		comp := p.component
		if comp == "" {
			comp = "main"
		}
		idx := idxs[comp]
		fn := fmt.Sprintf("pool/%s/%s_%s_amd64.deb", comp, p.name, strings.ReplaceAll(p.version, ":", "%3a"))
		m.set(prefix+"/"+fn, deb)
		fmt.Fprintf(idx, "Package: %s\nVersion: %s\nArchitecture: amd64\n", p.name, p.version)
		if p.depends != "" {
			fmt.Fprintf(idx, "Depends: %s\n", p.depends)
		}
		fmt.Fprintf(idx, "Description: test package\n multi-line\n .\n description\nFilename: %s\nSize: %d\nSHA256: %s\n\n", fn, len(deb), sum(deb))
	}
	dists := prefix + "/dists/" + suite
	rel := fmt.Sprintf("Origin: Debian\nSuite: %s\nCodename: %s\nDate: %s\n", suite, suite, testNow.Add(-time.Hour).Format(time.RFC1123))
	if o.validUntil != "" {
		rel += "Valid-Until: " + o.validUntil + "\n"
	}
	rel += "Architectures: amd64\nComponents: main non-free-firmware\nSHA256:\n"
	for _, comp := range []string{"main", "non-free-firmware"} {
		var xzb bytes.Buffer
		xw, _ := xz.NewWriter(&xzb)
		xw.Write(idxs[comp].Bytes())
		xw.Close()
		m.set(dists+"/"+comp+"/binary-amd64/Packages.xz", xzb.Bytes())
		rel += fmt.Sprintf(" %s %d %s/binary-amd64/Packages.xz\n", sum(xzb.Bytes()), xzb.Len(), comp)
	}
	m.set(dists+"/InRelease", clearSign(t, o.signer, rel))
	return Source{Mirror: m.srv.URL + prefix, Suite: suite}
}

func clearSign(t testing.TB, e *openpgp.Entity, text string) []byte {
	if e == nil {
		return []byte(text)
	}
	var b bytes.Buffer
	w, err := clearsign.Encode(&b, e.PrivateKey, &packet.Config{Time: func() time.Time { return testNow.Add(-time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(text))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
