package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/image/cache"
	"github.com/basaltos/basalt/image/debian/debiantest"
	"github.com/basaltos/basalt/image/disk"
	"github.com/basaltos/basalt/image/initbin"
	"github.com/basaltos/basalt/image/k3s"
	"github.com/basaltos/basalt/image/k3s/k3stest"
	"github.com/basaltos/basalt/image/kmod"
	"github.com/basaltos/basalt/image/spec"
	"github.com/basaltos/basalt/internal/errclass"
	"github.com/basaltos/basalt/internal/testutil"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/zstd"
)

// k3sRelease writes a stand-in k3s release for amd64 into dir (the device
// binary as the static ELF, carrying a k3s data archive; a small air-gap
// archive) and returns the data hash.
func k3sRelease(t testing.TB, dir string) (hash string, airgap []byte) {
	t.Helper()
	exe, err := initbin.Get(boards.AMD64)
	if err != nil {
		t.Fatal(err)
	}
	bin, hash, err := k3stest.Binary(exe, k3stest.DefaultFiles())
	if err != nil {
		t.Fatal(err)
	}
	airgap = airgapArchive(t, 64<<10)
	a, _ := k3s.AssetsFor(boards.AMD64)
	if err := k3stest.Release(dir, a.Binary, bin, a.Airgap, airgap, a.Checksums); err != nil {
		t.Fatal(err)
	}
	return hash, airgap
}

// airgapArchive is a stand-in for k3s' air-gap archive in its format: a
// docker-archive (docker save) of one image, rancher/mirrored-pause:3.6,
// whose one layer holds size random bytes, zstd-compressed.
func airgapArchive(t testing.TB, size int64) []byte {
	t.Helper()
	img, err := random.Image(size, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("docker.io/rancher/mirrored-pause:3.6")
	var b bytes.Buffer
	zw, _ := zstd.NewWriter(&b, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err := tarball.Write(tag, img, zw); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// caMirror serves a fake Debian mirror with ca-certificates (the one
// Debian input of a k3s image whose kernel and bootloader are local) and
// returns the keyring its indexes are signed with.
func caMirror(t testing.TB) openpgp.KeyRing {
	t.Helper()
	const cert = "/usr/share/ca-certificates/mozilla/ISRG_Root_X1.crt"
	testutil.NeedFile(t, cert, "apt-get install ca-certificates")
	m := debiantest.NewFakeMirror(t)
	m.AddSuite(t, spec.DefaultSuite, "amd64", debiantest.Pkg{Name: caPackage, Version: "1", Files: map[string][]byte{
		"usr/share/ca-certificates/mozilla/ISRG_Root_X1.crt": must(os.ReadFile(cert)),
		"usr/share/ca-certificates/mozilla/Other.crt":        []byte("-----BEGIN CERTIFICATE-----\nstand-in\n-----END CERTIFICATE-----\n"),
	}})
	m.AddSuite(t, spec.DefaultSuite+"-updates", "amd64")
	t.Setenv("BASALT_DEBIAN_SECURITY_MIRROR", "none")
	t.Setenv("BASALT_DEBIAN_MIRROR", m.URL)
	return m.Keyring
}

// rootListing returns `unsquashfs -lls` of the image's root-a.
func rootListing(t testing.TB, img string) string {
	t.Helper()
	l, err := disk.Read(img)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range l.Partitions {
		if p.Name == contract.PartRootA {
			return run(t, "unsquashfs", "-lls", "-d", "", extract(t, img, p))
		}
	}
	t.Fatal("no root-a")
	return ""
}

const k3sSpec = "orchestrator: {kind: k3s, version: v1.33.1+k3s1}\n"

func TestBuildK3sLocal(t *testing.T) {
	rel := t.TempDir()
	hash, airgap := k3sRelease(t, rel)
	t.Setenv(K3sEnv, rel)
	keyring := caMirror(t)
	dir := t.TempDir()
	s := writeSpec(t, dir, k3sSpec)
	var sums []string
	for i := range 2 {
		arts, err := Build(context.Background(), s, Options{OutDir: filepath.Join(dir, fmt.Sprint("out", i)), CacheDir: filepath.Join(dir, "cache"), Keyring: keyring})
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, arts[0].SHA256)
		if i > 0 {
			break
		}
		ls := rootListing(t, arts[0].Image)
		sum := sha256.Sum256(airgap)
		data := contract.K3sRootData
		for _, want := range []string{
			" " + contract.K3sBin + "\n",
			"/usr/bin/kubectl -> k3s\n",
			contract.MountPath + " -> ../sbin/basalt-init\n",
			contract.UmountPath + " -> ../sbin/basalt-init\n",
			data + "/" + hash + "/bin/k3s\n",
			data + "/" + hash + "/bin/containerd -> k3s\n",
			data + "/" + hash + "/bin/aux/iptables\n",
			data + "/" + hash + "/etc/crictl-template.yaml\n",
			data + "/current -> " + hash + "\n",
			data + "/cni/cni -> ../" + hash + "/bin/cni\n",
			data + "/cni/host-local -> ../" + hash + "/bin/cni\n",
			fmt.Sprintf("%s/k3s-airgap-images-amd64-%x.tar.zst\n", contract.K3sRootImages, sum[:6]),
			" /" + caBundle + "\n",
		} {
			if !strings.Contains(ls, want) {
				t.Errorf("root listing lacks %q", want)
			}
		}
		if t.Failed() {
			t.Logf("unsquashfs -lls:\n%s", ls)
		}
	}
	if sums[0] != sums[1] {
		t.Errorf("two builds with k3s: sha256 %s and %s, want the same", sums[0], sums[1])
	}
}

func TestBuildK3sFetch(t *testing.T) {
	rel := t.TempDir()
	k3sRelease(t, rel)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dir, name := path.Split(r.URL.EscapedPath())
		if dir != "/v1.33.1%2Bk3s1/" {
			http.NotFound(w, r)
			return
		}
		http.ServeFile(w, r, filepath.Join(rel, name))
	}))
	defer srv.Close()
	dir := t.TempDir()
	s := writeSpec(t, dir, "orchestrator: {kind: k3s, version: v1.33.1+k3s1, mirror: "+srv.URL+"}\n")
	o := Options{OutDir: filepath.Join(dir, "out"), CacheDir: filepath.Join(dir, "cache"), Keyring: caMirror(t)}
	// basalt fetch: the same inputs as the build, into the cache and lock.
	_, other, err := Fetch(context.Background(), s, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(other) != 2 || other[0].Name != "qemu-x86_64 k3s" || other[1].Kind != "k3s-airgap" {
		t.Errorf("Fetch k3s inputs = %+v", other)
	}
	l, err := cache.ReadLock(filepath.Join(dir, cache.LockName))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Files) != 2 || !strings.HasSuffix(l.Files[0].URL, "/v1.33.1%2Bk3s1/k3s") {
		t.Errorf("lock files = %+v, want k3s and its air-gap archive", l.Files)
	}
	// The build offline, with the server gone: from the cache by the lock.
	srv.Close()
	o.Offline = true
	o.OutDir = filepath.Join(dir, "out2")
	if _, err := Build(context.Background(), s, o); err != nil {
		t.Fatalf("offline build: %v", err)
	}
}

