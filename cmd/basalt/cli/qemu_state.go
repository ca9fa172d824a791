package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/basaltos/basalt/contract/config"
	"github.com/basaltos/basalt/image/cache"
	"github.com/basaltos/basalt/internal/errclass"
	"github.com/basaltos/basalt/qemu"
)

// vmStateFile is what `basalt qemu --cluster` (or --name) keeps in its state directory
// while the VMs run (removed when they stop), next to the SSH key it seeded
// as root's: `basalt kubeconfig --qemu` reads it, so the host reaches the
// server's kubeconfig and API through the forwarded ports without hand edits.
const (
	vmStateFile = "qemu.json"
	vmKeyFile   = "id_ed25519"
)

type vmState struct {
	// Key is the private key file whose public half every VM's seed gives
	// root ("": the user's own seed, so the user's own keys).
	Key string `json:"ssh_key,omitempty"`
	// API is the host's URL of the server's API (forwarded to its 6443).
	API   string   `json:"api"`
	Nodes []vmNode `json:"nodes"`
}

type vmNode struct {
	Name string `json:"name"`
	Role string `json:"role"`
	IP   string `json:"ip"`
	// SSH is the host address forwarded to the VM's port 22.
	SSH string `json:"ssh"`
}

// qemuStateDir is the state directory of the VMs named name: name itself
// when it is a path, else <cache dir>/qemu/<name>.
func qemuStateDir(name string) (string, error) {
	if strings.ContainsRune(name, filepath.Separator) || name == "." || name == ".." {
		return name, nil
	}
	if name == "" || strings.HasPrefix(name, ".") {
		return "", errclass.Invalidf("VM name %q: want a name (letters, digits, -) or a state directory path", name)
	}
	d, err := cache.DefaultDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "qemu", name), nil
}

// newVMKey makes the state directory (0700) and a fresh SSH key in it; it
// returns the key file and the public key's authorized_keys line.
func newVMKey(dir string) (string, string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return "", "", err
	}
	blk, err := ssh.MarshalPrivateKey(priv, "basalt qemu")
	if err != nil {
		return "", "", err
	}
	p := filepath.Join(dir, vmKeyFile)
	if err := writeAtomic(p, 0o600, func(f *os.File) error { return pem.Encode(f, blk) }); err != nil {
		return "", "", err
	}
	return p, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))), nil
}

func (s *vmState) write(dir string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, vmStateFile), 0o600, func(f *os.File) error { _, err := f.Write(append(b, '\n')); return err })
}

// readVMState reads the state of running VMs (`basalt qemu --cluster`).
func readVMState(name string) (*vmState, error) {
	dir, err := qemuStateDir(name)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, vmStateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errclass.Invalidf("--qemu %s: no %s in %s: is `basalt qemu [--cluster N] --name %s` running?", name, vmStateFile, dir, name)
	}
	if err != nil {
		return nil, err
	}
	var s vmState
	if err := json.Unmarshal(b, &s); err != nil || len(s.Nodes) == 0 {
		return nil, fmt.Errorf("%s: not a basalt qemu state file (%v)", filepath.Join(dir, vmStateFile), err)
	}
	return &s, nil
}

func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// runNamed boots one VM like `basalt qemu`, plus what `basalt kubeconfig
// --qemu name` needs: its SSH and API forwarded to free ports, a seed that
// gives root a fresh key (unless the user brings a seed: then that seed's
// keys, and no key in the state), the state file while it runs.
func runNamed(ctx context.Context, c qemu.Config, name, state string, seeded bool) error {
	arg, name := name, filepath.Base(name) // a state directory path names it too
	key := ""
	if err := os.MkdirAll(state, 0o700); err != nil {
		return fmt.Errorf("VM state: %w", err)
	}
	defer os.Remove(filepath.Join(state, vmStateFile))
	if !seeded {
		k, pub, err := newVMKey(state)
		if err != nil {
			return fmt.Errorf("VM state: %w", err)
		}
		key = k
		ud, err := userData(name, &config.Config{Users: []config.User{{Name: "root", SSHAuthorizedKeys: []string{pub}}}})
		if err != nil {
			return err
		}
		seed, err := writeUserDataSeed(state, name, ud)
		if err != nil {
			return err
		}
		defer os.Remove(seed)
		c.ExtraDrives = append(append([]string(nil), c.ExtraDrives...), seed)
	}
	sshPort, err := freeLoopbackPort()
	if err != nil {
		return err
	}
	apiPort, err := freeLoopbackPort()
	if err != nil {
		return err
	}
	c.Net.User = true
	c.Net.Forwards = append(append([]qemu.Forward(nil), c.Net.Forwards...),
		qemu.Forward{Proto: "tcp", HostPort: sshPort, GuestPort: 22}, qemu.Forward{Proto: "tcp", HostPort: apiPort, GuestPort: 6443})
	st := vmState{Key: key, API: fmt.Sprintf("https://127.0.0.1:%d", apiPort), Nodes: []vmNode{{Name: name, SSH: fmt.Sprintf("127.0.0.1:%d", sshPort)}}}
	if err := st.write(state); err != nil {
		return fmt.Errorf("VM state: %w", err)
	}
	if c.Console != nil {
		fmt.Fprintf(c.Console, "basalt: qemu: %s: ssh 127.0.0.1:%d, API %s; state in %s (basalt kubeconfig --qemu %s)\n", name, sshPort, st.API, state, arg)
	}
	return qemu.Run(ctx, c)
}
