package build

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/image/cache"
	"github.com/basaltos/basalt/image/k3s"
	"github.com/basaltos/basalt/image/kmod"
	"github.com/basaltos/basalt/image/tree"
)

// K3sEnv names a local k3s for offline builds: a binary, or a directory of
// k3s release files (k3s, k3s-arm64, k3s-armhf and, when there,
// k3s-airgap-images-ARCH.tar.zst). It overrides orchestrator.version and path.
const K3sEnv = "BASALT_K3S"

// k3sRoot is what the root of a k3s image gets.
type k3sRoot struct {
	version string
	bin     string   // host path of the release binary
	hash    string   // the data archive's hash: data/<hash>
	data    string   // host directory of the unpacked data archive (in the cache)
	cni     []string // bin/ names linked to the cni multicall binary
	// images go to contract.K3sRootImages, manifests to K3sRootManifests.
	images    []rootFile
	manifests []manifestFile
	// seed is the host directory of the containerd store seeded from
	// images (containerdSeed), for contract.K3sRootContainerd; "" for none.
	seed string
}

// rootFile is a host file placed in the root under Name.
type rootFile struct {
	Name, Host string
}

// howToGoOn ends the error of a build that cannot get k3s.
const howToGoOn = "to go on, point " + K3sEnv + " at a k3s binary (or a directory of k3s release files), set orchestrator.path, or build an OS-only image with orchestrator: {kind: none}"

// k3s resolves the orchestrator of board b: nil for kind none.
func (in *inputs) k3s(b *boards.Board) (*k3sRoot, []Input, error) {
	o := in.s.Orchestrator
	if o == nil || o.Kind != "k3s" {
		return nil, nil, nil
	}
	a, err := k3s.AssetsFor(b.Arch)
	if err != nil {
		return nil, nil, invalidf("%s: %v", in.s.Where(".orchestrator"), err)
	}
	kr := &k3sRoot{version: o.Version}
	var list []Input
	var airgap, airgapSum string
	downloaded := false
	switch env := os.Getenv(K3sEnv); {
	case env != "":
		fi, err := os.Stat(env)
		if err != nil {
			return nil, nil, invalidf("%s=%s: %v", K3sEnv, env, errUnwrap(err))
		}
		kr.bin = env
		if fi.IsDir() {
			kr.bin = filepath.Join(env, a.Binary)
			if p := filepath.Join(env, a.Airgap); fileExists(p) {
				airgap = p
			}
		}
		sum, err := checkSHA(kr.bin, "", K3sEnv, K3sEnv)
		if err != nil {
			return nil, nil, err
		}
		list = append(list, Input{Name: "k3s", Kind: "k3s", Version: o.Version, Source: kr.bin, SHA256: sum})
	case o.Path != "":
		kr.bin = in.s.Resolve(o.Path)
		sum, err := checkSHA(kr.bin, o.SHA256, in.s.Where(".orchestrator.path"), in.s.Where(".orchestrator.sha256"))
		if err != nil {
			return nil, nil, err
		}
		list = append(list, Input{Name: "k3s", Kind: "k3s", Version: o.Version, Source: kr.bin, SHA256: sum})
	case o.Version == "":
		return nil, nil, invalidf("%s: k3s needs a version to download (e.g. version: v1.33.1+k3s1); %s", in.s.Where(".orchestrator"), howToGoOn)
	default:
		rel, err := in.k3sRelease(o.Version, o.Mirror)
		if err != nil {
			return nil, nil, err
		}
		p, sum, err := rel.Fetch(in.ctx, a, a.Binary)
		if err != nil {
			return nil, nil, k3sFetchErr(err)
		}
		kr.bin = p
		list = append(list, Input{Name: a.Binary, Kind: "k3s", Version: o.Version, Source: k3s.AssetURL(o.Mirror, o.Version, a.Binary), SHA256: sum})
		if o.Airgap == nil || (!o.Airgap.None && o.Airgap.Path == "") {
			if airgap, airgapSum, err = rel.Fetch(in.ctx, a, a.Airgap); err != nil {
				return nil, nil, k3sFetchErr(err)
			}
			downloaded = true
			list = append(list, Input{Name: a.Airgap, Kind: "k3s-airgap", Version: o.Version, Source: k3s.AssetURL(o.Mirror, o.Version, a.Airgap), SHA256: airgapSum})
		}
	}
	switch {
	case o.Airgap != nil && o.Airgap.None:
		airgap = ""
	case o.Airgap != nil && o.Airgap.Path != "":
		airgap = in.s.Resolve(o.Airgap.Path)
		if airgapSum, err = checkSHA(airgap, o.Airgap.SHA256, in.s.Where(".orchestrator.airgap.path"), in.s.Where(".orchestrator.airgap.sha256")); err != nil {
			return nil, nil, err
		}
		list = append(list, Input{Name: a.Airgap, Kind: "k3s-airgap", Source: airgap, SHA256: airgapSum})
	case airgap != "" && airgapSum == "": // from the K3sEnv directory
		if airgapSum, err = fileSHA(airgap); err != nil {
			return nil, nil, err
		}
		list = append(list, Input{Name: a.Airgap, Kind: "k3s-airgap", Source: airgap, SHA256: airgapSum})
	}
	if airgap != "" {
		// A downloaded archive is a cache file named by its sha256: the
		// root gets the release's name, whose extension k3s imports by.
		n := filepath.Base(airgap)
		if downloaded {
			n = a.Airgap
		}
		kr.images = append(kr.images, rootFile{Name: digestName(n, airgapSum), Host: airgap})
	}

	imgs, ilist, err := in.images(b)
	if err != nil {
		return nil, nil, err
	}
	kr.images, list = append(kr.images, imgs...), append(list, ilist...)
	if kr.manifests, ilist, err = manifests(in.s); err != nil {
		return nil, nil, err
	}
	list = append(list, ilist...)

	if err := k3s.CheckBinary(kr.bin, b.Arch); err != nil {
		return nil, nil, invalidf("k3s for board %s: %v", b.Name, err)
	}
	if err := in.k3sVersion(kr, list, b); err != nil {
		return nil, nil, err
	}
	if airgap == "" && (o.Airgap == nil || !o.Airgap.None) {
		in.warn(fmt.Sprintf("board %s: the local k3s %s comes without its air-gap images (%s): the device's k3s then pulls its own images (pause, coredns, ...) from the internet at first start; "+
			"point %s at a directory of k3s release files that has it, or set orchestrator.airgap.path (orchestrator.airgap: none says this is meant)", b.Name, kr.bin, a.Airgap, K3sEnv))
	}
	if err := in.k3sData(kr, list[0].SHA256); err != nil {
		return nil, nil, err
	}
	return kr, list, nil
}

