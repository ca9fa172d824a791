package stage2

import (
	"strings"
	"testing"

	"github.com/basaltos/basalt/contract/config"
	"github.com/basaltos/basalt/initsys/k3s"
	"github.com/basaltos/basalt/initsys/status"
	"github.com/basaltos/basalt/initsys/supervise"
	"github.com/basaltos/basalt/initsys/update"
)

// TestInfoScreen: the console after "ready" names the device, its
// addresses, slot, version, services and how to log in, and says there is
// no console shell.
func TestInfoScreen(t *testing.T) {
	st := status.Status{Slot: "a", Version: "1.4.0", Addresses: map[string][]string{"eth0": {"10.0.2.15/24"}},
		Services: []supervise.State{{Name: "pos", Phase: "running"}}, Orchestrator: k3s.Health{State: k3s.Ready},
		NetworkUnmatched: []string{"config entry lan: match {name en*} selects no interface"}}
	cfg := &config.Config{Users: []config.User{{Name: "ops", SSHAuthorizedKeys: []string{"ssh-ed25519 AAAA ops"}}}}
	got := infoScreen(st, "store-0042", cfg, false)
	for _, want := range []string{"store-0042 — basalt 1.4.0, slot a", "address:  eth0 10.0.2.15/24", "service:  pos", "running",
		"k3s:      ready", "login:    ssh ops@10.0.2.15", "no shell on this console", "selects no interface", "press a key"} {
		if !strings.Contains(got, want) {
			t.Errorf("info screen lacks %q:\n%s", want, got)
		}
	}
	// The slot the device fell back to says why (on a key press: the
	// updater reads the A/B state after the first screen).
	st.Update = &update.Status{Phase: update.RolledBack, Version: "1.4.0", Slot: "b", Reason: "stage 1 refused its root: dm-verity found corruption"}
	if got := infoScreen(st, "store-0042", cfg, false); !strings.Contains(got, "update:   rolled back 1.4.0 (slot b): stage 1 refused its root: dm-verity found corruption") {
		t.Errorf("info screen after a fallback:\n%s", got)
	}
	if got := infoScreen(status.Status{}, "x", nil, true); !strings.Contains(got, "no SSH keys configured") || !strings.Contains(got, "emergency shell") {
		t.Errorf("info screen without keys, with a shell:\n%s", got)
	}
}