func TestBuildK3sRefused(t *testing.T) {
	dir := t.TempDir()
	arm, err := initbin.Get(boards.ARM64)
	if err != nil {
		t.Fatal(err)
	}
	armBin, _, _ := k3stest.Binary(arm, k3stest.DefaultFiles())
	os.WriteFile(filepath.Join(dir, "k3s-arm64"), armBin, 0o755)
	amd, _ := initbin.Get(boards.AMD64)
	os.WriteFile(filepath.Join(dir, "no-data"), amd, 0o755)
	for _, tc := range []struct {
		name, env, yaml, want string
	}{
		{"no version", "", "orchestrator: {kind: k3s}\n", "BASALT_K3S"},
		{"release unreachable", "", "orchestrator: {kind: k3s, version: v1.33.1+k3s1, mirror: http://127.0.0.1:1}\n", "orchestrator: {kind: none}"},
		{"wrong arch", filepath.Join(dir, "k3s-arm64"), k3sSpec, "the board's architecture is amd64"},
		{"dynamic", "/bin/ls", k3sSpec, "no libc"},
		{"no data archive", filepath.Join(dir, "no-data"), k3sSpec, "no k3s data archive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(K3sEnv, tc.env)
			keyring := caMirror(t)
			d := t.TempDir()
			s := writeSpec(t, d, tc.yaml)
			out := filepath.Join(d, "out")
			_, err := Build(context.Background(), s, Options{OutDir: out, CacheDir: filepath.Join(d, "cache"), Keyring: keyring})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build = %v, want an error with %q", err, tc.want)
			}
			if tc.name != "release unreachable" && !errors.Is(err, errclass.ErrInvalid) {
				t.Errorf("error is not errclass.ErrInvalid: %v", err)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("output left behind after a failed build")
			}
		})
	}
}

