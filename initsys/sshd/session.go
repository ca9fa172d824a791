package sshd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/creack/pty"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/basaltos/basalt/initsys/reaper"
	"github.com/basaltos/basalt/initsys/say"
)

// account is a passwd entry with its supplementary groups.
type account struct {
	name, home, shell string
	uid, gid          uint32
	groups            []uint32
}

// lookup reads name's entry from etc/passwd and its groups from etc/group.
func lookup(etc, name string) (account, error) {
	a := account{name: name}
	found := false
	err := eachRow(filepath.Join(etc, "passwd"), func(f []string) {
		if len(f) >= 7 && f[0] == name && !found {
			uid, err1 := strconv.ParseUint(f[2], 10, 32)
			gid, err2 := strconv.ParseUint(f[3], 10, 32)
			if err1 == nil && err2 == nil {
				a.uid, a.gid, a.home, a.shell, found = uint32(uid), uint32(gid), f[5], f[6], true
			}
		}
	})
	if err != nil {
		return a, err
	}
	if !found {
		return a, fmt.Errorf("user %s: not in %s/passwd", name, etc)
	}
	if a.shell == "" {
		a.shell = "/bin/sh"
	}
	if a.home == "" {
		a.home = "/"
	}
	err = eachRow(filepath.Join(etc, "group"), func(f []string) {
		if len(f) >= 4 && slices.Contains(strings.Split(f[3], ","), name) {
			if gid, err := strconv.ParseUint(f[2], 10, 32); err == nil {
				a.groups = append(a.groups, uint32(gid))
			}
		}
	})
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	return a, err
}

func eachRow(path string, fn func([]string)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("sshd: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fn(strings.Split(sc.Text(), ":"))
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("sshd: read %s: %w", path, err)
	}
	return nil
}

// session is one session channel: at most one pty, then one process.
type session struct {
	s    *Server
	user string
	ch   ssh.Channel

	term      string
	ptmx, tty *os.File
	started   bool
	mu        sync.Mutex // guards pid, exited
	pid       int
	exited    bool
}

// Request payloads (RFC 4254 section 6).
type ptyReq struct {
	Term             string
	Cols, Rows, W, H uint32
	Modes            string
}

type winReq struct{ Cols, Rows, W, H uint32 }

type execReq struct{ Command string }

func (s *Server) session(user string, ch ssh.Channel, reqs <-chan *ssh.Request) {
	ss := &session{s: s, user: user, ch: ch}
	for req := range reqs {
		ok := false
		switch req.Type {
		case "pty-req":
			var p ptyReq
			if ssh.Unmarshal(req.Payload, &p) == nil && ss.ptmx == nil && !ss.started {
				ok = ss.openPty(p)
			}
		case "window-change":
			var w winReq
			if ssh.Unmarshal(req.Payload, &w) == nil && ss.ptmx != nil {
				ok = pty.Setsize(ss.ptmx, &pty.Winsize{Cols: uint16(w.Cols), Rows: uint16(w.Rows), X: uint16(w.W), Y: uint16(w.H)}) == nil
			}
		case "shell", "exec":
			var e execReq
			if req.Type == "exec" && ssh.Unmarshal(req.Payload, &e) != nil {
				break
			}
			if ss.started {
				break
			}
			wait, err := ss.start(req.Type == "shell", e.Command)
			if err != nil {
				say.Printf("sshd: %s: %s: %v", user, req.Type, err)
				break
			}
			// Reply before the exit status can be sent.
			if req.WantReply {
				req.Reply(true, nil)
			}
			go wait()
			continue
		}
		if req.WantReply {
			req.Reply(ok, nil)
		}
	}
	// The client closed the channel: hang up on a process still running.
	ss.mu.Lock()
	if ss.pid > 0 && !ss.exited {
		unix.Kill(-ss.pid, unix.SIGHUP)
	}
	ss.mu.Unlock()
	if !ss.started {
		ss.closePty()
		ch.Close()
	}
}

