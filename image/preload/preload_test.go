package preload

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/internal/testutil"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/zstd"
)

// multiArch pushes an index with one random image per board arch to an
// in-process registry on loopback and returns the tag reference and the
// per-arch manifest digests.
func multiArch(t *testing.T) (string, map[boards.Arch]v1.Hash) {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	ref := strings.TrimPrefix(srv.URL, "http://") + "/edge/app:1.0"
	idx := mutate.IndexMediaType(empty.Index, "application/vnd.oci.image.index.v1+json")
	digests := map[boards.Arch]v1.Hash{}
	for _, a := range []boards.Arch{boards.AMD64, boards.ARM64, boards.ARMHF} {
		img, err := random.Image(1024, 2)
		if err != nil {
			t.Fatal(err)
		}
		p := Platform(a)
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		digests[a] = d
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	r, _ := name.ParseReference(ref)
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	return ref, digests
}

func TestPullMultiArch(t *testing.T) {
	ref, digests := multiArch(t)
	ctx := context.Background()
	for _, a := range []boards.Arch{boards.AMD64, boards.ARM64, boards.ARMHF} {
		t.Run(string(a), func(t *testing.T) {
			p, err := Pull(ctx, ref, Platform(a), "")
			if err != nil {
				t.Fatal(err)
			}
			if p.Digest != digests[a] {
				t.Fatalf("Pull(%s) digest %s, want the %s manifest %s", a, p.Digest, a, digests[a])
			}
			// Pinned: the same manifest again; a wrong pin is refused.
			if _, err := Pull(ctx, ref, Platform(a), p.Digest.String()); err != nil {
				t.Errorf("pinned pull: %v", err)
			}
			other := digests[boards.AMD64]
			if a == boards.AMD64 {
				other = digests[boards.ARM64]
			}
			if _, err := Pull(ctx, ref, Platform(a), other.String()); err == nil || !strings.Contains(err.Error(), "the board needs") {
				t.Errorf("pull pinned to another arch's manifest = %v, want refused", err)
			}

			var b1, b2 bytes.Buffer
			if err := WriteOCI(&b1, p.Image, p.Name); err != nil {
				t.Fatal(err)
			}
			WriteOCI(&b2, p.Image, p.Name)
			if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
				t.Error("WriteOCI is not reproducible")
			}
			index := tarFile(t, b1.Bytes(), "index.json")
			var ix v1.IndexManifest
			if err := json.Unmarshal(index, &ix); err != nil {
				t.Fatal(err)
			}
			if len(ix.Manifests) != 1 || ix.Manifests[0].Digest != digests[a] || ix.Manifests[0].Annotations["io.containerd.image.name"] != p.Name {
				t.Errorf("index.json = %s", index)
			}
			if tarFile(t, b1.Bytes(), "blobs/sha256/"+digests[a].Hex) == nil {
				t.Error("manifest blob missing")
			}
			f := filepath.Join(t.TempDir(), "app.tar")
			os.WriteFile(f, b1.Bytes(), 0o644)
			if err := CheckArchive(f); err != nil {
				t.Errorf("CheckArchive(OCI tar): %v", err)
			}
		})
	}
}

func TestPullMissingPlatform(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/x86/only:1"
	img, _ := random.Image(512, 1) // random images are linux/amd64? set it
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	img, _ = mutate.ConfigFile(img, cf)
	r, _ := name.ParseReference(ref)
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	_, err := Pull(context.Background(), ref, Platform(boards.ARM64), "")
	if err == nil || !strings.Contains(err.Error(), "is for linux/amd64, the board needs linux/arm64") {
		t.Errorf("Pull(amd64-only image for arm64) = %v", err)
	}
}

func tarFile(t *testing.T, b []byte, name string) []byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == name {
			d, _ := io.ReadAll(tr)
			return d
		}
	}
}