// TestK3sLocalVersionAndAirgap: a local k3s without version: gets the
// version its bytes carry (K3S_VERSION, the lock's input), a spec version
// that is not the binary's and a single binary without its air-gap
// archive are warned about; airgap: none silences the latter.
func TestK3sLocalVersionAndAirgap(t *testing.T) {
	exe, err := initbin.Get(boards.AMD64)
	if err != nil {
		t.Fatal(err)
	}
	bin, _, err := k3stest.Binary(append(append([]byte{}, exe...), "gitVersionv1.34.2+k3s1go1.25"...), k3stest.DefaultFiles())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "k3s")
	os.WriteFile(p, bin, 0o755)
	t.Setenv(K3sEnv, p)
	b, _ := boards.Get("qemu-x86_64")
	for _, tc := range []struct {
		yaml, version string
		warn          []string
	}{
		{"orchestrator: {kind: k3s}\n", "v1.34.2+k3s1", []string{"the local k3s " + p + " comes without its air-gap images (k3s-airgap-images-amd64.tar.zst)"}},
		{"orchestrator: {kind: k3s, version: v1.33.1+k3s1, airgap: {none: true}}\n", "v1.33.1+k3s1", []string{"v1.33.1+k3s1, but the k3s binary " + p + " (board qemu-x86_64) is v1.34.2+k3s1"}},
	} {
		var warns []string
		s := writeSpec(t, t.TempDir(), tc.yaml)
		in := newInputs(context.Background(), s, Options{CacheDir: filepath.Join(dir, "cache"), Warn: func(m string) { warns = append(warns, m) }})
		kr, list, err := in.k3s(b)
		if err != nil {
			t.Fatal(err)
		}
		if kr.version != tc.version || list[0].Version != tc.version {
			t.Errorf("%s: version %q, lock input %q; want %q", tc.yaml, kr.version, list[0].Version, tc.version)
		}
		if len(warns) != len(tc.warn) {
			t.Fatalf("%s: warnings %q, want %q", tc.yaml, warns, tc.warn)
		}
		for i, w := range tc.warn {
			if !strings.Contains(warns[i], w) {
				t.Errorf("%s: warning %q lacks %q", tc.yaml, warns[i], w)
			}
		}
	}
}

func TestBuildK3sImagesManifests(t *testing.T) {
	rel := t.TempDir()
	k3sRelease(t, rel)
	t.Setenv(K3sEnv, rel)
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	ref := strings.TrimPrefix(reg.URL, "http://") + "/edge/app:1.0"
	img, _ := random.Image(2048, 2)
	r, _ := name.ParseReference(ref)
	if err := remote.Write(r, img); err != nil { // random images are linux/amd64
		t.Fatal(err)
	}
	digest, _ := img.Digest()

	dir := t.TempDir()
	var docker bytes.Buffer
	tag, _ := name.NewTag("example.com/local:2")
	if err := tarball.Write(tag, img, &docker); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "local.tar"), docker.Bytes(), 0o644)
	os.MkdirAll(filepath.Join(dir, "m", "charts"), 0o755)
	os.WriteFile(filepath.Join(dir, "app.yaml"), []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: app}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "m", "a.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "m", "notes.md"), []byte("not a manifest"), 0o644)
	os.WriteFile(filepath.Join(dir, "m", "charts", "web-1.0.0.tgz"), []byte("chart bytes"), 0o644)
	os.WriteFile(filepath.Join(dir, "helm-web.yaml"), []byte("apiVersion: helm.cattle.io/v1\nkind: HelmChart\nmetadata: {name: web, namespace: kube-system}\nspec:\n  chart: m/charts/web-1.0.0.tgz\n  targetNamespace: app\n"), 0o644)
	s := writeSpec(t, dir, k3sSpec+"images:\n  - ref: "+ref+"\n  - path: local.tar\nmanifests:\n  - path: app.yaml\n  - path: m\n  - path: helm-*.yaml\n")
	o := Options{OutDir: filepath.Join(dir, "out"), CacheDir: filepath.Join(dir, "cache"), Keyring: caMirror(t)}
	arts, err := Build(context.Background(), s, o)
	if err != nil {
		t.Fatal(err)
	}
	ls := rootListing(t, arts[0].Image)
	for _, want := range []string{
		contract.K3sRootManifests + "/app.yaml\n",
		contract.K3sRootManifests + "/a.yaml\n",
		contract.K3sRootManifests + "/helm-web.yaml\n",
		contract.K3sRootManifests + "/basalt-system.yaml\n", // basalt's own, manifests/
		contract.K3sRootImages + "/local-",
		contract.K3sRootImages + "/" + strings.NewReplacer("/", "_", ":", "_").Replace(ref) + "-",
	} {
		if !strings.Contains(ls, want) {
			t.Errorf("root listing lacks %q:\n%s", want, ls)
		}
	}
	if strings.Contains(ls, "notes.md") {
		t.Error("a non-manifest file of a manifests directory was placed")
	}
	l, err := cache.ReadLock(filepath.Join(dir, cache.LockName))
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := l.Image(ref, "linux/amd64"); !ok || d != digest.String() {
		t.Errorf("lock images = %+v, want %s pinned to %s", l.Images, ref, digest)
	}
	// The HelmChart got its chart inlined.
	p, _ := disk.Read(arts[0].Image)
	root := extract(t, arts[0].Image, p.Partitions[1])
	helm := run(t, "unsquashfs", "-cat", root, contract.K3sRootManifests+"/helm-web.yaml")
	if !strings.Contains(helm, "chartContent: Y2hhcnQgYnl0ZXM=") || !strings.Contains(helm, "chart: web-1.0.0") {
		t.Errorf("helm-web.yaml:\n%s", helm)
	}

	// Second build: offline, registry gone, from the lock and the cache.
	reg.Close()
	o.Offline, o.OutDir = true, filepath.Join(dir, "out2")
	arts2, err := Build(context.Background(), s, o)
	if err != nil {
		t.Fatalf("offline build: %v", err)
	}
	if arts2[0].SHA256 != arts[0].SHA256 {
		t.Errorf("offline rebuild differs: %s vs %s", arts2[0].SHA256, arts[0].SHA256)
	}
}

