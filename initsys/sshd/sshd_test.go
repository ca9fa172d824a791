package sshd

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/creack/pty"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/basaltos/basalt/contract/config"
	"github.com/basaltos/basalt/initsys/say"
)

// newKey returns a client signer and its authorized_keys line.
func newKey(t *testing.T) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey())))
}

// fixture is an /etc with users alice and bob, both the current uid/gid
// (no credential switch), each with a home dir.
type fixture struct {
	dir, etc string
	opts     Options
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	dir := t.TempDir()
	etc := filepath.Join(dir, "etc")
	var passwd strings.Builder
	for _, u := range []string{"alice", "bob"} {
		home := filepath.Join(dir, "home", u)
		if err := os.MkdirAll(home, 0o755); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&passwd, "%s:x:%d:%d::%s:/bin/sh\n", u, os.Getuid(), os.Getgid(), home)
	}
	passwd.WriteString("nobody:x:65534:65534::/:/bin/sh\n")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "group"), []byte("nogroup:x:65534:\nstaff:x:50:alice,nobody\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "passwd"), []byte(passwd.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(say.Use(say.New(tlog{t}, "")))
	return fixture{dir: dir, etc: etc, opts: Options{Addr: "127.0.0.1:0", HostKey: filepath.Join(dir, "data/ssh/host_ed25519"), EtcDir: etc}}
}

func start(t *testing.T, f fixture, users []User) *Server {
	t.Helper()
	s, err := Start(f.opts, users)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func dial(s *Server, user string, key ssh.Signer) (*ssh.Client, error) {
	return ssh.Dial("tcp", s.Addr().String(), &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(key)},
		HostKeyCallback: ssh.FixedHostKey(s.HostKey()),
	})
}

func TestExec(t *testing.T) {
	f := newFixture(t)
	key, line := newKey(t)
	s := start(t, f, []User{{Name: "alice", Keys: []string{line}}})
	c, err := dial(s, "alice", key)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	home := filepath.Join(f.dir, "home/alice")
	for _, tc := range []struct {
		cmd, stdin, stdout, stderr string
		status                     int
	}{
		{cmd: "echo hello", stdout: "hello\n"},
		{cmd: "echo oops >&2; exit 3", stderr: "oops\n", status: 3},
		{cmd: "cat", stdin: "piped\n", stdout: "piped\n"},
		{cmd: `pwd; echo "$HOME|$USER|$SHELL|$PATH|${TERM-unset}"`, stdout: home + "\n" + home + "|alice|/bin/sh|" + DefaultPath + "|unset\n"},
		{cmd: "tty", stdout: "not a tty\n", status: 1},
	} {
		sess, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		sess.Stdin, sess.Stdout, sess.Stderr = strings.NewReader(tc.stdin), &out, &errb
		err = sess.Run(tc.cmd)
		status := 0
		var ee *ssh.ExitError
		if errors.As(err, &ee) {
			status = ee.ExitStatus()
		} else if err != nil {
			t.Fatalf("%s: %v", tc.cmd, err)
		}
		want := []string{tc.stdout, tc.stderr, fmt.Sprint(tc.status)}
		got := []string{out.String(), errb.String(), fmt.Sprint(status)}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s: stdout, stderr, status (-want +got):\n%s", tc.cmd, d)
		}
	}
}

// TestCredential runs a session as another uid; it needs root.
func TestCredential(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("switching uid needs root")
	}
	f := newFixture(t)
	key, line := newKey(t)
	s := start(t, f, []User{{Name: "nobody", Keys: []string{line}}})
	c, err := dial(s, "nobody", key)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.Output("id -u; id -g; id -G; pwd")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff("65534\n65534\n65534 50\n/\n", string(out)); d != "" {
		t.Errorf("id (-want +got):\n%s", d)
	}
}

