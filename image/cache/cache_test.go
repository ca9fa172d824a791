package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func server(t *testing.T, files map[string][]byte) (*httptest.Server, *int) {
	hits := new(int)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*hits++
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv, hits
}

func TestGet(t *testing.T) {
	blob := []byte("a .deb")
	files := map[string][]byte{"/pool/a.deb": blob, "/dists/x/InRelease": []byte("v1")}
	srv, hits := server(t, files)
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, err := c.Get(ctx, srv.URL+"/pool/a.deb", int64(len(blob)), sum(blob))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, blob) || filepath.Base(p) != sum(blob) {
		t.Errorf("blob %s = %q", p, got)
	}
	// cached: no second request
	if _, err := c.Get(ctx, srv.URL+"/pool/a.deb", int64(len(blob)), sum(blob)); err != nil || *hits != 1 {
		t.Errorf("second Get: err %v, %d requests", err, *hits)
	}
	// a corrupted blob is detected on read, removed and fetched again
	os.WriteFile(p, []byte("bitrot"), 0o644)
	if _, ok := c.Blob(sum(blob)); ok {
		t.Error("corrupt blob accepted")
	}
	if _, err := os.Stat(p); err == nil {
		t.Error("corrupt blob not removed")
	}

	tests := []struct {
		name, url string
		size      int64
		sum       string
		want      string
	}{
		{"sha256 mismatch", "/pool/a.deb", int64(len(blob)), sum([]byte("other")), "/pool/a.deb: sha256 mismatch: want " + sum([]byte("other")) + ", got " + sum(blob)},
		{"size mismatch", "/pool/a.deb", 99, sum(blob), "/pool/a.deb: size 6, want 99"},
		{"404", "/pool/gone.deb", 1, sum(blob), "404 Not Found: not found on the server"},
		{"bad sum", "/pool/a.deb", 1, "xyz", `invalid sha256 "xyz"`},
	}
	for _, tt := range tests {
		os.Remove(p)
		_, err := c.Get(ctx, srv.URL+tt.url, tt.size, tt.sum)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
		if left, _ := os.ReadDir(filepath.Join(c.Dir, "tmp")); len(left) != 0 {
			t.Errorf("%s: temp files left: %v", tt.name, left)
		}
	}
	if _, ok := c.Blob(sum(blob)); ok {
		t.Error("a mismatching download was stored")
	}

	// GetURL: online it refetches, offline it serves the last copy.
	if b, err := c.GetURL(ctx, srv.URL+"/dists/x/InRelease"); err != nil || string(b) != "v1" {
		t.Fatalf("GetURL = %q, %v", b, err)
	}
	files["/dists/x/InRelease"] = []byte("v2")
	if b, _ := c.GetURL(ctx, srv.URL+"/dists/x/InRelease"); string(b) != "v2" {
		t.Errorf("GetURL online = %q, want v2", b)
	}
	c.Offline = true
	n := *hits
	if b, err := c.GetURL(ctx, srv.URL+"/dists/x/InRelease"); err != nil || string(b) != "v2" {
		t.Errorf("GetURL offline = %q, %v", b, err)
	}
	_, err = c.GetURL(ctx, srv.URL+"/dists/y/InRelease")
	if !errors.Is(err, ErrOffline) || !strings.Contains(err.Error(), "/dists/y/InRelease was never fetched") {
		t.Errorf("GetURL offline, never fetched: %v", err)
	}
	_, err = c.Get(ctx, srv.URL+"/pool/a.deb", int64(len(blob)), sum(blob))
	if !errors.Is(err, ErrOffline) || !strings.Contains(err.Error(), "/pool/a.deb (sha256 "+sum(blob)+") is not in the cache") {
		t.Errorf("Get offline: %v", err)
	}
	if *hits != n {
		t.Errorf("offline cache made %d requests", *hits-n)
	}
}

func TestDefaultDir(t *testing.T) {
	t.Setenv("BASALT_CACHE_DIR", "/x/y")
	if d, _ := DefaultDir(); d != "/x/y" {
		t.Errorf("DefaultDir = %q", d)
	}
	t.Setenv("BASALT_CACHE_DIR", "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if d, _ := DefaultDir(); d != "/xdg/basalt" {
		t.Errorf("DefaultDir = %q", d)
	}
}

func TestProgress(t *testing.T) {
	var out bytes.Buffer
	frozen := time.Unix(1000, 0) // no time passes: no rate to show
	p := &progress{w: &out, name: "k.deb", total: 3 << 20, now: func() time.Time { return frozen }}
	for range 3 {
		p.Write(make([]byte, 1<<20))
	}
	p.done()
	want := "\r\033[Kk.deb 1.0/3.0 MiB  33%\r\033[Kk.deb 2.0/3.0 MiB  66%\r\033[Kk.deb 3.0/3.0 MiB 100%\r\033[Kk.deb 3.0/3.0 MiB 100%\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	f, _ := os.Create(filepath.Join(t.TempDir(), "log"))
	defer f.Close()
	if TermProgress(f) != nil {
		t.Error("progress on a regular file")
	}
}
