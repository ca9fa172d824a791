package cli

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/basaltos/basalt/contract/bundle"
	"github.com/basaltos/basalt/internal/errclass"
)

// writeTestBundle writes an unsigned bundle of version v for board with
// small fake payloads (named so: no real root is needed to test the verbs).
func writeTestBundle(t *testing.T, path, v, board string) {
	t.Helper()
	writeTestBundleOf(t, path, v, board, []bundle.Payload{{Name: bundle.Kernel, Kind: bundle.Kernel}, {Name: bundle.Initrd, Kind: bundle.Initrd}})
}

// writeTestBundleOf is writeTestBundle with these boot payloads after the
// rootfs (each one's content "fake NAME").
func writeTestBundleOf(t *testing.T, path, v, board string, boot []bundle.Payload) {
	t.Helper()
	pl := map[string][]byte{bundle.RootFS: bytes.Repeat([]byte("fake root "), 1000)}
	m := bundle.Manifest{Format: bundle.FormatVersion, Image: "demo", Version: v, Board: board, Compat: "demo", Cmdline: "basalt.slot=${slot}"}
	for _, p := range append([]bundle.Payload{{Name: bundle.RootFS, Kind: bundle.RootFS}}, boot...) {
		if pl[p.Name] == nil {
			pl[p.Name] = []byte("fake " + p.Name)
		}
		s := sha256.Sum256(pl[p.Name])
		p.Size, p.SHA256 = int64(len(pl[p.Name])), hex.EncodeToString(s[:])
		m.Payloads = append(m.Payloads, p)
	}
	raw, err := bundle.MarshalManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := bundle.Write(f, raw, nil, func(p bundle.Payload) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(pl[p.Name])), nil }); err != nil {
		t.Fatal(err)
	}
}

