package update

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/basaltos/basalt/initsys/sock"
)

// Request asks PID 1 to apply a bundle (`basalt-init update apply`).
type Request struct {
	Source string `json:"source"`
	Reboot bool   `json:"reboot,omitempty"`
}

// Reply is PID 1's answer once the apply is done.
type Reply struct {
	Error   string `json:"error,omitempty"`
	Version string `json:"version,omitempty"`
	Status  Status `json:"status"`
}

// Serve answers apply requests on path until ctx ends; the device's
// config decides downgrades and tries (opts), reboot is called after a
// successful apply that asked for it.
func (u *Updater) Serve(ctx context.Context, path string, opts func() Options, reboot func()) error {
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
			var req Request
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if err := json.NewDecoder(bufio.NewReader(c)).Decode(&req); err != nil {
				json.NewEncoder(c).Encode(Reply{Error: "bad request: " + err.Error()})
				c.Close()
				continue
			}
			c.SetReadDeadline(time.Time{})
			m, err := u.Apply(ctx, req.Source, opts())
			rep := Reply{Version: m.Version, Status: u.Status()}
			if err != nil {
				rep.Error = err.Error()
			}
			json.NewEncoder(c).Encode(rep)
			c.Close()
			if err == nil && req.Reboot {
				u.logf("rebooting to try %s", m.Version)
				reboot()
			}
		}
	}()
	return nil
}

// Ask sends req to PID 1's socket at path and waits for the reply.
func Ask(path string, req Request, timeout time.Duration) (Reply, error) {
	var rep Reply
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return rep, fmt.Errorf("is basalt-init running as PID 1? %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return rep, err
	}
	if err := json.NewDecoder(c).Decode(&rep); err != nil {
		return rep, fmt.Errorf("answer from %s: %w", path, err)
	}
	return rep, nil
}

// ServePush runs the push endpoint on addr until ctx ends: POST /apply with
// a Request (its source an http(s) URL) applies that bundle and answers a
// Reply. Only the bundle's signature is trusted, as for the channel.
func (u *Updater) ServePush(ctx context.Context, addr string, opts func() Options, reboot func()) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("push endpoint %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /apply", func(w http.ResponseWriter, r *http.Request) {
		var req Request
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
			http.Error(w, "want {\"source\": URL}: "+err.Error(), http.StatusBadRequest)
			return
		}
		if !strings.HasPrefix(req.Source, "http://") && !strings.HasPrefix(req.Source, "https://") {
			http.Error(w, "source must be an http(s) URL", http.StatusBadRequest)
			return
		}
		m, err := u.Apply(ctx, req.Source, opts())
		rep := Reply{Version: m.Version, Status: u.Status()}
		code := http.StatusOK
		if err != nil {
			rep.Error, code = err.Error(), http.StatusUnprocessableEntity
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(rep)
		if err == nil && req.Reboot {
			u.logf("rebooting to try %s", m.Version)
			go reboot()
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go srv.Serve(l)
	u.logf("push endpoint on %s", l.Addr())
	return nil
}
