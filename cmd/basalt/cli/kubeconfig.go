package cli

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/internal/errclass"
)

type kubeconfigOptions struct {
	ssh      string
	identity []string
	server   string
	out      string
	qemu     string
}

func newKubeconfigCmd(_ *globalOptions) *cobra.Command {
	o := &kubeconfigOptions{}
	cmd := &cobra.Command{
		Use:   "kubeconfig --ssh [USER@]HOST[:PORT] | --qemu NAME",
		Short: "Fetch a k3s server device's admin kubeconfig, with a server address this host can reach",
		Long: `Fetch ` + contract.K3sKubeconfig + ` from a k3s server device over its SSH server
(basalt's own, public keys only) and rewrite its server address (k3s writes
https://127.0.0.1:6443) to --server, default https://HOST:6443. The file holds the
admin client key: it is written 0600 (-o) or printed.

The SSH user must be able to read the file (root: a config user named root with
ssh_authorized_keys) and the image needs a shell for the session (basalt installs
busybox when a config user has keys). The host key is checked against
~/.ssh/known_hosts when the host is listed there; otherwise its fingerprint is
printed.

--qemu NAME takes the server of a running ` + "`basalt qemu --cluster N --name NAME`" + `
or ` + "`basalt qemu --name NAME`" + ` (or a state directory path): its forwarded SSH
address, the key basalt qemu seeded as root's, and the forwarded API address as
--server.

  basalt kubeconfig --ssh root@store-0042.lan -o store-0042.yaml
  basalt qemu k3s.img --cluster 3 --name edge &
  basalt kubeconfig --qemu edge -o edge.yaml
  basalt qemu k3s.img --forward 2222-:22 --forward 6443-:6443 &
  basalt kubeconfig --ssh root@127.0.0.1:2222 -i ~/.ssh/id_ed25519 --server https://127.0.0.1:6443`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.qemu != "" {
				if o.ssh != "" {
					return errclass.Invalidf("--ssh and --qemu: give one")
				}
				st, err := readVMState(o.qemu)
				if err != nil {
					return err
				}
				o.ssh = "root@" + st.Nodes[0].SSH
				if len(o.identity) == 0 && st.Key != "" {
					o.identity = []string{st.Key}
				}
				if o.server == "" {
					o.server = st.API
				}
			}
			if o.ssh == "" {
				return errclass.Invalidf("--ssh [USER@]HOST[:PORT] or --qemu NAME is required")
			}
			kc, host, err := fetchKubeconfig(o)
			if err != nil {
				return err
			}
			server := o.server
			if server == "" {
				server = "https://" + net.JoinHostPort(host, "6443")
			}
			out, err := rewriteKubeconfig(kc, server)
			if err != nil {
				return fmt.Errorf("%s from %s: %w", contract.K3sKubeconfig, o.ssh, err)
			}
			if o.out == "" {
				_, err := cmd.OutOrStdout().Write(out)
				return err
			}
			if err := writeAtomic(o.out, 0o600, func(f *os.File) error { _, err := f.Write(out); return err }); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (server %s)\n", o.out, server)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.ssh, "ssh", "", "the device's SSH address, [USER@]HOST[:PORT] (user default root, port 22)")
	f.StringArrayVarP(&o.identity, "identity", "i", nil, "private key file (repeatable; default ~/.ssh/id_ed25519, id_ecdsa, id_rsa)")
	f.StringVar(&o.server, "server", "", "API server URL to write (default https://HOST:6443, or the --qemu server's forwarded API)")
	f.StringVar(&o.qemu, "qemu", "", "the server of a running basalt qemu [--cluster N] --name NAME (or its state directory)")
	f.StringVarP(&o.out, "output", "o", "", "write the kubeconfig here (0600) instead of stdout")
	return cmd
}

// sshTarget splits [USER@]HOST[:PORT].
func sshTarget(s string) (user, host, addr string) {
	user, hp, ok := strings.Cut(s, "@")
	if !ok {
		user, hp = "root", s
	}
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		host, port = strings.Trim(hp, "[]"), "22"
	}
	return user, host, net.JoinHostPort(host, port)
}