// TestDefaultManifests: basalt's embedded manifests/ go with every k3s
// image; a spec manifest of the same name replaces one.
func TestDefaultManifests(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "basalt-system.yaml"), []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: mine}\n"), 0o644)
	for _, tt := range []struct{ extra, want string }{
		{"", "app.kubernetes.io/managed-by: basalt"},
		{"manifests:\n  - path: basalt-system.yaml\n", "name: mine"},
	} {
		got, _, err := manifests(writeSpec(t, dir, k3sSpec+tt.extra))
		if err != nil || len(got) != 1 || got[0].name != "basalt-system.yaml" || !strings.Contains(string(got[0].data), tt.want) {
			t.Errorf("manifests with %q: %v %+v, want basalt-system.yaml with %q", tt.extra, err, got, tt.want)
		}
	}
}

func TestCheckK3sModules(t *testing.T) {
	k, _ := localInputs(t)
	mods, err := releaseDir(filepath.Join(k, "lib", "modules"))
	if err != nil {
		t.Fatal(err)
	}
	ix, err := kmod.Scan(mods)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkK3sModules(ix, "test"); err != nil {
		t.Errorf("the test kernel: %v", err)
	}
	// A kernel with overlay only.
	m, ok := ix.Module("overlay")
	if !ok {
		t.Fatal("no overlay module in the test kernel")
	}
	bare := t.TempDir()
	os.MkdirAll(filepath.Join(bare, filepath.Dir(m.Path)), 0o755)
	os.WriteFile(filepath.Join(bare, m.Path), must(os.ReadFile(filepath.Join(mods, m.Path))), 0o644)
	ix, err = kmod.Scan(bare)
	if err != nil {
		t.Fatal(err)
	}
	err = checkK3sModules(ix, "6.1.0-bare")
	if err == nil || !strings.Contains(err.Error(), "kernel 6.1.0-bare lacks modules k3s needs") || strings.Contains(err.Error(), "overlay,") || !strings.Contains(err.Error(), "br_netfilter") {
		t.Errorf("checkK3sModules(bare kernel) = %v", err)
	}
}

func TestManifestErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(data), 0o644)
		return p
	}
	for _, tc := range []struct{ name, data, want string }{
		{"notk8s.yaml", "hello: world\n", "notk8s.yaml:1: document 1 is not a Kubernetes object (want apiVersion and kind)"},
		{"second.yaml", "apiVersion: v1\nkind: ConfigMap\n---\n- a list\n", "second.yaml:4: document 2 is not a Kubernetes object"},
		{"broken.yaml", "apiVersion: v1\nkind: [\n", "broken.yaml: yaml:"},
		{"chart.yaml", "apiVersion: helm.cattle.io/v1\nkind: HelmChart\nspec:\n  chart: missing.tgz\n", "chart.yaml:4: spec.chart: open "},
	} {
		p := write(tc.name, tc.data)
		_, _, err := inlineCharts(p, []byte(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// A remote chart (repo + name) is left alone.
	remote := "apiVersion: helm.cattle.io/v1\nkind: HelmChart\nspec:\n  chart: traefik\n  repo: https://traefik.github.io/charts\n"
	if got, charts, err := inlineCharts(write("remote.yaml", remote), []byte(remote)); err != nil || string(got) != remote || charts != nil {
		t.Errorf("remote chart: %q %v %v", got, charts, err)
	}
}
