// Package sshd is the device's SSH server: public-key authentication only,
// for the users that have ssh_authorized_keys in the merged device config,
// with exec and shell sessions (optionally on a pty) run as that user.
//
// With no key configured nothing listens (Start returns a disabled server);
// Update swaps the authorized keys live, starts or stops listening as keys
// appear or disappear, and closes the connections whose key was removed.
// Port forwarding, agent forwarding, env requests and subsystems (sftp) are
// refused.
package sshd

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/basaltos/basalt/contract/config"
	"github.com/basaltos/basalt/initsys/identity"
	"github.com/basaltos/basalt/initsys/say"
)

// DefaultAddr is where the server listens on the device.
const DefaultAddr = ":22"

// DefaultPath is PATH in sessions.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// handshakeTimeout bounds an unauthenticated connection.
const handshakeTimeout = 30 * time.Second

// User is an account allowed to log in and its authorized_keys lines. The
// account's uid, gid, home and shell are read from EtcDir/passwd at login.
type User struct {
	Name string
	Keys []string
}

// Users returns the config's users that have at least one key.
func Users(c *config.Config) []User {
	var out []User
	for _, u := range c.EffectiveUsers() {
		if len(u.SSHAuthorizedKeys) > 0 {
			out = append(out, User{Name: u.Name, Keys: u.SSHAuthorizedKeys})
		}
	}
	return out
}

// Options configure the server.
type Options struct {
	// Addr is the listen address, DefaultAddr when empty.
	Addr string
	// HostKey is the ed25519 host key file (OpenSSH format), created 0600
	// with crypto/rand on first start; keep it on the data partition.
	HostKey string
	// EtcDir holds passwd and group, "/etc" when empty.
	EtcDir string
	// Path is PATH in sessions, DefaultPath when empty.
	Path string
}

// Server is a running or disabled SSH server.
type Server struct {
	opts   Options
	config *ssh.ServerConfig
	signer ssh.Signer

	mu    sync.Mutex
	keys  map[string]map[string]bool // user -> marshalled public keys
	ln    net.Listener
	conns map[*ssh.ServerConn]bool
}

// allowedOptions are authorized_keys options that only restrict what this
// server does not offer anyway; a key with any other option (command=,
// from=, ...) is refused rather than granted more than it says.
var allowedOptions = map[string]bool{
	"restrict": true, "no-port-forwarding": true, "no-agent-forwarding": true,
	"no-x11-forwarding": true, "no-user-rc": true,
}

// Start loads or creates the host key and listens when at least one user
// has a key; otherwise the server is disabled (Addr returns nil) until an
// Update brings keys.
func Start(opts Options, users []User) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if opts.EtcDir == "" {
		opts.EtcDir = "/etc"
	}
	if opts.Path == "" {
		opts.Path = DefaultPath
	}
	signer, err := hostKey(opts.HostKey)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, signer: signer, conns: map[*ssh.ServerConn]bool{}}
	s.config = &ssh.ServerConfig{PublicKeyCallback: s.checkKey, ServerVersion: "SSH-2.0-basalt"}
	s.config.AddHostKey(signer)
	if err := s.Update(users); err != nil {
		return nil, err
	}
	return s, nil
}

// hostKey reads the ed25519 host key at path, creating it on first use.
func hostKey(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("host key %s: %w", path, err)
		}
		return s, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("host key: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "basalt host key")
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	if err := identity.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	return ssh.NewSignerFromKey(priv)
}

// HostKey returns the public host key, for printing its fingerprint on
// the console (ssh.FingerprintSHA256) or pinning it in known_hosts.
func (s *Server) HostKey() ssh.PublicKey { return s.signer.PublicKey() }

// Update replaces the authorized keys. It starts listening when the first
// key appears, stops when none remain, and closes the connections whose
// user or key is no longer authorized. Unparsable keys and keys with
// unsupported options are skipped and logged.
func (s *Server) Update(users []User) error {
	keys := map[string]map[string]bool{}
	for _, u := range users {
		for _, line := range u.Keys {
			pk, _, opts, _, err := ssh.ParseAuthorizedKey([]byte(line))
			if err != nil {
				say.Printf("sshd: user %s: skipping key: %v", u.Name, err)
				continue
			}
			if bad := badOptions(opts); bad != "" {
				say.Printf("sshd: user %s: skipping key %s: option %q not supported", u.Name, ssh.FingerprintSHA256(pk), bad)
				continue
			}
			if keys[u.Name] == nil {
				keys[u.Name] = map[string]bool{}
			}
			keys[u.Name][string(pk.Marshal())] = true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = keys
	for c := range s.conns {
		if !keys[c.User()][c.Permissions.Extensions["key"]] {
			say.Printf("sshd: %s from %s: key removed, closing", c.User(), c.RemoteAddr())
			c.Close()
		}
	}
	switch {
	case len(keys) == 0 && s.ln != nil:
		err := s.ln.Close()
		s.ln = nil
		if err != nil {
			return fmt.Errorf("sshd: stop: %w", err)
		}
	case len(keys) > 0 && s.ln == nil:
		ln, err := net.Listen("tcp", s.opts.Addr)
		if err != nil {
			return fmt.Errorf("sshd: listen %s: %w", s.opts.Addr, err)
		}
		s.ln = ln
		go s.serve(ln)
	}
	return nil
}

func badOptions(opts []string) string {
	for _, o := range opts {
		if !allowedOptions[strings.ToLower(o)] {
			return o
		}
	}
	return ""
}

// Addr is the listening address, nil when disabled.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close stops listening and closes every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.ln != nil {
		err = s.ln.Close()
		s.ln = nil
	}
	for c := range s.conns {
		c.Close()
	}
	s.keys = nil
	return err
}

func (s *Server) checkKey(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	s.mu.Lock()
	ok := s.keys[meta.User()][string(key.Marshal())]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("key %s not authorized for %s", ssh.FingerprintSHA256(key), meta.User())
	}
	return &ssh.Permissions{Extensions: map[string]string{"key": string(key.Marshal()), "fp": ssh.FingerprintSHA256(key)}}, nil
}

func (s *Server) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // closed by Update or Close
		}
		go s.handle(c)
	}
}

func (s *Server) handle(nc net.Conn) {
	nc.SetDeadline(time.Now().Add(handshakeTimeout))
	conn, chans, reqs, err := ssh.NewServerConn(nc, s.config)
	if err != nil {
		say.Printf("sshd: %s: refused: %v", nc.RemoteAddr(), err)
		nc.Close()
		return
	}
	nc.SetDeadline(time.Time{})
	s.mu.Lock()
	// The key may have been removed between auth and here.
	if !s.keys[conn.User()][conn.Permissions.Extensions["key"]] {
		s.mu.Unlock()
		conn.Close()
		return
	}
	s.conns[conn] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		conn.Close()
	}()
	say.Printf("sshd: %s from %s: accepted key %s", conn.User(), conn.RemoteAddr(), conn.Permissions.Extensions["fp"])
	go ssh.DiscardRequests(reqs)
	for nch := range chans {
		if nch.ChannelType() != "session" {
			nch.Reject(ssh.Prohibited, "only session channels are allowed")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		go s.session(conn.User(), ch, creqs)
	}
}