// fetchKubeconfig reads the kubeconfig over SSH; host is the device's
// host name or address as given.
func fetchKubeconfig(o *kubeconfigOptions) ([]byte, string, error) {
	user, host, addr := sshTarget(o.ssh)
	signers, err := sshSigners(o.identity)
	if err != nil {
		return nil, host, err
	}
	cfg := &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signers...)},
		HostKeyCallback: hostKeyCheck(), Timeout: 15 * time.Second}
	c, err := ssh.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, host, fmt.Errorf("ssh %s@%s: %w", user, addr, err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		return nil, host, fmt.Errorf("ssh %s: %w", addr, err)
	}
	defer sess.Close()
	var stdout, stderr bytes.Buffer
	sess.Stdout, sess.Stderr = &stdout, &stderr
	if err := sess.Run("cat " + contract.K3sKubeconfig); err != nil {
		msg := strings.TrimSpace(stderr.String())
		switch {
		case strings.Contains(msg, "No such file"):
			return nil, host, fmt.Errorf("%s on %s: no such file: is it a k3s server, and has k3s started? (%w)", contract.K3sKubeconfig, addr, err)
		case strings.Contains(msg, "Permission denied"):
			return nil, host, fmt.Errorf("%s on %s: permission denied for %s: log in as root (%w)", contract.K3sKubeconfig, addr, user, err)
		}
		return nil, host, fmt.Errorf("ssh %s: cat %s: %w: %s", addr, contract.K3sKubeconfig, err, msg)
	}
	return stdout.Bytes(), host, nil
}

func sshSigners(files []string) ([]ssh.Signer, error) {
	explicit := len(files) > 0
	if !explicit {
		home, _ := os.UserHomeDir()
		for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			files = append(files, filepath.Join(home, ".ssh", n))
		}
	}
	var out []ssh.Signer
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			if explicit {
				return nil, errclass.Invalidf("--identity: %w", err)
			}
			continue
		}
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			return nil, errclass.Invalidf("%s: %w (passphrase-protected keys are not supported)", f, err)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, errclass.Invalidf("no SSH private key: pass -i KEY")
	}
	return out, nil
}

// hostKeyCheck verifies against ~/.ssh/known_hosts for hosts listed there;
// an unlisted host's key is accepted and its fingerprint printed.
func hostKeyCheck() ssh.HostKeyCallback {
	home, _ := os.UserHomeDir()
	known, kerr := knownhosts.New(filepath.Join(home, ".ssh", "known_hosts"))
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		if kerr == nil {
			err := known(hostname, remote, key)
			var ke *knownhosts.KeyError
			if err == nil || !errors.As(err, &ke) || len(ke.Want) > 0 {
				return err // known and matching, or known with another key
			}
		}
		fmt.Fprintf(os.Stderr, "basalt: %s host key %s (not in ~/.ssh/known_hosts: not verified)\n", hostname, ssh.FingerprintSHA256(key))
		return nil
	}
}

// rewriteKubeconfig sets every cluster's server to server, keeping the rest
// of the document as k3s wrote it.
func rewriteKubeconfig(kc []byte, server string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(kc, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("not a kubeconfig (want a YAML mapping)")
	}
	n := 0
	for _, c := range mapList(doc.Content[0], "clusters") {
		if cl := mapGet(c, "cluster"); cl != nil {
			if s := mapGet(cl, "server"); s != nil && s.Kind == yaml.ScalarNode {
				s.Value = server
				n++
			}
		}
	}
	if n == 0 {
		return nil, errors.New("not a kubeconfig (no clusters[].cluster.server)")
	}
	return yaml.Marshal(&doc)
}

func mapGet(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func mapList(m *yaml.Node, key string) []*yaml.Node {
	if l := mapGet(m, key); l != nil && l.Kind == yaml.SequenceNode {
		return l.Content
	}
	return nil
}
