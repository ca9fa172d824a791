// Package k3s is the builder's side of k3s: the release assets per
// architecture, their fetch and verification against the release's
// sha256sum file, the check that a binary can run on the board (static, the
// board's architecture), and the pre-extraction of the data archive k3s
// carries inside its binary into the root (contract.K3sRootData), so the
// device's first start unpacks nothing.
package k3s

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/basaltos/basalt/boards"
)

// DefaultBase is where k3s releases are downloaded from:
// DefaultBase + "/" + version (with + as %2B) + "/" + asset.
const DefaultBase = "https://github.com/k3s-io/k3s/releases/download"

// Assets names the release files of one architecture.
type Assets struct {
	Binary    string // k3s, k3s-arm64, k3s-armhf
	Airgap    string // k3s-airgap-images-<arch>.tar.zst
	Checksums string // sha256sum-<arch>.txt
}

// AssetsFor returns the release file names for a board architecture.
func AssetsFor(a boards.Arch) (Assets, error) {
	var bin, arch string
	switch a {
	case boards.AMD64:
		bin, arch = "k3s", "amd64"
	case boards.ARM64:
		bin, arch = "k3s-arm64", "arm64"
	case boards.ARMHF:
		bin, arch = "k3s-armhf", "arm"
	default:
		return Assets{}, fmt.Errorf("k3s has no release for architecture %q", a)
	}
	return Assets{Binary: bin, Airgap: "k3s-airgap-images-" + arch + ".tar.zst", Checksums: "sha256sum-" + arch + ".txt"}, nil
}

// AssetURL returns the download URL of asset in release version under base
// ("" : DefaultBase). The version's "+" is escaped as %2B, as GitHub wants.
func AssetURL(base, version, asset string) string {
	if base == "" {
		base = DefaultBase
	}
	return strings.TrimSuffix(base, "/") + "/" + strings.ReplaceAll(url.PathEscape(version), "+", "%2B") + "/" + asset
}