// k3sVersion fills in the version of a local k3s given without one (the
// release file's K3S_VERSION, the lock's inputs) from the binary's bytes,
// and warns when the spec's version is not the binary's.
func (in *inputs) k3sVersion(kr *k3sRoot, list []Input, b *boards.Board) error {
	got, err := k3s.BinaryVersion(kr.bin)
	if err != nil {
		return err
	}
	switch {
	case kr.version == "":
		kr.version = got
		list[0].Version = got
		if got == "" {
			in.warn(fmt.Sprintf("board %s: %s carries no k3s version string (v1.X.Y+k3sN): %s stays empty; set orchestrator.version", b.Name, kr.bin, contract.ReleaseK3sVersion))
		}
	case got != "" && got != kr.version:
		in.warn(fmt.Sprintf("%s: %s, but the k3s binary %s (board %s) is %s", in.s.Where(".orchestrator.version"), kr.version, kr.bin, b.Name, got))
	}
	return nil
}

func (in *inputs) warn(msg string) {
	if in.o.Warn != nil {
		in.o.Warn(msg)
	}
}

func (in *inputs) k3sRelease(version, mirror string) (*k3s.Release, error) {
	c, err := in.openCache()
	if err != nil {
		return nil, err
	}
	l, err := in.openLock()
	if err != nil {
		return nil, err
	}
	return &k3s.Release{Base: mirror, Version: version, Cache: c, Lock: l, Update: in.o.UpdateLock}, nil
}

// k3sFetchErr says how to go on when k3s cannot be downloaded.
func k3sFetchErr(err error) error {
	return fmt.Errorf("%w; %s", err, howToGoOn)
}

// k3sData finds the data archive in the binary and unpacks it once into the
// cache (keyed by the binary's sha256).
func (in *inputs) k3sData(kr *k3sRoot, binSum string) error {
	c, err := in.openCache()
	if err != nil {
		return err
	}
	b, err := os.ReadFile(kr.bin)
	if err != nil {
		return err
	}
	d, err := k3s.FindData(b)
	if err != nil {
		return invalidf("%s: %v", kr.bin, err)
	}
	kr.hash = d.Hash
	if kr.data, err = c.Tree("k3s-data-v1-"+binSum, func(dir string) error { return k3s.Extract(b, d, dir) }); err != nil {
		if errors.Is(err, k3s.ErrNoData) {
			return invalidf("%s: %v", kr.bin, err)
		}
		return fmt.Errorf("%s: %w", kr.bin, err)
	}
	kr.cni, err = k3s.CNIPlugins(kr.data)
	return err
}

