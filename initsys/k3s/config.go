// Package k3s runs the orchestrator on the device: it writes
// /etc/rancher/k3s (config.yaml, registries.yaml) from the merged device
// config, links the root's pre-extracted k3s data, preloaded images and
// manifests into k3s' data dir (contract/k3s.go), starts k3s under the
// supervisor (any exit is a restart with backoff: k3s can exit 0 on a fatal
// host problem), refuses to start it without an IPv4 default route (k3s then
// silently comes up IPv6-only), and watches its health: the gate A/B
// updates commit on.
package k3s

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/config"
	"github.com/basaltos/basalt/initsys/identity"
)

// File names in contract.K3sConfigDir. k3s merges ConfigFile with
// ConfigDropIns/*.yaml (lexical order); basalt writes only ConfigFile, so a
// user's write_files drop-in in config.yaml.d/ adds to it.
const (
	ConfigFile     = "config.yaml"
	ConfigDropIns  = "config.yaml.d"
	RegistriesFile = "registries.yaml"
)

// flags is config.yaml: k3s' command-line flag names as keys (k3s reads
// the file as if each key were --key=value).
type flags struct {
	Server            string   `yaml:"server,omitempty"`
	Token             string   `yaml:"token,omitempty"`
	TokenFile         string   `yaml:"token-file,omitempty"`
	NodeName          string   `yaml:"node-name,omitempty"`
	NodeIP            string   `yaml:"node-ip,omitempty"`
	NodeLabel         []string `yaml:"node-label,omitempty"`
	NodeTaint         []string `yaml:"node-taint,omitempty"`
	DatastoreEndpoint string   `yaml:"datastore-endpoint,omitempty"`
	ClusterInit       bool     `yaml:"cluster-init,omitempty"`
}

// Role is the cluster role of c: server unless it says agent.
func Role(c *config.Cluster) string {
	if c != nil && c.Role != nil && *c.Role == config.RoleAgent {
		return config.RoleAgent
	}
	return config.RoleServer
}

// Args is k3s' command line (without argv[0]): the role, then the
// config's extra args.
func Args(c *config.Cluster) []string {
	args := []string{Role(c)}
	if c != nil {
		args = append(args, c.ExtraArgs...)
	}
	return args
}

// Render returns config.yaml and, when the config has registries,
// registries.yaml (nil otherwise). Both may hold secrets.
//
// Datastore: "sqlite" or unset is k3s' default (kine on SQLite, no key);
// "etcd" is k3s' embedded etcd: cluster-init on a server without
// cluster.server (the first of an HA trio), server: on the others; an
// endpoint URL is datastore-endpoint.
func Render(cfg *config.Config) (conf, registries []byte, err error) {
	var f flags
	if c := cfg.Cluster; c != nil {
		f.Server = deref(c.Server)
		if c.Token != nil {
			f.Token = string(*c.Token)
		}
		f.TokenFile = deref(c.TokenFile)
		f.NodeName = deref(c.NodeName)
		f.NodeIP = deref(c.NodeIP)
		for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
			f.NodeLabel = append(f.NodeLabel, k+"="+c.Labels[k])
		}
		f.NodeTaint = c.Taints
		if c.Datastore != nil && Role(c) == config.RoleServer {
			switch ds := string(*c.Datastore); ds {
			case "", config.DatastoreSQLite:
			case config.DatastoreEtcd:
				f.ClusterInit = f.Server == ""
			default:
				f.DatastoreEndpoint = ds
			}
		}
	}
	if conf, err = yaml.Marshal(f); err != nil {
		return nil, nil, fmt.Errorf("k3s %s: %w", ConfigFile, err)
	}
	if r := cfg.Registries; r != nil && (len(r.Mirrors) > 0 || len(r.Configs) > 0) {
		if registries, err = yaml.Marshal(r); err != nil {
			return nil, nil, fmt.Errorf("k3s %s: %w", RegistriesFile, err)
		}
	}
	return conf, registries, nil
}

// WriteConfig writes config.yaml and registries.yaml under root (the
// device's "/") 0600, atomically and only when changed; a registries.yaml
// basalt no longer has content for is removed.
func WriteConfig(root string, cfg *config.Config) error {
	conf, reg, err := Render(cfg)
	if err != nil {
		return err
	}
	dir := filepath.Join(root, contract.K3sConfigDir)
	if err := os.MkdirAll(filepath.Join(dir, ConfigDropIns), 0o755); err != nil {
		return fmt.Errorf("k3s config: %w", err)
	}
	if err := identity.WriteFile(filepath.Join(dir, ConfigFile), conf, 0o600); err != nil {
		return fmt.Errorf("k3s config: %w", err)
	}
	regPath := filepath.Join(dir, RegistriesFile)
	if reg == nil {
		if err := os.Remove(regPath); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("k3s config: %w", err)
		}
		return nil
	}
	if err := identity.WriteFile(regPath, reg, 0o600); err != nil {
		return fmt.Errorf("k3s config: %w", err)
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return strings.TrimSpace(*s)
}