func TestKeygenBundleSignVerify(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	if code, out, errs := runCLI("keygen", "-o", keys); code != 0 {
		t.Fatalf("keygen: %d %s %s", code, out, errs)
	}
	fi, err := os.Stat(filepath.Join(keys, keyPrivateName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key: %v %v", fi, err)
	}
	if code, _, _ := runCLI("keygen", "-o", keys); code != errclass.ExitInvalid {
		t.Errorf("keygen over existing keys: exit %d, want %d", code, errclass.ExitInvalid)
	}
	other := filepath.Join(dir, "other")
	runCLI("keygen", "-o", other)

	b := filepath.Join(dir, "demo-1.0.0-qemu-x86_64.bundle")
	writeTestBundle(t, b, "1.0.0", "qemu-x86_64")
	pub := filepath.Join(keys, keyPublicName)
	if code, _, errs := runCLI("bundle", "verify", b, "--key", pub); code != errclass.ExitInvalid || !strings.Contains(errs, "not signed") {
		t.Errorf("verify unsigned: %d %s", code, errs)
	}
	if code, out, errs := runCLI("bundle", "sign", b, "--key", filepath.Join(keys, keyPrivateName)); code != 0 {
		t.Fatalf("sign: %d %s %s", code, out, errs)
	}
	if code, out, errs := runCLI("bundle", "verify", b, "--key", pub); code != 0 || !strings.Contains(out, "signature and payloads ok") {
		t.Errorf("verify: %d %s %s", code, out, errs)
	}
	if code, _, errs := runCLI("bundle", "verify", b, "--key", filepath.Join(other, keyPublicName)); code != errclass.ExitInvalid || !strings.Contains(errs, "signature does not verify") {
		t.Errorf("verify with an unknown key: %d %s", code, errs)
	}
	if code, _, errs := runCLI("bundle", "verify", b, "--key", filepath.Join(other, keyPublicName), "--key", pub); code != 0 {
		t.Errorf("verify with two keys (rotation): %d %s", code, errs)
	}
	if code, out, _ := runCLI("bundle", "inspect", b); code != 0 || !strings.Contains(out, "demo 1.0.0 for board qemu-x86_64") || !strings.Contains(out, `"sha256"`) {
		t.Errorf("inspect: %d %s", code, out)
	}
}

// TestBundleSecureBoot: verify and inspect show a Secure Boot bundle's
// per-slot UKI payloads.
func TestBundleSecureBoot(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	runCLI("keygen", "-o", keys)
	b := filepath.Join(dir, "demo-1.0.0-qemu-x86_64.bundle")
	writeTestBundleOf(t, b, "1.0.0", "qemu-x86_64", []bundle.Payload{{Name: bundle.UKIName("a"), Kind: bundle.UKI}, {Name: bundle.UKIName("b"), Kind: bundle.UKI}})
	if code, out, errs := runCLI("bundle", "sign", b, "--key", filepath.Join(keys, keyPrivateName)); code != 0 {
		t.Fatalf("sign: %d %s %s", code, out, errs)
	}
	code, out, errs := runCLI("bundle", "verify", b, "--key", filepath.Join(keys, keyPublicName))
	if code != 0 || !strings.Contains(out, "uki-a ") || !strings.Contains(out, "uki-b ") || !strings.Contains(out, "signature and payloads ok") {
		t.Errorf("verify: %d %s %s", code, out, errs)
	}
	if code, out, _ := runCLI("bundle", "inspect", b); code != 0 || !strings.Contains(out, `"name": "uki-b"`) || !strings.Contains(out, `"kind": "uki"`) || strings.Contains(out, `"kernel"`) {
		t.Errorf("inspect: %d %s", code, out)
	}
}

func TestServe(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "stable"), 0o755)
	for _, v := range []string{"1.0.0", "1.10.0", "1.9.0"} {
		writeTestBundle(t, filepath.Join(dir, "stable", "demo-"+v+"-qemu-x86_64.bundle"), v, "qemu-x86_64")
	}
	writeTestBundle(t, filepath.Join(dir, "stable", "demo-0.5.0-qemu-armv7.bundle"), "0.5.0", "qemu-armv7")
	os.WriteFile(filepath.Join(dir, "stable", "junk.bundle"), []byte("not a tar"), 0o644)
	srv := httptest.NewServer(&channelServer{dir: dir})
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/stable/" + bundle.IndexName)
	if err != nil {
		t.Fatal(err)
	}
	var ix bundle.Index
	json.NewDecoder(resp.Body).Decode(&ix)
	resp.Body.Close()
	if len(ix.Bundles) != 2 || ix.Bundles[0].Board != "qemu-armv7" || ix.Bundles[1].Version != "1.10.0" {
		t.Fatalf("index %+v", ix)
	}
	e, ok := ix.Find("qemu-x86_64", "demo")
	if !ok {
		t.Fatal("no x86 entry")
	}
	if resp, _ := http.Get(srv.URL + "/" + bundle.IndexName); resp.StatusCode != http.StatusNotFound {
		t.Errorf("index of a directory without bundles: %s", resp.Status)
	}

	whole, _ := os.ReadFile(filepath.Join(dir, "stable", e.File))
	req, _ := http.NewRequest("GET", srv.URL+"/stable/"+e.File, nil)
	req.Header.Set("Range", "bytes=1000-")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, whole[1000:]) || etag != `"`+e.ManifestSHA256+`"` {
		t.Errorf("range: %s, %d bytes, etag %s", resp.Status, len(part), etag)
	}
	req.Header.Del("Range")
	req.Header.Set("If-None-Match", etag)
	if resp, _ := http.DefaultClient.Do(req); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %s", resp.Status)
	}
	// The bundle is a tar: any tar reader lists manifest.json first.
	tr := tar.NewReader(bytes.NewReader(whole))
	if h, err := tr.Next(); err != nil || h.Name != bundle.ManifestName {
		t.Errorf("first member %v %v", h, err)
	}

	if code, out, errs := runCLI("serve", dir, "--write-index"); code != 0 || !strings.Contains(out, "2 bundles") {
		t.Errorf("--write-index: %d %s %s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "stable", bundle.IndexName)); err != nil {
		t.Error(err)
	}
}
