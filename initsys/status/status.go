// Package status serves PID 1's state as JSON on a unix socket
// (/run/basalt/init.sock) and formats it for `basalt-init status`.
package status

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/basaltos/basalt/initsys/boot"
	"github.com/basaltos/basalt/initsys/k3s"
	"github.com/basaltos/basalt/initsys/sock"
	"github.com/basaltos/basalt/initsys/supervise"
	"github.com/basaltos/basalt/initsys/update"
)

// Socket is where PID 1 serves its status; ReloadSocket re-reads the
// device config on each connection and answers what it did.
const (
	Socket       = "/run/basalt/init.sock"
	ReloadSocket = "/run/basalt/reload.sock"
)

// Status is what `basalt-init status` shows.
type Status struct {
	Slot          string            `json:"slot"`
	Version       string            `json:"version"`
	Ready         bool              `json:"ready"`
	Steps         []boot.Result     `json:"steps"`
	Services      []supervise.State `json:"services"`
	ConfigSources []string          `json:"config_sources,omitempty"`
	ConfigErrors  []string          `json:"config_errors,omitempty"`
	// ConfigWarnings are unsupported keys and the like; ConfigUsedLastGood
	// says an invalid source made the device keep its last good config.
	ConfigWarnings []string `json:"config_warnings,omitempty"`
	// ConfigRefused are sources ignored under configTrust: signed
	// (unsigned, badly signed, command-line keys that are not harmless).
	ConfigRefused      []string            `json:"config_refused,omitempty"`
	ConfigUsedLastGood bool                `json:"config_used_last_good,omitempty"`
	DataBytes          uint64              `json:"data_bytes"`
	Addresses          map[string][]string `json:"addresses,omitempty"`
	// NetworkUnmatched are network config entries that selected no
	// interface (netup.Unmatched).
	NetworkUnmatched []string `json:"network_unmatched,omitempty"`
	// Orchestrator is k3s' health (the update commit gate).
	Orchestrator k3s.Health `json:"orchestrator"`
	// Verity is the root's dm-verity state.
	Verity Verity `json:"verity"`
	// Update is the A/B update's state (nil before the updater started).
	Update *update.Status `json:"update,omitempty"`
}

// Verity states of the root.
const (
	VerityOff      = "off"      // no root hash on the command line: not verified
	VerityVerified = "verified" // every block read so far matched
	VerityCorrupt  = "corrupt"  // dm-verity refused a block since boot
)

// Verity is the root's dm-verity state.
type Verity struct {
	State    string `json:"state"`
	RootHash string `json:"root_hash,omitempty"`
	// Detail says what the device did about a corrupt root.
	Detail string `json:"detail,omitempty"`
}

// Serve answers every connection on path with get()'s JSON until ctx ends.
func Serve(ctx context.Context, path string, get func() Status) error {
	return ServeJSON(ctx, path, func() any { return get() })
}

// ServeJSON answers every connection on path with answer()'s JSON, one
// connection at a time, until ctx ends.
func ServeJSON(ctx context.Context, path string, answer func() any) error {
	l, err := sock.Listen(ctx, path)
	if err != nil {
		return err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			v := answer()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			json.NewEncoder(c).Encode(v)
			c.Close()
		}
	}()
	return nil
}

// QueryJSON reads one JSON answer from the socket at path into v, waiting
// up to timeout.
func QueryJSON(path string, timeout time.Duration, v any) error {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return fmt.Errorf("is basalt-init running as PID 1? %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if err := json.NewDecoder(c).Decode(v); err != nil {
		return fmt.Errorf("answer from %s: %w", path, err)
	}
	return nil
}

// Query reads the status from the socket at path.
func Query(path string) (Status, error) {
	var s Status
	if err := QueryJSON(path, 5*time.Second, &s); err != nil {
		return s, fmt.Errorf("status: %w", err)
	}
	return s, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Format writes s for people.
func Format(w io.Writer, s Status) {
	fmt.Fprintf(w, "slot:     %s\nversion:  %s\nready:    %v\ndata:     %d bytes (%.2f GiB)\n", s.Slot, s.Version, s.Ready, s.DataBytes, float64(s.DataBytes)/(1<<30))
	v := "verity:   " + s.Verity.State
	if s.Verity.RootHash != "" {
		v += " (root hash " + s.Verity.RootHash + ")"
	}
	if s.Verity.Detail != "" {
		v += ": " + s.Verity.Detail
	}
	fmt.Fprintln(w, v)
	fmt.Fprintln(w, "boot steps:")
	for _, r := range s.Steps {
		res := "ok"
		if r.Err != "" {
			res = "failed: " + r.Err
		}
		fmt.Fprintf(w, "  %-18s %6d ms  %s\n", r.Name, r.Duration.Milliseconds(), res)
	}
	fmt.Fprintf(w, "orchestrator: %s\n", s.Orchestrator)
	if u := s.Update; u != nil {
		fmt.Fprintf(w, "update:   %s\n", u)
		if u.AB != "" {
			fmt.Fprintf(w, "a/b:      %s (a: %s, b: %s)\n", u.AB, or(u.Slots["a"], "-"), or(u.Slots["b"], "-"))
		}
		if u.FailedVersion != "" {
			fmt.Fprintf(w, "update:   %s failed and rolled back: %s\n", u.FailedVersion, u.FailedReason)
		}
	}
	fmt.Fprintln(w, "services:")
	for _, v := range s.Services {
		fmt.Fprintf(w, "  %-18s %-8s pid %-6d restarts %-3d restart=%s last: %s\n", v.Name, v.Phase, v.PID, v.Restarts, v.Restart, v.LastExit)
	}
	for ifc, a := range s.Addresses {
		fmt.Fprintf(w, "network:  %s %v\n", ifc, a)
	}
	for _, u := range s.NetworkUnmatched {
		fmt.Fprintf(w, "network:  %s\n", u)
	}
	fmt.Fprintf(w, "config sources: %v\n", s.ConfigSources)
	for _, e := range s.ConfigErrors {
		fmt.Fprintf(w, "config error: %s\n", e)
	}
	for _, e := range s.ConfigRefused {
		fmt.Fprintf(w, "config refused: %s\n", e)
	}
	for _, e := range s.ConfigWarnings {
		fmt.Fprintf(w, "config warning: %s\n", e)
	}
	if s.ConfigUsedLastGood {
		fmt.Fprintln(w, "config: using the last good config")
	}
}