func TestCheckArchive(t *testing.T) {
	dir := t.TempDir()
	img, _ := random.Image(512, 1)
	tag, _ := name.NewTag("example.com/app:1")
	var docker bytes.Buffer
	if err := tarball.Write(tag, img, &docker); err != nil {
		t.Fatal(err)
	}
	zst := func(window int) []byte {
		var b bytes.Buffer
		enc, _ := zstd.NewWriter(&b, zstd.WithWindowSize(window), zstd.WithEncoderConcurrency(1), zstd.WithSingleSegment(false))
		enc.Write(docker.Bytes())
		enc.Close()
		return b.Bytes()
	}
	var plain bytes.Buffer
	tw := tar.NewWriter(&plain)
	tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: 2})
	tw.Write([]byte("hi"))
	tw.Close()
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"docker.tar", docker.Bytes(), ""},
		{"docker.tar.zst", zst(8 << 20), ""},
		// A frame header declaring a 64 MiB window (zstd --long=26 on a stream).
		{"wide.tar.zst", append([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 16 << 3}, zst(1<<20)...), "zstd window 64 MiB"},
		{"plain.tar", plain.Bytes(), "neither a docker-archive"},
		{"image.zip", docker.Bytes(), "k3s imports .tar"},
		{"junk.tar.zst", []byte("not zstd at all"), "not zstd data"},
	} {
		p := filepath.Join(dir, tc.name)
		os.WriteFile(p, tc.data, 0o644)
		err := CheckArchive(p)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckArchive(%s) = %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestZstdWindowRealTool checks the window read from archives made by the
// zstd tool from a stream (no content size: the header carries the window).
func TestZstdWindowRealTool(t *testing.T) {
	zstdBin := testutil.NeedTool(t, "zstd")
	img, _ := random.Image(4096, 1)
	tag, _ := name.NewTag("example.com/app:1")
	var docker bytes.Buffer
	if err := tarball.Write(tag, img, &docker); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		long int
		ok   bool
	}{{25, true}, {26, false}} {
		cmd := exec.Command(zstdBin, "-q", "-c", fmt.Sprintf("--long=%d", tc.long))
		cmd.Stdin = bytes.NewReader(docker.Bytes())
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "app.tar.zst")
		os.WriteFile(p, out, 0o644)
		err = CheckArchive(p)
		if tc.ok != (err == nil) {
			t.Errorf("zstd --long=%d: CheckArchive = %v, want ok=%v", tc.long, err, tc.ok)
		}
	}
}

// FuzzZstdWindow: the header of a local .tar.zst is untrusted.
func FuzzZstdWindow(f *testing.F) {
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x80})
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0xe4, 0x00, 0x01})
	f.Fuzz(func(t *testing.T, h []byte) {
		w, err := ZstdWindow(h)
		if err == nil && len(h) >= 6 && h[4]&0x20 == 0 && w > 1<<42 {
			t.Fatalf("window %d above zstd's largest window descriptor", w)
		}
	})
}

// TestPullDockerCredentials: a registry that wants basic auth is pulled
// from with the credentials of $DOCKER_CONFIG/config.json (the host's
// docker login), and refused without them.
func TestPullDockerCredentials(t *testing.T) {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "ops" || p != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ref := host + "/private/app:1"
	img, _ := random.Image(512, 1)
	r, _ := name.ParseReference(ref)
	if err := remote.Write(r, img, remote.WithAuth(&authn.Basic{Username: "ops", Password: "s3cret"})); err != nil {
		t.Fatal(err)
	}
	cfg := t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfg)
	if _, err := Pull(context.Background(), ref, Platform(boards.AMD64), ""); err == nil {
		t.Fatal("pull without credentials succeeded")
	}
	auth := base64.StdEncoding.EncodeToString([]byte("ops:s3cret"))
	os.WriteFile(filepath.Join(cfg, "config.json"), []byte(`{"auths":{"`+host+`":{"auth":"`+auth+`"}}}`), 0o600)
	if _, err := Pull(context.Background(), ref, Platform(boards.AMD64), ""); err != nil {
		t.Fatalf("pull with docker credentials: %v", err)
	}
}
