package k3s

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/initsys/identity"
)

// Link makes k3s' data dir use what the builder put in the root (see
// contract/k3s.go), under root (the device's "/"):
//   - K3sDataDir/data -> K3sRootData (the pre-extracted k3s: nothing is
//     extracted at first start);
//   - each K3sRootImages file linked into K3sImagesDir under its name (a link
//     that exists is left alone, so its mtime, which k3s' .cache.json
//     records, stays), links into K3sRootImages whose target is gone
//     (another slot's images) removed, and an empty K3sImagesCache created
//     when missing (k3s then skips archives it imported before);
//   - each K3sRootManifests file linked into K3sManifestsDir, likewise;
//   - k3s' containerd seeded from K3sRootContainerd (seedContainerd), and
//     then the archives are not linked: their images are there already.
//
// A root without those directories (an OS-only image, a test orchestrator
// without images) just has fewer links.
func Link(root string) error {
	at := func(p string) string { return filepath.Join(root, p) }
	var errs []error
	if err := os.MkdirAll(at(contract.K3sDataDir), 0o700); err != nil {
		return fmt.Errorf("k3s data dir: %w", err)
	}
	if _, err := os.Stat(at(contract.K3sRootData)); err == nil {
		errs = append(errs, symlink(contract.K3sRootData, at(contract.K3sDataDir+"/data")))
	}
	seeded, err := seedContainerd(root)
	errs = append(errs, err)
	if !seeded {
		errs = append(errs, linkEach(root, contract.K3sRootImages, contract.K3sImagesDir))
	} else if err := os.MkdirAll(at(contract.K3sImagesDir), 0o755); err != nil {
		errs = append(errs, fmt.Errorf("k3s %s: %w", contract.K3sImagesDir, err))
	}
	if err := createIfMissing(at(contract.K3sImagesDir + "/" + contract.K3sImagesCache)); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, linkEach(root, contract.K3sRootManifests, contract.K3sManifestsDir))
	return errors.Join(errs...)
}

// symlink makes link point to target, replacing a wrong link; a real
// directory there (an extraction by k3s itself, before basalt managed it)
// is moved aside, not deleted.
func symlink(target, link string) error {
	if cur, err := os.Readlink(link); err == nil && cur == target {
		return nil
	}
	if fi, err := os.Lstat(link); err == nil {
		if fi.IsDir() {
			if err := os.Rename(link, link+".old"); err != nil {
				return fmt.Errorf("k3s link %s: %w", link, err)
			}
		} else if err := os.Remove(link); err != nil {
			return fmt.Errorf("k3s link %s: %w", link, err)
		}
	}
	if err := os.Symlink(target, link); err != nil {
		return fmt.Errorf("k3s link %s: %w", link, err)
	}
	return nil
}

// linkEach links every file of the root directory from into the writable
// directory to (both absolute device paths, under root), and removes links
// in to that point into from at files that no longer exist.
func linkEach(root, from, to string) error {
	dst := filepath.Join(root, to)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("k3s %s: %w", to, err)
	}
	ents, err := os.ReadDir(dst)
	if err != nil {
		return fmt.Errorf("k3s %s: %w", to, err)
	}
	for _, e := range ents {
		p := filepath.Join(dst, e.Name())
		t, err := os.Readlink(p)
		if err != nil || !strings.HasPrefix(t, from+"/") {
			continue // not ours
		}
		if _, err := os.Stat(filepath.Join(root, t)); os.IsNotExist(err) {
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("k3s %s: %w", to, err)
			}
		}
	}
	srcs, err := os.ReadDir(filepath.Join(root, from))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("k3s %s: %w", from, err)
	}
	for _, e := range srcs {
		target := from + "/" + e.Name()
		p := filepath.Join(dst, e.Name())
		if cur, err := os.Readlink(p); err == nil && cur == target {
			continue
		}
		if _, err := os.Lstat(p); err == nil {
			continue // a file of the user's (or k3s') own: left alone
		}
		if err := os.Symlink(target, p); err != nil {
			return fmt.Errorf("k3s %s: %w", to, err)
		}
	}
	return nil
}

func createIfMissing(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if os.IsExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("k3s %s: %w", path, err)
	}
	return f.Close()
}

// seedContainerd seeds k3s' containerd root from the builder's store
// (contract.K3sRootContainerd) and says whether it holds this root's seed,
// so the archives need no import. Each blob is linked (no copy); meta.db is
// copied only into a containerd root that has none (the first boot): a
// meta.db there is containerd's live state (pulled images, containers),
// never replaced. After an update to a slot with another seed, the blobs
// are linked and false is returned: k3s imports the archives once (the
// blobs' links make containerd find their content present, but the import
// still reads and hashes each). The order (blobs, meta.db, marker; each
// file written whole and renamed) leaves a power cut nothing worse than one
// import.
func seedContainerd(root string) (bool, error) {
	at := func(p string) string { return filepath.Join(root, p) }
	id, err := os.ReadFile(at(contract.K3sRootContainerdID))
	if os.IsNotExist(err) {
		return false, nil // no seed: an image without preloaded archives
	}
	if err != nil {
		return false, fmt.Errorf("containerd seed: %w", err)
	}
	if cur, err := os.ReadFile(at(contract.K3sContainerdSeeded)); err == nil && string(cur) == string(id) {
		return true, nil
	}
	if err := linkEach(root, contract.K3sRootContainerd+"/"+contract.ContainerdBlobs, contract.K3sContainerdDir+"/"+contract.ContainerdBlobs); err != nil {
		return false, fmt.Errorf("containerd seed: %w", err)
	}
	db := at(contract.K3sContainerdDir + "/" + contract.ContainerdMetaDB)
	if _, err := os.Lstat(db); err == nil {
		return false, nil
	}
	b, err := os.ReadFile(at(contract.K3sRootContainerd + "/" + contract.ContainerdMetaDB))
	if err != nil {
		return false, fmt.Errorf("containerd seed: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(db), 0o700); err != nil {
		return false, fmt.Errorf("containerd seed: %w", err)
	}
	for _, f := range []struct {
		path string
		data []byte
	}{{db, b}, {at(contract.K3sContainerdSeeded), id}} {
		if err := identity.WriteFile(f.path, f.data, 0o600); err != nil {
			return false, fmt.Errorf("containerd seed: %w", err)
		}
	}
	return true, nil
}
