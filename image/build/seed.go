package build

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/image/preload"
)

// containerdSeed imports the preloaded archives into a containerd store at
// build time (preload.Seed: containerd's own importer and metadata store),
// once per set of archives and epoch, into the cache. The root carries it
// at contract.K3sRootContainerd; the device seeds k3s' containerd from it
// at first boot, so nothing is imported then. It returns "" when there are
// no archives.
func (in *inputs) containerdSeed(files []rootFile) (string, error) {
	if len(files) == 0 {
		return "", nil
	}
	c, err := in.openCache()
	if err != nil {
		return "", err
	}
	key := sha256.New()
	fmt.Fprintf(key, "epoch %d\n", in.o.Epoch)
	var archives []preload.Archive
	for _, f := range files {
		sum, err := fileSHA(f.Host)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(key, "%s %s\n", sum, f.Name)
		archives = append(archives, preload.Archive{Name: f.Name, Path: f.Host})
	}
	return c.Tree("containerd-seed-v1-"+hex.EncodeToString(key.Sum(nil)), func(dir string) error {
		if _, err := preload.Seed(in.ctx, dir, archives, time.Unix(in.o.Epoch, 0)); err != nil {
			return err
		}
		db, err := os.ReadFile(filepath.Join(dir, contract.ContainerdMetaDB))
		if err != nil {
			return err
		}
		id := sha256.Sum256(db)
		return os.WriteFile(filepath.Join(dir, filepath.Base(contract.K3sRootContainerdID)), []byte(hex.EncodeToString(id[:])+"\n"), 0o644)
	})
}
