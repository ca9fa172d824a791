package build

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/ab"
	"github.com/basaltos/basalt/contract/bundle"
	"github.com/basaltos/basalt/contract/config"
	"github.com/basaltos/basalt/image/kmod"
	"github.com/basaltos/basalt/image/spec"
	"github.com/basaltos/basalt/image/tree"
	"github.com/basaltos/basalt/overlays"
	"go.yaml.in/yaml/v3"
)

// mountPoints are the empty directories of the root the device mounts on.
var mountPoints = []struct {
	path string
	mode fs.FileMode
}{
	{strings.TrimPrefix(contract.DataMountPoint, "/"), 0o755}, {"dev", 0o755}, {"proc", 0o555}, {"root", 0o700}, {"run", 0o755},
	{"sys", 0o555}, {"tmp", 0o777 | fs.ModeSticky}, {"var", 0o755},
}

// releaseText is contract.ReleaseFile. Stage 2 reads the version, and the
// build epoch as the clock's floor; AB (ab.ReleaseKey) names the board's
// A/B mechanism to arm and commit updates with, UPDATE_COMPAT
// (bundle.CompatKey, the image name) what a bundle's compat must equal;
// the orchestrator keys follow (contract.ReleaseOrchestrator, ...).
func releaseText(s *spec.Spec, b *boards.Board, kernel string, kr *k3sRoot, epoch int64) string {
	rel := contract.Release{Name: s.Name, Version: s.Version, Board: b.Name, Arch: string(b.Arch), Kernel: kernel, BuildEpoch: epoch,
		More: []contract.KeyValue{{Key: ab.ReleaseKey, Value: string(b.AB)}, {Key: bundle.CompatKey, Value: s.Name}}}
	if kr == nil {
		rel.More = append(rel.More, contract.KeyValue{Key: contract.ReleaseOrchestrator, Value: "none"})
	} else {
		rel.More = append(rel.More, contract.KeyValue{Key: contract.ReleaseOrchestrator, Value: "k3s"},
			contract.KeyValue{Key: contract.ReleaseK3sVersion, Value: kr.version}, contract.KeyValue{Key: contract.ReleaseK3sDataHash, Value: kr.hash})
	}
	return string(rel.Marshal())
}

// etcFiles are the generated files of /etc: the os-release of the image and
// basalt's release file; the static skeleton is overlays.Base. /etc/machine-id
// is not there: the init creates it on first boot (initsys/identity).
func etcFiles(s *spec.Spec, b *boards.Board, kernel string, kr *k3sRoot, epoch int64) map[string]string {
	return map[string]string{
		"etc/os-release": fmt.Sprintf("NAME=basalt\nID=basalt\nPRETTY_NAME=\"%s %s (basalt)\"\nIMAGE_ID=%s\nIMAGE_VERSION=%s\nVARIANT_ID=%s\n",
			s.Name, s.Version, s.Name, s.Version, b.Name),
		strings.TrimPrefix(contract.ReleaseFile, "/"): releaseText(s, b, kernel, kr, epoch),
	}
}

// rootTree assembles slot A's root: the device binary (also as
// /sbin/modprobe), the kernel's modules, the /etc skeleton, the baked device
// config and services, busybox and zone files when resolved, k3s for an
// orchestrator image, the mount points and the spec's overlays (last, so
// they may replace any of these).
func rootTree(s *spec.Spec, b *boards.Board, r *resolved, ix *kmod.Index, initBin []byte, epoch int64) (*tree.Tree, []Input, error) {
	t := tree.New(epoch)
	k, busybox := r.kernel, r.busybox
	for _, m := range mountPoints {
		if err := t.Mkdir(m.path, m.mode); err != nil {
			return nil, nil, err
		}
	}
	if err := t.AddBytes(contract.InitPath, 0o755, initBin); err != nil {
		return nil, nil, err
	}
	// The init answers as modprobe (argv[0]); the kernel runs /sbin/modprobe.
	if err := t.AddSymlink("sbin/modprobe", path.Base(contract.InitPath)); err != nil {
		return nil, nil, err
	}
	if err := addFS(t, overlays.Base); err != nil {
		return nil, nil, fmt.Errorf("overlays/base: %w", err)
	}
	etc := etcFiles(s, b, k.Release, r.k3s, epoch)
	for _, p := range slices.Sorted(maps.Keys(etc)) {
		if err := t.AddBytes(p, 0o644, []byte(etc[p])); err != nil {
			return nil, nil, err
		}
	}
	if err := addModules(t, ix, contract.ModulesDir+"/"+k.Release, k.Modules); err != nil {
		return nil, nil, err
	}
	if err := addConfig(t, s); err != nil {
		return nil, nil, err
	}
	if err := addUpdateKeys(t, s); err != nil {
		return nil, nil, err
	}
	if busybox != nil {
		if err := t.AddBytes("bin/busybox", 0o755, busybox); err != nil {
			return nil, nil, err
		}
		if err := t.AddSymlink("bin/sh", "busybox"); err != nil {
			return nil, nil, err
		}
	}
	if err := r.zones.add(t); err != nil {
		return nil, nil, err
	}
	if r.caCerts != nil {
		if err := t.AddBytes(caBundle, 0o644, r.caCerts); err != nil {
			return nil, nil, err
		}
	}
	if r.k3s != nil {
		if err := addK3s(t, r.k3s); err != nil {
			return nil, nil, err
		}
	}
	var list []Input
	for i, o := range s.Overlays {
		where := s.Where(fmt.Sprintf(".overlays[%d]", i))
		from := s.Resolve(o.From)
		fi, err := os.Stat(from)
		if err != nil {
			return nil, nil, invalidf("%s.from: %s: %v", where, from, errUnwrap(err))
		}
		in := Input{Name: o.To, Kind: "overlay", Source: from}
		if !fi.IsDir() {
			if in.SHA256, err = checkSHA(from, o.SHA256, where+".from", where+".sha256"); err != nil {
				return nil, nil, err
			}
		}
		var mode *fs.FileMode
		if o.Mode != nil {
			m := o.Mode.FileMode()
			mode = &m
		}
		if err := addHost(t, o.To, from, mode, o.UID, o.GID, nil); err != nil {
			return nil, nil, invalidf("%s: %v", where, err)
		}
		list = append(list, in)
	}
	return t, list, nil
}

