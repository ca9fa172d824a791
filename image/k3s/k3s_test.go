package k3s

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/image/cache"
	"github.com/basaltos/basalt/image/initbin"
	"github.com/basaltos/basalt/image/k3s/k3stest"
	"github.com/google/go-cmp/cmp"
)

func TestAssets(t *testing.T) {
	for _, tc := range []struct {
		arch boards.Arch
		want Assets
	}{
		{boards.AMD64, Assets{"k3s", "k3s-airgap-images-amd64.tar.zst", "sha256sum-amd64.txt"}},
		{boards.ARM64, Assets{"k3s-arm64", "k3s-airgap-images-arm64.tar.zst", "sha256sum-arm64.txt"}},
		{boards.ARMHF, Assets{"k3s-armhf", "k3s-airgap-images-arm.tar.zst", "sha256sum-arm.txt"}},
	} {
		got, err := AssetsFor(tc.arch)
		if err != nil || got != tc.want {
			t.Errorf("AssetsFor(%s) = %+v, %v; want %+v", tc.arch, got, err, tc.want)
		}
	}
	if got, want := AssetURL("", "v1.33.1+k3s1", "k3s"), "https://github.com/k3s-io/k3s/releases/download/v1.33.1%2Bk3s1/k3s"; got != want {
		t.Errorf("AssetURL = %s, want %s", got, want)
	}
}

func TestFindDataExtract(t *testing.T) {
	// Decoys before the archive: a zstd magic with garbage, and a real
	// zstd frame that is not the archive.
	exe := append([]byte("\x7fELF not really"), 0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x01, 0x02)
	other, _, err := k3stest.Archive([]k3stest.File{{Name: "bin/x", Data: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	exe = append(exe, other...)
	bin, hash, err := k3stest.Binary(exe, k3stest.DefaultFiles())
	if err != nil {
		t.Fatal(err)
	}
	d, err := FindData(bin)
	if err != nil {
		t.Fatal(err)
	}
	if d.Hash != hash || d.Offset+d.Size != int64(len(bin)) {
		t.Fatalf("FindData = %+v, want hash %s ending at %d", d, hash, len(bin))
	}
	dir := t.TempDir()
	if err := Extract(bin, d, dir); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "bin", "k3s")); err != nil || string(b) != "stand-in k3s-server\n" {
		t.Errorf("bin/k3s = %q, %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(dir, "bin", "containerd")); err != nil || l != "k3s" {
		t.Errorf("bin/containerd -> %q, %v", l, err)
	}
	cni, err := CNIPlugins(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"bandwidth", "bridge", "firewall", "flannel", "host-local", "loopback", "portmap"}, cni); diff != "" {
		t.Errorf("CNIPlugins (-want +got):\n%s", diff)
	}

	// A truncated archive no longer hashes to its name.
	if _, err := FindData(bin[:len(bin)-1]); !errors.Is(err, ErrNoData) {
		t.Errorf("FindData(truncated) = %v, want ErrNoData", err)
	}
	if _, err := FindData(exe); !errors.Is(err, ErrNoData) {
		t.Errorf("FindData(no archive) = %v, want ErrNoData", err)
	}
}

func TestExtractVerifiesSums(t *testing.T) {
	files := k3stest.DefaultFiles()
	list := fmt.Sprintf("%x k3s\n", sha256.Sum256([]byte("other content")))
	files = append(files, k3stest.File{Name: "bin/.sha256sums", Data: []byte(list)})
	z, hash, err := k3stest.Archive(files)
	if err != nil {
		t.Fatal(err)
	}
	err = Extract(z, Data{Hash: hash, Size: int64(len(z))}, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), ".sha256sums says") {
		t.Errorf("Extract with a wrong sum = %v, want a .sha256sums mismatch", err)
	}
}

func TestCheckBinary(t *testing.T) {
	exe, err := initbin.Get(boards.AMD64)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "k3s")
	if err := os.WriteFile(p, exe, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := CheckBinary(p, boards.AMD64); err != nil {
		t.Errorf("static amd64 binary: %v", err)
	}
	for _, a := range []boards.Arch{boards.ARM64, boards.ARMHF} {
		err := CheckBinary(p, a)
		if !errors.Is(err, ErrNotRunnable) || !strings.Contains(err.Error(), "the board's architecture is "+string(a)) {
			t.Errorf("amd64 binary on %s: %v", a, err)
		}
	}
	txt := filepath.Join(t.TempDir(), "k3s")
	os.WriteFile(txt, []byte("#!/bin/sh\n"), 0o755)
	if err := CheckBinary(txt, boards.AMD64); !errors.Is(err, ErrNotRunnable) {
		t.Errorf("script: %v", err)
	}
	// A dynamically linked host binary (the test binary itself, with cgo
	// off it may be static: then use /bin/ls).
	for _, dyn := range []string{"/bin/ls", "/usr/bin/env"} {
		if _, err := os.Stat(dyn); err != nil {
			continue
		}
		err := CheckBinary(dyn, boards.AMD64)
		if !errors.Is(err, ErrNotRunnable) || !strings.Contains(err.Error(), "no libc") {
			t.Errorf("%s: %v, want refused as dynamic", dyn, err)
		}
		break
	}
}

