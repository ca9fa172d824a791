package k3s

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/config"
)

// Health states.
const (
	// Off: the image has no orchestrator (orchestrator kind none).
	Off      = "off"
	Starting = "starting"
	Ready    = "ready"
	NotReady = "not ready"
)

// Health is the orchestrator's state: what `basalt-init status` shows and
// the gate an A/B update commits on.
type Health struct {
	State  string    `json:"state"`
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since"`
}

// OK reports whether the gate passes: ready, or no orchestrator at all.
func (h Health) OK() bool { return h.State == Ready || h.State == Off }

func (h Health) String() string {
	if h.Reason == "" {
		return h.State
	}
	return h.State + ": " + h.Reason
}

// Where k3s keeps what the checks read.
const (
	// kubeletKubeconfig is the agent's kubelet credential (client
	// certificate files) for the API server, written by k3s at join.
	kubeletKubeconfig = contract.K3sDataDir + "/agent/kubelet.kubeconfig"
	// kubeletHealthz is kubelet's healthz endpoint (its default port).
	kubeletHealthz = "http://127.0.0.1:10248/healthz"
)

// checker is one readiness probe; nil means ready.
type checker func(ctx context.Context) error

// serverReady: /readyz answers "ok". k3s' API server runs with anonymous
// auth off, so the probe uses the admin client certificate from k3s.yaml.
func serverReady(root string) checker {
	return func(ctx context.Context) error {
		c, err := loadKubeconfig(root + contract.K3sKubeconfig)
		if err != nil {
			return fmt.Errorf("no admin kubeconfig yet: %w", err)
		}
		body, err := c.get(ctx, "/readyz")
		if err != nil {
			return fmt.Errorf("readyz: %w", err)
		}
		if strings.TrimSpace(string(body)) != "ok" {
			return fmt.Errorf("readyz: %q", strings.TrimSpace(string(body)))
		}
		return nil
	}
}

// agentReady: kubelet's healthz answers ok and the API server knows the
// node (GET /api/v1/nodes/NAME with kubelet's own credential, which the
// node authorizer allows for its own node).
func agentReady(root string, nodeName func() string) checker {
	hc := &http.Client{Timeout: 5 * time.Second}
	return func(ctx context.Context) error {
		if _, err := httpGet(ctx, hc, kubeletHealthz, ""); err != nil {
			return fmt.Errorf("kubelet healthz: %w", err)
		}
		c, err := loadKubeconfig(root + kubeletKubeconfig)
		if err != nil {
			return fmt.Errorf("not joined yet: %w", err)
		}
		name := nodeName()
		if _, err := c.get(ctx, "/api/v1/nodes/"+url.PathEscape(name)); err != nil {
			return fmt.Errorf("node %s not registered: %w", name, err)
		}
		return nil
	}
}

// check runs the probe for cfg's role.
func check(ctx context.Context, root string, cfg *config.Config, nodeName func() string) error {
	var c checker
	if Role(cfg.Cluster) == config.RoleAgent {
		c = agentReady(root, nodeName)
	} else {
		c = serverReady(root)
	}
	err := c(ctx)
	var ue *url.Error
	if errors.As(err, &ue) && ue.Timeout() {
		return fmt.Errorf("%w (timed out)", err)
	}
	return err
}
