package contract

// The k3s on-disk contract between the builder and the device.
//
// What k3s does at start (cmd/k3s/main.go, k3s v1.3x): it finds its data dir
// ($K3S_DATA_DIR, else --data-dir, else data-dir in /etc/rancher/k3s/config.yaml,
// else /var/lib/rancher/k3s as root) and skips extracting its embedded
// data archive when <data-dir>/data/<hash>/bin/k3s exists (it checks the
// default data dir too). It then puts <data-dir>/data/cni, <hash>/bin and, last,
// <hash>/bin/aux on PATH and execs <hash>/bin/k3s-server (or -agent).
//
// The builder extracts that archive into the read-only root at K3sRootData
// (per slot, so a rollback rolls k3s back too), with the links extraction
// makes: K3sRootData/current -> <hash> and K3sRootData/cni/<plugin> ->
// ../<hash>/bin/cni. The device makes K3sDataDir/data a symlink to
// K3sRootData; k3s then finds bin/k3s and writes nothing under data/ (no
// .lock, no extraction, no current/previous rotation). Everything else k3s
// writes (server/db, server/tls, agent/, /etc/rancher) stays on the data
// partition.
const (
	// K3sBin is the k3s release binary in the root. Its presence means the
	// image runs k3s (orchestrator kind k3s); kind none has no K3sBin.
	K3sBin = "/usr/bin/k3s"
	// K3sDataDir is k3s' data dir on the device, k3s' own default, on the
	// data partition (through /var). The device passes no --data-dir.
	K3sDataDir = "/var/lib/rancher/k3s"
	// K3sRootData is the pre-extracted data/ directory of k3s in the root:
	// <hash>/bin/k3s, current, cni/. The device links K3sDataDir+"/data" to it.
	K3sRootData = "/usr/lib/basalt/k3s/data"

	// K3sRootImages holds the preloaded image archives in the root (k3s'
	// air-gap archive and the spec's images:), each a .tar or .tar.zst whose
	// name carries its content digest, so a changed archive has a new name
	// and k3s' .cache.json (keyed by path, size, mtime) cannot mistake it
	// for an imported one.
	K3sRootImages = "/usr/lib/basalt/k3s/images"
	// K3sImagesDir is where k3s imports archives from (writable, on data).
	// The device links each file of K3sRootImages into it under the same
	// name (once: the link's own mtime must not change), removes links into
	// K3sRootImages whose target no longer exists (after an update or
	// rollback), and creates an empty K3sImagesCache if it is missing, which
	// makes k3s skip archives it imported before.
	K3sImagesDir   = K3sDataDir + "/agent/images"
	K3sImagesCache = ".cache.json"

	// K3sRootContainerd is a containerd store the builder seeded from the
	// preloaded archives (containerd's own importer, namespace k8s.io, k3s'
	// labels: pinned, managed): io.containerd.metadata.v1.bolt/meta.db and
	// io.containerd.content.v1.content/blobs/sha256/<hex>, the layout of
	// containerd's root, plus K3sRootContainerdID. At boot, before k3s
	// starts, when k3s' containerd root K3sContainerdDir has no meta.db yet
	// (first boot), the device copies meta.db there, links each blob into
	// its content store, and records the seed's id in K3sContainerdSeeded:
	// containerd then starts with the images present and k3s has nothing
	// to import. While K3sContainerdSeeded names this root's seed, the
	// device does not link the archives into K3sImagesDir; when it names
	// another (an update or rollback to a slot with other images), it links
	// this root's blobs and archives, and k3s imports the archives once.
	K3sRootContainerd   = "/usr/lib/basalt/k3s/containerd"
	K3sRootContainerdID = K3sRootContainerd + "/id" // hex sha256 of the seed's meta.db
	// K3sContainerdDir is k3s' containerd root (on data).
	K3sContainerdDir    = K3sDataDir + "/agent/containerd"
	K3sContainerdSeeded = K3sContainerdDir + "/basalt-seed"
	// Inside a containerd root (K3sRootContainerd, K3sContainerdDir).
	ContainerdMetaDB = "io.containerd.metadata.v1.bolt/meta.db"
	ContainerdBlobs  = "io.containerd.content.v1.content/blobs/sha256"

	// K3sRootManifests holds the spec's manifests: in the root. The device
	// links each file into K3sManifestsDir (k3s writes its own packaged
	// manifests there, so that directory stays a writable one on data).
	K3sRootManifests = "/usr/lib/basalt/k3s/manifests"
	K3sManifestsDir  = K3sDataDir + "/server/manifests"

	// K3sConfigDir is /etc/rancher/k3s: config.yaml, config.yaml.d/,
	// registries.yaml, written by the device from its config.
	K3sConfigDir = "/etc/rancher/k3s"
	// K3sKubeconfig is the admin kubeconfig k3s writes on a server (0600):
	// the device's readiness probe and `basalt kubeconfig` read it.
	K3sKubeconfig = K3sConfigDir + "/k3s.yaml"
	// K3sNodePassword is the node's password k3s creates at its first
	// join; it must persist (the /etc overlay's upper is on data) or the
	// node cannot re-register under its name.
	K3sNodePassword = "/etc/rancher/node/password"
)

// Release-file keys (ReleaseFile) the builder writes for the orchestrator:
// ORCHESTRATOR=k3s|none, K3S_VERSION=v1.X.Y+k3sN, K3S_DATA_HASH=<hash>.
const (
	ReleaseOrchestrator = "ORCHESTRATOR"
	ReleaseK3sVersion   = "K3S_VERSION"
	ReleaseK3sDataHash  = "K3S_DATA_HASH"
)

// Names the device binary answers to (argv[0] personalities): the builder
// links each in the root to InitPath.
const (
	// ModprobePath: k3s runs modprobe from PATH, the kernel /sbin/modprobe.
	ModprobePath = "/sbin/modprobe"
	// MountPath and UmountPath: kubelet execs mount/umount for pod volumes.
	MountPath  = "/bin/mount"
	UmountPath = "/bin/umount"
)
