package preload

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/basaltos/basalt/contract"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/images/archive"
	"github.com/containerd/containerd/v2/core/metadata"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// SeedNamespace is the CRI's namespace, where k3s imports.
const SeedNamespace = "k8s.io"

// SeedLabels are the labels k3s sets on the images it imports: pinned
// (kubelet's image GC keeps them) and managed by the CRI.
var SeedLabels = map[string]string{
	"io.cri-containerd.pinned": "pinned",
	"io.cri-containerd.image":  "managed",
}

// Seed imports archives into a containerd store at dir, laid out as
// containerd's root (contract.ContainerdMetaDB, contract.ContainerdBlobs),
// namespace k8s.io, with containerd's own importer and metadata
// store, as k3s' import at first boot would: every platform of each
// archive's index, images named by their io.containerd.image.name
// annotation (a docker-archive's RepoTags), labelled SeedLabels, the GC
// labels from the index down set. Times in the records are epoch
// (reproducible output). It returns the image names.
func Seed(ctx context.Context, dir string, archives []Archive, epoch time.Time) ([]string, error) {
	// containerd's packages log through logrus' global logger: its warnings
	// (e.g. "failed check for fsverity support") are not the builder's.
	if err := log.SetLevel("error"); err != nil {
		return nil, err
	}
	cs, err := local.NewStore(filepath.Join(dir, filepath.Dir(filepath.Dir(contract.ContainerdBlobs))))
	if err != nil {
		return nil, err
	}
	dbPath := filepath.Join(dir, contract.ContainerdMetaDB)
	if err := os.MkdirAll(filepath.Dir(dbPath), 0o755); err != nil {
		return nil, err
	}
	work := dbPath + ".work"
	defer os.Remove(work)
	// A scratch database: no fsync per transaction (the copy is synced).
	bdb, err := bolt.Open(work, 0o644, &bolt.Options{Timeout: time.Second, NoFreelistSync: true, NoSync: true})
	if err != nil {
		return nil, fmt.Errorf("containerd store: %w", err)
	}
	db := metadata.NewDB(bdb, cs, nil)
	if err := db.Init(ctx); err != nil {
		bdb.Close()
		return nil, fmt.Errorf("containerd store: %w", err)
	}
	ctx = namespaces.WithNamespace(ctx, SeedNamespace)
	var names []string
	for _, a := range archives {
		n, err := seedOne(ctx, db, a, epoch)
		if err != nil {
			bdb.Close()
			return nil, fmt.Errorf("import %s: %w", a.Name, err)
		}
		names = append(names, n...)
	}
	// Ingests and leases left by the import go with one GC pass; blobs
	// that no image references (none expected) too.
	if _, err := db.GarbageCollect(ctx); err != nil {
		bdb.Close()
		return nil, fmt.Errorf("containerd store: gc: %w", err)
	}
	if err := reproducible(bdb, dbPath, epoch); err != nil {
		bdb.Close()
		return nil, fmt.Errorf("containerd store: %w", err)
	}
	if err := bdb.Close(); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(filepath.Join(dir, filepath.Dir(filepath.Dir(contract.ContainerdBlobs)), "ingest")); err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

func seedOne(ctx context.Context, db *metadata.DB, a Archive, epoch time.Time) ([]string, error) {
	r, closeFn, err := openArchive(a)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	cs := db.ContentStore()
	index, err := archive.ImportIndex(ctx, cs, r)
	if err != nil {
		return nil, err
	}
	var imgs []images.Image
	var handler images.HandlerFunc = func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if desc.Digest != index.Digest {
			return images.Children(ctx, cs, desc)
		}
		idx, err := images.Children(ctx, cs, desc)
		if err != nil {
			return nil, err
		}
		for _, m := range idx {
			if n := m.Annotations[images.AnnotationImageName]; n != "" {
				imgs = append(imgs, images.Image{Name: n, Target: m, Labels: SeedLabels, CreatedAt: epoch, UpdatedAt: epoch})
			}
		}
		return idx, nil
	}
	if err := images.WalkNotEmpty(ctx, images.SetChildrenLabels(cs, images.FilterPlatforms(handler, platforms.All)), index); err != nil {
		return nil, err
	}
	if len(imgs) == 0 {
		return nil, fmt.Errorf("no image named in its index (io.containerd.image.name)")
	}
	is := metadata.NewImageStore(db)
	var names []string
	for _, img := range imgs {
		if _, err := is.Create(ctx, img); errdefs.IsAlreadyExists(err) {
			_, err = is.Update(ctx, img, "target", "labels")
			if err != nil {
				return nil, err
			}
		} else if err != nil {
			return nil, err
		}
		names = append(names, img.Name)
	}
	return names, nil
}

// reproducible sets every createdat/updatedat record (containerd's
// metadata store stamps time.Now()) to epoch and writes a compacted copy of
// db to path: fresh pages, so no stale bytes of earlier transactions.
func reproducible(db *bolt.DB, path string, epoch time.Time) error {
	stamp, err := epoch.UTC().MarshalBinary()
	if err != nil {
		return err
	}
	var walk func(b *bolt.Bucket) error
	walk = func(b *bolt.Bucket) error {
		var subs [][]byte
		err := b.ForEach(func(k, v []byte) error {
			if v == nil {
				subs = append(subs, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range []string{"createdat", "updatedat"} {
			if b.Get([]byte(k)) != nil {
				if err := b.Put([]byte(k), stamp); err != nil {
					return err
				}
			}
		}
		for _, k := range subs {
			if err := walk(b.Bucket(k)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walk(b) })
	}); err != nil {
		return err
	}
	os.Remove(path)
	dst, err := bolt.Open(path, 0o644, &bolt.Options{Timeout: time.Second, NoFreelistSync: true, NoSync: true})
	if err != nil {
		return err
	}
	// One key per transaction: bolt spills a transaction's dirty buckets
	// in Go map order, so a bigger one could lay pages out differently.
	if err := bolt.Compact(dst, db, 1); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// Archive is an image archive: Name (its name in the root, whose
// extension says how k3s decompresses it) and Path (the host file, which
// may be a cache file without extension).
type Archive struct{ Name, Path string }

// openArchive opens an image archive, decompressed as k3s does by its
// name's extension.
func openArchive(a Archive) (io.Reader, func(), error) {
	f, err := os.Open(a.Path)
	if err != nil {
		return nil, nil, err
	}
	r, done, err := decompress(f, a.Name)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return r, func() { done(); f.Close() }, nil
}