// openLock reads basalt.lock (the default spec's lock in the cache) once;
// the cache must be open.
func (in *inputs) openLock() (*cache.Lock, error) {
	if in.lock == nil {
		l, err := cache.ReadLock(in.lockPath())
		if err != nil {
			return nil, invalidf("%v", err)
		}
		in.lock = l
	}
	return in.lock, nil
}

// digestName puts the first 12 hex digits of sum into a file name before its
// archive extension: k3s-airgap-images-amd64.tar.zst ->
// k3s-airgap-images-amd64-0123456789ab.tar.zst (contract.K3sRootImages).
func digestName(name, sum string) string {
	for _, ext := range []string{".tar.zst", ".tar.gz", ".tar.lz4", ".tar.bz2", ".tar", ".tzst", ".tgz", ".txt"} {
		if base, ok := strings.CutSuffix(name, ext); ok {
			return base + "-" + sum[:12] + ext
		}
	}
	return name + "-" + sum[:12]
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// k3sModules are the kernel modules k3s loads or the kernel requests for it:
// what k3s modprobes at start (overlay, nf_conntrack, br_netfilter,
// iptable_nat, iptable_filter, nft_*), flannel's vxlan and the netfilter
// matches kube-proxy and flannel use, and the container features
// contrib/util/check-config.sh lists as modules (veth, bridge, xt_*,
// ip_vs is optional there and left out). Each must be a module or built in.
var k3sModules = []string{
	"overlay", "br_netfilter", "bridge", "veth", "vxlan", "nf_conntrack", "nf_nat",
	"ip_tables", "ip6_tables", "iptable_nat", "iptable_filter", "iptable_mangle", "ip6table_nat", "ip6table_filter",
	"nft_compat", "nft_chain_nat", "nf_tables",
	"xt_conntrack", "xt_MASQUERADE", "xt_comment", "xt_mark", "xt_multiport", "xt_addrtype", "xt_nat", "xt_statistic",
	"ipt_REJECT", "ip_set", "xt_set",
}

// checkK3sModules fails when the board's kernel lacks a module k3s needs.
func checkK3sModules(ix *kmod.Index, release string) error {
	var missing []string
	for _, m := range k3sModules {
		if _, ok := ix.Module(m); !ok && !ix.Builtin(m) {
			missing = append(missing, m)
		}
	}
	if len(missing) > 0 {
		return invalidf("kernel %s lacks modules k3s needs (neither modules nor built in): %s", release, strings.Join(missing, ", "))
	}
	return nil
}

// addK3s puts k3s into the root: the binary, its pre-extracted data dir with
// the links k3s would make, kubectl/crictl/ctr links, mount/umount answered
// by the device binary, the preloaded image archives and the containerd
// store seeded from them.
func addK3s(t *tree.Tree, kr *k3sRoot) error {
	rel := func(p string) string { return strings.TrimPrefix(p, "/") }
	if err := t.AddHostFile(rel(contract.K3sBin), kr.bin, 0o755); err != nil {
		return err
	}
	for _, l := range []string{"kubectl", "crictl", "ctr"} {
		if err := t.AddSymlink(path.Join(path.Dir(rel(contract.K3sBin)), l), path.Base(contract.K3sBin)); err != nil {
			return err
		}
	}
	for _, p := range []string{contract.MountPath, contract.UmountPath} {
		target, _ := filepath.Rel(path.Dir(p), contract.InitPath)
		if err := t.AddSymlink(rel(p), filepath.ToSlash(target)); err != nil {
			return err
		}
	}
	data := rel(contract.K3sRootData)
	if err := addHost(t, data+"/"+kr.hash, kr.data, nil, 0, 0, nil); err != nil {
		return fmt.Errorf("k3s data: %w", err)
	}
	if err := t.AddSymlink(data+"/current", kr.hash); err != nil {
		return err
	}
	if len(kr.cni) > 0 || fileExists(filepath.Join(kr.data, "bin", "cni")) {
		for _, n := range slices.Concat([]string{"cni"}, kr.cni) {
			if err := t.AddSymlink(data+"/cni/"+n, "../"+kr.hash+"/bin/cni"); err != nil {
				return err
			}
		}
	}
	for _, f := range kr.images {
		if err := t.AddHostFile(rel(contract.K3sRootImages)+"/"+f.Name, f.Host, 0o644); err != nil {
			return err
		}
	}
	if kr.seed != "" {
		if err := addHost(t, rel(contract.K3sRootContainerd), kr.seed, nil, 0, 0, nil); err != nil {
			return fmt.Errorf("containerd seed: %w", err)
		}
	}
	return addManifests(t, kr.manifests)
}