// release serves a k3s release layout: /v1.33.1%2Bk3s1/<asset>.
func release(t *testing.T, files map[string][]byte, serve func(w http.ResponseWriter, name string, data []byte) bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dir, name := filepath.Split(r.URL.EscapedPath())
		if dir != "/v1.33.1%2Bk3s1/" {
			http.NotFound(w, r)
			return
		}
		data, ok := files[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if serve != nil && serve(w, name, data) {
			return
		}
		w.Write(data)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestFetch(t *testing.T) {
	a, _ := AssetsFor(boards.AMD64)
	bin := []byte("k3s binary bytes")
	air := bytes.Repeat([]byte("airgap"), 1000)
	sums := func(lines ...string) []byte { return []byte(strings.Join(lines, "\n") + "\n") }
	good := sums(fmt.Sprintf("%x  k3s", sha256.Sum256(bin)), fmt.Sprintf("%x  k3s-airgap-images-amd64.tar.zst", sha256.Sum256(air)), fmt.Sprintf("%x  k3s-arm64", sha256.Sum256([]byte("x"))))
	for _, tc := range []struct {
		name    string
		files   map[string][]byte
		serve   func(w http.ResponseWriter, name string, data []byte) bool
		asset   string
		wantErr string
	}{
		{name: "good", files: map[string][]byte{"k3s": bin, a.Airgap: air, a.Checksums: good}, asset: "k3s"},
		{name: "good airgap", files: map[string][]byte{"k3s": bin, a.Airgap: air, a.Checksums: good}, asset: a.Airgap},
		{name: "wrong sha256", files: map[string][]byte{"k3s": []byte("tampered"), a.Checksums: good}, asset: "k3s", wantErr: "sha256 mismatch"},
		{name: "missing checksum line", files: map[string][]byte{"k3s": bin, a.Checksums: sums(fmt.Sprintf("%x  k3s-arm64", sha256.Sum256(bin)))}, asset: "k3s", wantErr: "no sha256 line for k3s"},
		{name: "404", files: map[string][]byte{a.Checksums: good}, asset: "k3s", wantErr: "404 Not Found"},
		{name: "no checksum file", files: map[string][]byte{"k3s": bin}, asset: "k3s", wantErr: "checksums: GET"},
		{name: "truncated download", files: map[string][]byte{a.Airgap: air, a.Checksums: good}, asset: a.Airgap, wantErr: "unexpected EOF",
			serve: func(w http.ResponseWriter, name string, data []byte) bool {
				if name != a.Airgap {
					return false
				}
				w.Header().Set("Content-Length", strconv.Itoa(len(data)))
				w.Write(data[:len(data)/2])
				return true
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := release(t, tc.files, tc.serve)
			c, err := cache.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			lock := &cache.Lock{}
			r := &Release{Base: srv.URL, Version: "v1.33.1+k3s1", Cache: c, Lock: lock}
			p, sum, err := r.Fetch(context.Background(), a, tc.asset)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Fetch = %v, want an error with %q", err, tc.wantErr)
				}
				if len(lock.Files) != 0 {
					t.Errorf("lock after a failed fetch: %+v", lock.Files)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tc.files[tc.asset]
			if got, _ := os.ReadFile(p); !bytes.Equal(got, want) || sum != fmt.Sprintf("%x", sha256.Sum256(want)) {
				t.Fatalf("fetched %s: %d bytes, sha256 %s", p, len(got), sum)
			}
			url := srv.URL + "/v1.33.1%2Bk3s1/" + tc.asset
			if s, ok := lock.File(url); !ok || s != sum {
				t.Errorf("lock %+v, want %s pinned to %s", lock.Files, url, sum)
			}
			// Second build: offline, from the cache by the locked sha256.
			srv.Close()
			c.Offline = true
			r2 := &Release{Base: srv.URL, Version: "v1.33.1+k3s1", Cache: c, Lock: lock}
			if p2, _, err := r2.Fetch(context.Background(), a, tc.asset); err != nil || p2 != p {
				t.Errorf("offline Fetch = %s, %v; want %s from the cache", p2, err, p)
			}
		})
	}
}

// TestBinaryVersion: the version is read from the binary's bytes, where Go
// packs strings back to back; k3s components' -k3sN versions and malformed
// marks do not count, the most frequent version wins.
func TestBinaryVersion(t *testing.T) {
	for _, tt := range []struct{ data, want string }{
		{"\x7fELF...containerdv2.0.4-k3s2\x00gitVersionv1.33.1+k3s1go1.24.2v1.33.1+k3s1linux/amd64", "v1.33.1+k3s1"},
		{"xv1.34.0-rc1+k3s2\x00v1.34.0-rc1+k3s2 v9.9+k3s1 v1.2.x+k3s3", "v1.34.0-rc1+k3s2"},
		{"k3s version v0.0.0+basalt-test-orchestrator (data %s)", ""},
		{"no version here +k3s", ""},
	} {
		p := filepath.Join(t.TempDir(), "k3s")
		if err := os.WriteFile(p, []byte(tt.data), 0o755); err != nil {
			t.Fatal(err)
		}
		got, err := BinaryVersion(p)
		if err != nil || got != tt.want {
			t.Errorf("BinaryVersion(%q) = %q, %v; want %q", tt.data, got, err, tt.want)
		}
	}
}
