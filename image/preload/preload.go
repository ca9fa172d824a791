// Package preload prepares container images for k3s to import at first
// boot: registry references pulled for the board's platform with
// go-containerregistry (a multi-arch index resolved to the board's
// manifest, docker credentials from the host's keychain, tags resolved to
// digests), written as OCI-layout tars that keep the registry's manifest
// digest, and local docker-archive or OCI-layout tarballs checked before
// they are placed. containerd (k3s' importer, client.Import) reads both
// forms; the image name comes from the io.containerd.image.name annotation.
package preload

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"

	"github.com/basaltos/basalt/boards"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Platform is the image platform of a board architecture.
func Platform(a boards.Arch) v1.Platform {
	switch a {
	case boards.ARM64:
		return v1.Platform{OS: "linux", Architecture: "arm64"}
	case boards.ARMHF:
		return v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	}
	return v1.Platform{OS: "linux", Architecture: "amd64"}
}

// Pulled is an image resolved for one platform.
type Pulled struct {
	Name   string  // the reference as k3s will know it (docker.io/library/x:tag)
	Digest v1.Hash // of the platform's image manifest
	Image  v1.Image
}

// Pull resolves ref for platform p: with pinned set (a digest from the
// lock) that exact manifest is fetched, else the tag (or digest) is
// resolved, an index to p's manifest. Credentials come from
// authn.DefaultKeychain (~/.docker/config.json, credential helpers).
func Pull(ctx context.Context, ref string, p v1.Platform, pinned string, opts ...remote.Option) (*Pulled, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", ref, err)
	}
	opts = append([]remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithPlatform(p)}, opts...)
	get := r
	if pinned != "" {
		if get, err = name.NewDigest(r.Context().Name() + "@" + pinned); err != nil {
			return nil, fmt.Errorf("image %q: locked digest %q: %w", ref, pinned, err)
		}
	}
	desc, err := remote.Get(get, opts...)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	img, err := desc.Image() // an index resolves to p's manifest
	if err != nil {
		return nil, fmt.Errorf("image %s for %s: %w", ref, p, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	// An image whose config names no platform cannot be checked; one that
	// names another is refused (a single-arch image of the wrong arch).
	if cf.Architecture != "" && (cf.OS != p.OS || cf.Architecture != p.Architecture || (p.Variant != "" && cf.Variant != "" && cf.Variant != p.Variant)) {
		return nil, fmt.Errorf("image %s is for %s/%s%s, the board needs %s (no manifest for it in the image's index)", ref, cf.OS, cf.Architecture, variant(cf.Variant), p)
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	if pinned != "" && d.String() != pinned {
		return nil, fmt.Errorf("image %s: registry returned %s, basalt.lock pins %s", ref, d, pinned)
	}
	return &Pulled{Name: r.Name(), Digest: d, Image: img}, nil
}

func variant(v string) string {
	if v == "" {
		return ""
	}
	return "/" + v
}

// WriteOCI writes img as an OCI image layout in a tar (index.json,
// oci-layout, blobs/sha256/...), its one manifest annotated with name.
// Members are sorted and carry no time or owner, so the same image always
// gives the same bytes; layers are copied as the registry serves them.
func WriteOCI(w io.Writer, img v1.Image, imageName string) error {
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	cd, err := img.ConfigName()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	index := v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: mt, Size: int64(len(raw)), Digest: d,
			Annotations: map[string]string{
				"io.containerd.image.name":          imageName,
				"org.opencontainers.image.ref.name": imageName,
			},
		}},
	}
	ij, err := json.Marshal(index)
	if err != nil {
		return err
	}
	type blob struct {
		name string
		size int64
		open func() (io.ReadCloser, error)
	}
	bytesBlob := func(n string, b []byte) blob {
		return blob{n, int64(len(b)), func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
	}
	blobs := map[string]blob{}
	add := func(b blob) { blobs[b.name] = b }
	add(bytesBlob("blobs/sha256/"+d.Hex, raw))
	add(bytesBlob("blobs/sha256/"+cd.Hex, cfg))
	for _, l := range layers {
		ld, err := l.Digest()
		if err != nil {
			return err
		}
		size, err := l.Size()
		if err != nil {
			return err
		}
		add(blob{"blobs/sha256/" + ld.Hex, size, l.Compressed})
	}
	tw := tar.NewWriter(w)
	files := []blob{bytesBlob("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)), bytesBlob("index.json", ij)}
	names := make([]string, 0, len(blobs))
	for n := range blobs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	for _, n := range names {
		files = append(files, blobs[n])
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: f.size, Format: tar.FormatPAX}); err != nil {
			return err
		}
		rc, err := f.open()
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		n, err := io.Copy(tw, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		if n != f.size {
			return fmt.Errorf("%s: %d bytes, the manifest says %d", f.name, n, f.size)
		}
	}
	return tw.Close()
}