func (ss *session) openPty(p ptyReq) bool {
	ptmx, tty, err := pty.Open()
	if err != nil {
		say.Printf("sshd: %s: pty: %v", ss.user, err)
		return false
	}
	pty.Setsize(ptmx, &pty.Winsize{Cols: uint16(p.Cols), Rows: uint16(p.Rows), X: uint16(p.W), Y: uint16(p.H)})
	ss.ptmx, ss.tty, ss.term = ptmx, tty, p.Term
	return true
}

func (ss *session) closePty() {
	if ss.ptmx != nil {
		ss.ptmx.Close()
		ss.tty.Close()
	}
}

// start runs the user's shell: interactive (a login shell, argv[0] "-sh")
// for a shell request, "shell -c command" for exec. The returned function
// waits for it and sends its exit status.
func (ss *session) start(login bool, command string) (wait func(), err error) {
	a, err := lookup(ss.s.opts.EtcDir, ss.user)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(a.shell)
	if login {
		cmd.Args = []string{"-" + filepath.Base(a.shell)}
	} else {
		cmd.Args = []string{filepath.Base(a.shell), "-c", command}
	}
	cmd.Dir = a.home
	cmd.Env = []string{"HOME=" + a.home, "USER=" + a.name, "LOGNAME=" + a.name, "SHELL=" + a.shell, "PATH=" + ss.s.opts.Path}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if a.uid != uint32(os.Getuid()) || a.gid != uint32(os.Getgid()) {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: a.uid, Gid: a.gid, Groups: a.groups}
	}
	var copies sync.WaitGroup
	var closeAfterStart []*os.File
	if ss.ptmx != nil {
		if ss.term != "" {
			cmd.Env = append(cmd.Env, "TERM="+ss.term)
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = ss.tty, ss.tty, ss.tty
		cmd.SysProcAttr.Setctty, cmd.SysProcAttr.Ctty = true, 0
		closeAfterStart = append(closeAfterStart, ss.tty)
		go io.Copy(ss.ptmx, ss.ch)
		copies.Add(1)
		go func() { defer copies.Done(); io.Copy(ss.ch, ss.ptmx) }() // ends with EIO when the tty is closed
	} else {
		inR, inW, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		outR, outW, err := os.Pipe()
		if err != nil {
			inR.Close()
			inW.Close()
			return nil, err
		}
		errR, errW, err := os.Pipe()
		if err != nil {
			inR.Close()
			inW.Close()
			outR.Close()
			outW.Close()
			return nil, err
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
		closeAfterStart = append(closeAfterStart, inR, outW, errW)
		go func() { io.Copy(inW, ss.ch); inW.Close() }()
		copies.Add(2)
		go func() { defer copies.Done(); io.Copy(ss.ch, outR); outR.Close() }()
		go func() { defer copies.Done(); io.Copy(ss.ch.Stderr(), errR); errR.Close() }()
	}
	err = cmd.Start()
	for _, f := range closeAfterStart {
		f.Close()
	}
	if err != nil {
		// Unblock the copies: the child ends are closed, close ours.
		ss.closePty()
		ss.ptmx, ss.tty = nil, nil
		copies.Wait()
		return nil, fmt.Errorf("start %s: %w", a.shell, err)
	}
	ss.started = true
	ss.mu.Lock()
	ss.pid = cmd.Process.Pid
	ss.mu.Unlock()
	say.Printf("sshd: %s: session pid %d", ss.user, cmd.Process.Pid)
	return func() { ss.wait(cmd, &copies) }, nil
}

// wait reaps the process, drains its output and sends the exit status.
func (ss *session) wait(cmd *exec.Cmd, copies *sync.WaitGroup) {
	ws, err := reaper.Wait(cmd)
	ss.mu.Lock()
	ss.exited = true
	ss.mu.Unlock()
	copies.Wait()
	ss.closePty()
	switch {
	case err != nil:
		ss.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{255}))
	case ws.Signaled():
		name := strings.TrimPrefix(unix.SignalName(ws.Signal()), "SIG")
		ss.ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
			Signal     string
			CoreDumped bool
			Error      string
			Lang       string
		}{name, ws.CoreDump(), "", ""}))
	default:
		ss.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(ws.ExitStatus())}))
	}
	ss.ch.CloseWrite()
	ss.ch.Close()
}
