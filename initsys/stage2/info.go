package stage2

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/basaltos/basalt/contract/config"
	"github.com/basaltos/basalt/initsys/boot"
	"github.com/basaltos/basalt/initsys/k3s"
	"github.com/basaltos/basalt/initsys/status"
	"github.com/basaltos/basalt/initsys/update"
)

// infoScreen is what the console shows after the ready marker, and again
// on a key press: who the device is and how to reach it. A console that
// showed nothing after "ready" looked like a dead end.
func infoScreen(st status.Status, hostname string, cfg *config.Config, shell bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n  %s — basalt %s, slot %s\n", hostname, st.Version, st.Slot)
	ifaces := slices.Sorted(maps.Keys(st.Addresses))
	if len(ifaces) == 0 {
		b.WriteString("  address:  none (no network)\n")
	}
	for _, i := range ifaces {
		fmt.Fprintf(&b, "  address:  %s %s\n", i, strings.Join(st.Addresses[i], " "))
	}
	for _, u := range st.NetworkUnmatched {
		fmt.Fprintf(&b, "  network:  %s\n", u)
	}
	for _, sv := range st.Services {
		fmt.Fprintf(&b, "  service:  %-16s %s\n", sv.Name, sv.Phase)
	}
	if st.Orchestrator.State != "" && st.Orchestrator.State != k3s.Off {
		fmt.Fprintf(&b, "  k3s:      %s\n", st.Orchestrator.String())
	}
	// A rollback or a slot refused at boot (stage 1's fallback): why.
	if u := st.Update; u != nil && u.Phase == update.RolledBack {
		fmt.Fprintf(&b, "  update:   %s\n", u)
	}
	users := sshUsers(cfg)
	switch {
	case len(users) == 0:
		b.WriteString("  login:    no SSH keys configured: add ssh_authorized_keys with a drop-in (basalt config add IMAGE FILE)\n")
	default:
		addr := "ADDRESS"
		if len(ifaces) > 0 && len(st.Addresses[ifaces[0]]) > 0 {
			addr, _, _ = strings.Cut(st.Addresses[ifaces[0]][0], "/")
		}
		fmt.Fprintf(&b, "  login:    ssh %s@%s (the configured keys)\n", users[0], addr)
		if len(users) > 1 {
			fmt.Fprintf(&b, "            also: %s\n", strings.Join(users[1:], ", "))
		}
	}
	if shell {
		fmt.Fprintf(&b, "  console:  no login here; %s runs only as the emergency shell (basalt.debug=1, after a failed boot step)\n", boot.ShellPath)
	} else {
		b.WriteString("  console:  no shell on this console (set debug.shell: true in the spec for an emergency shell)\n")
	}
	b.WriteString("  press a key to show this again\n")
	return b.String()
}

// sshUsers are the users with SSH keys in cfg, in config order; top-level
// keys belong to the default user.
func sshUsers(cfg *config.Config) []string {
	if cfg == nil {
		return nil
	}
	var out []string
	if len(cfg.SSHAuthorizedKeys) > 0 {
		out = append(out, config.DefaultUser)
	}
	for _, u := range cfg.Users {
		if len(u.SSHAuthorizedKeys) > 0 && !slices.Contains(out, u.Name) {
			out = append(out, u.Name)
		}
	}
	return out
}

// showInfoOnKey shows the info screen again on every key press on the
// console (in: fd 0). The console leaves canonical mode and echo, so that
// one key is enough and typed text is not echoed into nothing; output
// processing stays on (service logs keep their line endings).
func showInfoOnKey(in *os.File, out io.Writer, show func() string) {
	if t, err := unix.IoctlGetTermios(int(in.Fd()), unix.TCGETS); err == nil {
		t.Lflag &^= unix.ICANON | unix.ECHO
		t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
		_ = unix.IoctlSetTermios(int(in.Fd()), unix.TCSETS, t)
	}
	buf := make([]byte, 64)
	for {
		if _, err := in.Read(buf); err != nil {
			return
		}
		fmt.Fprint(out, show())
	}
}
