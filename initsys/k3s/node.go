package k3s

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/config"
	"github.com/basaltos/basalt/initsys/say"
	"github.com/basaltos/basalt/initsys/supervise"
)

// ServiceName is k3s' name in the supervisor (console prefix [k3s], log
// /var/log/basalt/k3s.log).
const ServiceName = "k3s"

// Probe intervals: often while starting, calmly once ready.
const (
	probeStarting = 2 * time.Second
	probeReady    = 10 * time.Second
)

// Options configure a Node.
type Options struct {
	// Root is the device's "/" (a temp dir in tests).
	Root string
	// Config is the merged device config in effect.
	Config *config.Config
	// Env is the service environment (PATH, HOME).
	Env []string
	// Sup supervises k3s.
	Sup *supervise.Supervisor
	// ProcNetRoute is the kernel's IPv4 route table (/proc/net/route).
	ProcNetRoute string
}

// Node is k3s on this device. A nil *Node is an image without k3s: its
// Health is Off.
type Node struct {
	o Options

	mu     sync.Mutex
	cfg    *config.Config
	health Health
	ready  bool // was ready once
}

// Present reports whether the root under root carries k3s (contract.K3sBin).
func Present(root string) bool {
	_, err := os.Stat(filepath.Join(root, contract.K3sBin))
	return err == nil
}

// Start links the root's k3s data, images and manifests into k3s' data
// dir, starts k3s under the supervisor (each start first checks the IPv4
// default route and rewrites /etc/rancher/k3s from the config) and
// watches its health until ctx ends.
func Start(ctx context.Context, o Options) (*Node, error) {
	if o.ProcNetRoute == "" {
		o.ProcNetRoute = "/proc/net/route"
	}
	n := &Node{o: o, cfg: o.Config, health: Health{State: Starting, Reason: "k3s not started yet", Since: time.Now()}}
	if err := Link(o.Root); err != nil {
		return nil, err
	}
	svc := supervise.Service{Name: ServiceName, Path: filepath.Join(o.Root, contract.K3sBin), Args: Args(n.config().Cluster),
		Env: o.Env, Restart: supervise.Always, Check: n.precheck}
	if err := o.Sup.Start([]supervise.Service{svc}); err != nil {
		return nil, err
	}
	go n.watch(ctx)
	return n, nil
}

func (n *Node) config() *config.Config {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cfg == nil {
		return &config.Config{}
	}
	return n.cfg
}

// precheck runs before each k3s start: the default route k3s needs, then
// its config files from the config in effect.
func (n *Node) precheck() error {
	cfg := n.config()
	if cfg.Cluster == nil || cfg.Cluster.NodeIP == nil {
		ifc, err := DefaultRoute(n.o.ProcNetRoute)
		if err != nil {
			return err
		}
		if ifc == "" {
			n.set(NotReady, ErrNoDefaultRoute.Error())
			return ErrNoDefaultRoute
		}
	}
	if err := WriteConfig(n.o.Root, cfg); err != nil {
		n.set(NotReady, err.Error())
		return err
	}
	return nil
}

// Restart makes k3s run with cfg (a config reload changed the cluster or
// registries section): the next start writes its files, and k3s is
// restarted now. The command line (role, extra args) is the one of the
// boot: a role change takes a reboot.
func (n *Node) Restart(cfg *config.Config) error {
	if n == nil {
		return nil
	}
	if got, want := Args(cfg.Cluster), Args(n.config().Cluster); strings.Join(got, " ") != strings.Join(want, " ") {
		return fmt.Errorf("k3s: role or extra_args changed (%s -> %s): takes effect at the next boot", strings.Join(want, " "), strings.Join(got, " "))
	}
	n.mu.Lock()
	n.cfg = cfg
	n.mu.Unlock()
	if !n.o.Sup.Restart(ServiceName) {
		return nil // in backoff: the next start reads cfg
	}
	n.set(Starting, "restarted for a config change")
	return nil
}

// Health is the orchestrator's state; Off for a nil Node.
func (n *Node) Health() Health {
	if n == nil {
		return Health{State: Off, Reason: "no orchestrator in this image"}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.health
}

// set records a state; "not ready" before the first ready is "starting".
func (n *Node) set(state, reason string) {
	n.mu.Lock()
	if state == NotReady && !n.ready {
		state = Starting
	}
	if state == Ready {
		n.ready = true
	}
	old := n.health
	if old.State != state || old.Reason != reason {
		n.health = Health{State: state, Reason: reason, Since: time.Now()}
	}
	n.mu.Unlock()
	if old.State != state { // said as contract markers
		role := Role(n.config().Cluster)
		switch state {
		case Ready:
			say.Mark(contract.MarkerOrchestratorReady, " (k3s %s)", role)
		default:
			say.Printf("orchestrator %s (k3s %s): %s", state, role, reason)
		}
	}
}

// watch probes readiness until ctx ends.
func (n *Node) watch(ctx context.Context) {
	for {
		cfg := n.config()
		pctx, cancel := context.WithTimeout(ctx, 8*time.Second)
		err := check(pctx, n.o.Root, cfg, func() string { return nodeName(cfg) })
		cancel()
		if err == nil {
			n.set(Ready, "")
		} else {
			n.set(NotReady, n.reason(err))
		}
		d := probeStarting
		if err == nil {
			d = probeReady
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
	}
}

// reason is the probe's error, with the service's state when k3s is not
// running (a failed precheck, an exit and its backoff).
func (n *Node) reason(err error) string {
	for _, st := range n.o.Sup.Status() {
		if st.Name == ServiceName && st.PID == 0 && st.LastExit != "" {
			return fmt.Sprintf("k3s %s (restarts %d, last: %s)", st.Phase, st.Restarts, st.LastExit)
		}
	}
	return err.Error()
}

// nodeName is the node's name in the cluster: cluster.node_name, else the
// host name (as k3s does).
func nodeName(cfg *config.Config) string {
	if cfg.Cluster != nil && cfg.Cluster.NodeName != nil && *cfg.Cluster.NodeName != "" {
		return *cfg.Cluster.NodeName
	}
	h, _ := os.Hostname()
	return strings.ToLower(h)
}
