package preload

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/basaltos/basalt/contract"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/metadata"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/platforms"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// TestSeed: an OCI-layout tar and a docker-archive seeded into one store;
// containerd's metadata store, reopened, lists both images in k8s.io with
// k3s' labels and every blob they reference present; seeding again gives
// the same bytes.
func TestSeed(t *testing.T) {
	dir := t.TempDir()
	a, _ := random.Image(2048, 2)
	oci := filepath.Join(dir, "a.tar")
	f, _ := os.Create(oci)
	if err := WriteOCI(f, a, "example.com/aa:1"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, _ := random.Image(1024, 1)
	tag, err := name.NewTag("example.com/bb:2")
	if err != nil {
		t.Fatal(err)
	}
	docker := filepath.Join(dir, "b.tar")
	if err := tarball.WriteToFile(docker, tag, b); err != nil {
		t.Fatal(err)
	}
	epoch := time.Unix(1700000000, 0)
	seed := func(out string) []string {
		names, err := Seed(context.Background(), out, []Archive{{"a.tar", oci}, {"b.tar", docker}}, epoch)
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	s1, s2 := filepath.Join(dir, "s1"), filepath.Join(dir, "s2")
	names := seed(s1)
	seed(s2)
	if len(names) != 2 || names[0] != "example.com/aa:1" || names[1] != "example.com/bb:2" {
		t.Fatalf("names %v", names)
	}
	m1, _ := os.ReadFile(filepath.Join(s1, contract.ContainerdMetaDB))
	m2, _ := os.ReadFile(filepath.Join(s2, contract.ContainerdMetaDB))
	if len(m1) == 0 || !bytes.Equal(m1, m2) {
		t.Fatalf("meta.db differs between two seeds of the same archives (%d, %d bytes)", len(m1), len(m2))
	}
	if _, err := os.Stat(filepath.Join(s1, filepath.Dir(filepath.Dir(contract.ContainerdBlobs)), "ingest")); !os.IsNotExist(err) {
		t.Fatalf("ingest dir left in the seed: %v", err)
	}

	cs, err := local.NewStore(filepath.Join(s1, filepath.Dir(filepath.Dir(contract.ContainerdBlobs))))
	if err != nil {
		t.Fatal(err)
	}
	bdb, err := bolt.Open(filepath.Join(s1, contract.ContainerdMetaDB), 0o644, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	db := metadata.NewDB(bdb, cs, nil)
	ctx := namespaces.WithNamespace(context.Background(), SeedNamespace)
	imgs, err := metadata.NewImageStore(db).List(ctx)
	if err != nil || len(imgs) != 2 {
		t.Fatalf("images %v, %v", imgs, err)
	}
	for _, img := range imgs {
		if img.Labels["io.cri-containerd.pinned"] != "pinned" || !img.CreatedAt.Equal(epoch) {
			t.Errorf("%s: labels %v, created %v", img.Name, img.Labels, img.CreatedAt)
		}
		ok, _, present, missing, err := imagesCheck(ctx, db, img)
		if err != nil || !ok || len(missing) > 0 || len(present) < 2 {
			t.Errorf("%s: complete %v, present %d, missing %v, %v", img.Name, ok, len(present), missing, err)
		}
	}
}

func imagesCheck(ctx context.Context, db *metadata.DB, img images.Image) (bool, []ocispec.Descriptor, []ocispec.Descriptor, []ocispec.Descriptor, error) {
	ok, req, present, missing, err := images.Check(ctx, db.ContentStore(), img.Target, platforms.All)
	return ok, req, present, missing, err
}

// FuzzSeed: whatever bytes an archive holds, Seed returns an image list or
// an error, never panics (the builder seeds user-supplied tarballs).
func FuzzSeed(f *testing.F) {
	img, _ := random.Image(64, 1)
	var oci bytes.Buffer
	if err := WriteOCI(&oci, img, "example.com/aa:1"); err != nil {
		f.Fatal(err)
	}
	f.Add(oci.Bytes())
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		p := filepath.Join(dir, "a.tar")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		names, err := Seed(context.Background(), filepath.Join(dir, "seed"), []Archive{{"a.tar", p}}, time.Unix(0, 0))
		if err == nil && len(names) == 0 {
			t.Fatal("no error and no image")
		}
	})
}