// addUpdateKeys bakes the spec's update.publicKey files (one PEM block or
// more each) into bundle.KeysFile: the keys the device verifies bundles
// with; and under configTrust: signed the configKey files into
// config.TrustKeysFile: the keys config sources must be signed by.
func addUpdateKeys(t *tree.Tree, s *spec.Spec) error {
	if s.Update != nil {
		if err := addKeys(t, s, ".update.publicKey", s.Update.PublicKey, bundle.KeysFile); err != nil {
			return err
		}
	}
	if s.ConfigTrust == spec.ConfigTrustSigned {
		return addKeys(t, s, ".configKey", s.ConfigKey, config.TrustKeysFile)
	}
	return nil
}

// addKeys bakes the PEM public keys of files (the spec's YAML path where)
// into dst, normalised; nothing when there are none.
func addKeys(t *tree.Tree, s *spec.Spec, where string, files spec.Files, dst string) error {
	if len(files) == 0 {
		return nil
	}
	var all []byte
	for i, k := range files {
		p := s.Resolve(k)
		b, err := os.ReadFile(p)
		if err != nil {
			return invalidf("%s: %s: %v", s.Where(fmt.Sprintf("%s[%d]", where, i)), p, errUnwrap(err))
		}
		keys, err := bundle.ParsePublicKeys(b)
		if err != nil {
			return invalidf("%s: %s: %v", s.Where(fmt.Sprintf("%s[%d]", where, i)), p, err)
		}
		for _, k := range keys {
			pem, err := bundle.MarshalPublicKey(k)
			if err != nil {
				return err
			}
			all = append(all, pem...)
		}
	}
	return t.AddBytes(strings.TrimPrefix(dst, "/"), 0o644, all)
}

// addHost adds the host file or directory tree src at dst. Files keep their
// permission bits (or get mode when set), directories get 0755, symlinks are
// kept; everything is owned by uid:gid and has the tree's epoch as mtime.
// Paths (slash-separated, relative to src) for which skip returns true are
// left out.
// addConfig writes the spec's config: section as contract.BakedConfig (0600
// when it holds secrets) and its services as contract.ServicesFile.
func addConfig(t *tree.Tree, s *spec.Spec) error {
	if s.Config != nil {
		doc, err := s.Config.Document()
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o644)
		if s.Config.HasSecrets() {
			mode = 0o600
		}
		if err := t.AddBytes(strings.TrimPrefix(contract.BakedConfig, "/"), mode, doc); err != nil {
			return err
		}
	}
	if len(s.Services) == 0 {
		return nil
	}
	svcs := make([]contract.Service, len(s.Services))
	for i, sv := range s.Services {
		svcs[i] = contract.Service{Name: sv.Name, Path: sv.Path, Args: sv.Args, Env: sv.Env, Restart: sv.Restart, ReadyFile: sv.ReadyFile, ReadyExec: sv.ReadyExec}
	}
	b, err := yaml.Marshal(svcs)
	if err != nil {
		return fmt.Errorf("services: %w", err)
	}
	return t.AddBytes(strings.TrimPrefix(contract.ServicesFile, "/"), 0o644, b)
}

// needsShell reports whether the image gets busybox: asked for with
// debug.shell, or implied by SSH access (the SSH server runs a shell).
func needsShell(s *spec.Spec) bool {
	if s.Debug.Shell {
		return true
	}
	if s.Config == nil {
		return false
	}
	c := &s.Config.Config
	if len(c.SSHAuthorizedKeys) > 0 {
		return true
	}
	for _, u := range c.Users {
		if len(u.SSHAuthorizedKeys) > 0 {
			return true
		}
	}
	return false
}

func addHost(t *tree.Tree, dst, src string, mode *fs.FileMode, uid, gid uint32, skip func(rel string) bool) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if skip != nil && skip(filepath.ToSlash(rel)) {
			return nil
		}
		tp := dst
		if rel != "." {
			tp = strings.TrimSuffix(dst, "/") + "/" + filepath.ToSlash(rel)
		}
		e := tree.Entry{Path: tp, UID: uid, GID: gid, MTime: t.Epoch}
		switch {
		case d.IsDir():
			e.Type, e.Mode = tree.Dir, 0o755
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			e.Type, e.Mode, e.Target = tree.Symlink, 0o777, target
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			e.Type, e.Mode, e.Size, e.Open = tree.Regular, fi.Mode()&tree.PermMask, fi.Size(), tree.FileOpener(p)
			if mode != nil {
				e.Mode = *mode
			}
		default:
			return fmt.Errorf("%s: %s is not a file, directory or symlink", p, d.Type())
		}
		if err := t.Add(e); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		return nil
	})
}

// addFS adds an embedded tree of root files: files 0644, directories 0755.
func addFS(t *tree.Tree, fsys fs.FS) error {
	return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "." {
			return err
		}
		if d.IsDir() {
			return t.Mkdir(p, 0o755)
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		return t.AddBytes(p, 0o644, b)
	})
}

func errUnwrap(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}
