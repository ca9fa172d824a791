// Package debiantest is a fake Debian mirror for tests outside image/debian:
// signed suites served from memory on a loopback HTTP server, with .debs
// packed from the files a test gives (real kernels, real bootloaders), so
// that `basalt fetch` and `basalt build` can run their online path offline.
// Tests only: nothing in basalt's binaries imports it.
package debiantest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ulikunitz/xz"
)

// Pkg is a package of the fake mirror.
type Pkg struct {
	Name, Version, Arch string // Arch "" is amd64
	Component           string // "" is main; the other is non-free-firmware
	Depends             string
	Files               map[string][]byte // data.tar content by path ("boot/vmlinuz-x")
}

// FakeMirror serves suites signed by its own key; Keyring verifies them.
type FakeMirror struct {
	URL     string // the mirror's base URL (no trailing slash)
	Keyring openpgp.EntityList

	mu    sync.Mutex
	files map[string][]byte
	gets  map[string]int
}

// NewFakeMirror starts a mirror that is closed when t ends.
func NewFakeMirror(t testing.TB) *FakeMirror {
	t.Helper()
	cfg := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Time: func() time.Time { return time.Now().Add(-24 * time.Hour) }}
	key, err := openpgp.NewEntity("fake archive", "", "archive@example.org", cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := &FakeMirror{Keyring: openpgp.EntityList{key}, files: map[string][]byte{}, gets: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		b, ok := m.files[r.URL.Path]
		m.gets[r.URL.Path]++
		m.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	m.URL = srv.URL + "/debian"
	return m
}

// Gets returns how many requests asked for path below the mirror ("pool/...").
func (m *FakeMirror) Gets(path string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gets["/debian/"+path]
}

// AddSuite publishes pkgs as suite (all of one arch) with a signed InRelease.
func (m *FakeMirror) AddSuite(t testing.TB, suite, arch string, pkgs ...Pkg) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	idxs := map[string]*bytes.Buffer{"main": {}, "non-free-firmware": {}}
	for _, p := range pkgs {
		comp := p.Component
		if comp == "" {
			comp = "main"
		}
		idx := idxs[comp]
		deb := p.deb(t, arch)
		fn := fmt.Sprintf("pool/%s/%s_%s_%s.deb", comp, p.Name, p.Version, arch)
		m.files["/debian/"+fn] = deb
		fmt.Fprintf(idx, "Package: %s\nVersion: %s\nArchitecture: %s\n", p.Name, p.Version, arch)
		if p.Depends != "" {
			fmt.Fprintf(idx, "Depends: %s\n", p.Depends)
		}
		fmt.Fprintf(idx, "Filename: %s\nSize: %d\nSHA256: %s\n\n", fn, len(deb), sum(deb))
	}
	dists := "/debian/dists/" + suite
	rel := fmt.Sprintf("Origin: Debian\nSuite: %s\nCodename: %s\nDate: %s\nArchitectures: %s\nComponents: main non-free-firmware\nSHA256:\n",
		suite, suite, time.Now().Add(-time.Hour).UTC().Format(time.RFC1123), arch)
	for _, comp := range []string{"main", "non-free-firmware"} {
		var xzb bytes.Buffer
		xw, err := xz.NewWriter(&xzb)
		if err != nil {
			t.Fatal(err)
		}
		xw.Write(idxs[comp].Bytes())
		xw.Close()
		name := comp + "/binary-" + arch + "/Packages.xz"
		m.files[dists+"/"+name] = xzb.Bytes()
		rel += fmt.Sprintf(" %s %d %s\n", sum(xzb.Bytes()), xzb.Len(), name)
	}
	var b bytes.Buffer
	w, err := clearsign.Encode(&b, m.Keyring[0].PrivateKey, &packet.Config{Time: func() time.Time { return time.Now().Add(-time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(rel))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	m.files[dists+"/InRelease"] = b.Bytes()
}

// deb packs p as a .deb with uncompressed control.tar and data.tar.
func (p Pkg) deb(t testing.TB, arch string) []byte {
	t.Helper()
	ctl := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: %s\n", p.Name, p.Version, arch)
	var deb bytes.Buffer
	deb.WriteString("!<arch>\n")
	for _, m := range []struct {
		name string
		data []byte
	}{
		{"debian-binary", []byte("2.0\n")},
		{"control.tar", tarOf(t, map[string][]byte{"control": []byte(ctl)})},
		{"data.tar", tarOf(t, p.Files)},
	} {
		fmt.Fprintf(&deb, "%-16s%-12d%-6d%-6d%-8o%-10d`\n", m.name, 0, 0, 0, 0o644, len(m.data))
		deb.Write(m.data)
		if len(m.data)%2 == 1 {
			deb.WriteByte('\n')
		}
	}
	return deb.Bytes()
}

func tarOf(t testing.TB, files map[string][]byte) []byte {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: "./" + n, Mode: 0o755, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(files[n])
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