func TestRefused(t *testing.T) {
	f := newFixture(t)
	key, line := newKey(t)
	wrong, _ := newKey(t)
	_, badOpt := newKey(t)
	s := start(t, f, []User{
		{Name: "alice", Keys: []string{line, "not a key", `command="/bin/true" ` + badOpt}},
		{Name: "bob"},
	})
	for _, tc := range []struct {
		name, user string
		key        ssh.Signer
		ok         bool
	}{
		{"authorized", "alice", key, true},
		{"wrong key", "alice", wrong, false},
		{"user without keys", "bob", key, false},
		{"unknown user", "mallory", key, false},
	} {
		c, err := dial(s, tc.user, tc.key)
		if c != nil {
			c.Close()
		}
		if (err == nil) != tc.ok {
			t.Errorf("%s: dial err = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	// The key with an unenforced command= option was not accepted.
	if n := len(s.keys["alice"]); n != 1 {
		t.Errorf("alice has %d usable keys, want 1", n)
	}
}

func TestPasswordAndKeyboardInteractiveRefused(t *testing.T) {
	f := newFixture(t)
	_, line := newKey(t)
	s := start(t, f, []User{{Name: "alice", Keys: []string{line}}})
	for _, m := range []ssh.AuthMethod{
		ssh.Password("alice"),
		ssh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) { return nil, nil }),
	} {
		_, err := ssh.Dial("tcp", s.Addr().String(), &ssh.ClientConfig{User: "alice", Auth: []ssh.AuthMethod{m}, HostKeyCallback: ssh.InsecureIgnoreHostKey()})
		if err == nil {
			t.Errorf("%T: login accepted", m)
		}
	}
}

func TestDisabledAndUpdate(t *testing.T) {
	f := newFixture(t)
	s := start(t, f, []User{{Name: "alice"}})
	if a := s.Addr(); a != nil {
		t.Fatalf("no keys: listening on %v", a)
	}
	key, line := newKey(t)
	if err := s.Update([]User{{Name: "alice", Keys: []string{line}}}); err != nil {
		t.Fatal(err)
	}
	addr := s.Addr()
	if addr == nil {
		t.Fatal("key added: not listening")
	}
	c, err := dial(s, "alice", key)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Removing the key closes the connection and the listener.
	if err := s.Update(nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(); err == nil {
		t.Error("connection still open after its key was removed")
	}
	if s.Addr() != nil {
		t.Error("still listening after the last key was removed")
	}
	if nc, err := net.Dial("tcp", addr.String()); err == nil {
		nc.Close()
		t.Errorf("%v still accepts connections", addr)
	}
}

func TestHostKeyKept(t *testing.T) {
	f := newFixture(t)
	a := start(t, f, nil)
	st, err := os.Stat(f.opts.HostKey)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("host key mode %v, want 0600", st.Mode().Perm())
	}
	b := start(t, f, nil)
	if a.HostKey().Type() != ssh.KeyAlgoED25519 || !bytes.Equal(a.HostKey().Marshal(), b.HostKey().Marshal()) {
		t.Errorf("host key %s then %s, want the same ed25519 key", ssh.FingerprintSHA256(a.HostKey()), ssh.FingerprintSHA256(b.HostKey()))
	}
}

func TestPty(t *testing.T) {
	if p, tty, err := pty.Open(); err != nil {
		t.Skipf("no usable /dev/ptmx: %v", err)
	} else {
		p.Close()
		tty.Close()
	}
	f := newFixture(t)
	key, line := newKey(t)
	s := start(t, f, []User{{Name: "alice", Keys: []string{line}}})
	c, err := dial(s, "alice", key)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	if err := sess.WindowChange(40, 132); err != nil {
		t.Fatal(err)
	}
	out, err := sess.CombinedOutput(`tty; echo "$TERM"; stty size`)
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(string(out), "\r", "")), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "/dev/pts/") || lines[1] != "xterm" || lines[2] != "40 132" {
		t.Errorf("got %q, want a /dev/pts path, xterm, 40 132", lines)
	}
}

func TestUsers(t *testing.T) {
	_, k1 := newKey(t)
	_, k2 := newKey(t)
	c := &config.Config{
		SSHAuthorizedKeys: []string{k1},
		Users:             []config.User{{Name: "default"}, {Name: "ops", SSHAuthorizedKeys: []string{k2}}, {Name: "nokeys"}},
	}
	want := []User{{Name: config.DefaultUser, Keys: []string{k1}}, {Name: "ops", Keys: []string{k2}}}
	if d := cmp.Diff(want, Users(c)); d != "" {
		t.Errorf("Users (-want +got):\n%s", d)
	}
}

// tlog sends the server's log lines to the test log.
type tlog struct{ t *testing.T }

func (l tlog) Write(b []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}
