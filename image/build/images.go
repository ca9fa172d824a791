package build

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/image/preload"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// images resolves the spec's images: for board b into files for
// contract.K3sRootImages: local tarballs as they are (checked), registry
// references pulled for the board's platform, pinned in basalt.lock by
// manifest digest, and kept in the cache as OCI-layout tars, so a second
// build needs no registry.
func (in *inputs) images(b *boards.Board) ([]rootFile, []Input, error) {
	var files []rootFile
	var list []Input
	plat := preload.Platform(b.Arch)
	for i, im := range in.s.Images {
		where := in.s.Where(fmt.Sprintf(".images[%d]", i))
		if im.Path != "" {
			p := in.s.Resolve(im.Path)
			if err := preload.CheckArchive(p); err != nil {
				return nil, nil, invalidf("%s.path: %v", where, err)
			}
			sum, err := fileSHA(p)
			if err != nil {
				return nil, nil, err
			}
			files = append(files, rootFile{Name: digestName(filepath.Base(p), sum), Host: p})
			list = append(list, Input{Name: filepath.Base(p), Kind: "image", Source: p, SHA256: sum})
			continue
		}
		f, in2, err := in.pullImage(im.Ref, plat, where)
		if err != nil {
			return nil, nil, err
		}
		files, list = append(files, f), append(list, in2)
	}
	return files, list, nil
}

// pullImage returns the cached OCI tar of ref for platform, pulling it when
// the lock does not pin it or the cache lacks it.
func (in *inputs) pullImage(ref string, p v1.Platform, where string) (rootFile, Input, error) {
	platform := p.String()
	c, err := in.openCache()
	if err != nil {
		return rootFile{}, Input{}, err
	}
	l, err := in.openLock()
	if err != nil {
		return rootFile{}, Input{}, err
	}
	pinned, ok := l.Image(ref, platform)
	if in.o.UpdateLock {
		pinned, ok = "", false
	}
	var pulled *preload.Pulled
	if !ok {
		if in.o.Offline {
			return rootFile{}, Input{}, fmt.Errorf("%s: image %s for %s is not pinned in basalt.lock: run `basalt fetch` online first", where, ref, platform)
		}
		if pulled, err = preload.Pull(in.ctx, ref, p, ""); err != nil {
			return rootFile{}, Input{}, fmt.Errorf("%s: %w", where, err)
		}
		pinned = pulled.Digest.String()
	}
	imageName := containerdName(ref)
	key := sha256.Sum256([]byte(imageName + "\n" + pinned))
	dir, err := c.Tree("image-oci-v1-"+hex.EncodeToString(key[:]), func(dir string) error {
		if pulled == nil {
			if in.o.Offline {
				return fmt.Errorf("%s: image %s (%s) is not in the cache %s: run `basalt fetch` online first", where, ref, pinned, c.Dir)
			}
			if pulled, err = preload.Pull(in.ctx, ref, p, pinned); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
		}
		f, err := os.Create(filepath.Join(dir, "image.tar"))
		if err != nil {
			return err
		}
		if err := preload.WriteOCI(f, pulled.Image, imageName); err != nil {
			f.Close()
			return fmt.Errorf("%s: image %s: %w", where, ref, err)
		}
		return f.Close()
	})
	if err != nil {
		return rootFile{}, Input{}, err
	}
	l.SetImage(ref, platform, pinned)
	base := strings.NewReplacer("/", "_", ":", "_", "@", "_").Replace(imageName)
	if i := strings.LastIndex(base, "_sha256_"); i > 0 {
		base = base[:i]
	}
	return rootFile{Name: digestName(base+".tar", hex.EncodeToString(key[:])), Host: filepath.Join(dir, "image.tar")},
		Input{Name: ref, Kind: "image", Version: pinned, Source: ref + " (" + platform + ")", SHA256: strings.TrimPrefix(pinned, "sha256:")}, nil
}

// containerdName is the name containerd's CRI gives ref: Docker Hub images
// as docker.io/library/NAME:TAG, a missing tag as :latest.
func containerdName(ref string) string {
	r := ref
	if i := strings.IndexByte(r, '/'); i < 0 || !strings.ContainsAny(r[:i], ".:") && r[:i] != "localhost" {
		if i < 0 {
			r = "library/" + r
		}
		r = "docker.io/" + r
	}
	last := r[strings.LastIndexByte(r, '/')+1:]
	if !strings.ContainsAny(last, ":@") {
		r += ":latest"
	}
	return r
}
