// Package manifests holds the Kubernetes manifests basalt itself gives every
// k3s image (embedded, like overlays/): the builder puts them in the root's
// contract.K3sRootManifests next to the spec's manifests: (a spec file of
// the same name replaces one of these), and the device links them into
// k3s' auto-deploy directory, which a k3s server applies at its start.
package manifests

import (
	"embed"
	"io/fs"
)

//go:embed *.yaml
var embedded embed.FS

// Default is basalt's default manifests, one file per name.
var Default fs.FS = embedded
