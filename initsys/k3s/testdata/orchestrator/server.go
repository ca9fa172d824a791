package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const (
	serverDir  = "/var/lib/rancher/k3s/server"
	kubeconfig = "/etc/rancher/k3s/k3s.yaml"
)

// joinRequest is the agent's half of the token join handshake.
type joinRequest struct {
	Name     string `json:"name"`
	Password string `json:"password"`
	IP       string `json:"ip"`
}

// joinAnswer is the server's: a kubelet client certificate.
type joinAnswer struct {
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// secret is the password part of a token: K10<cahash>::server:<secret>
// (or ::node:), else the whole token.
func secret(token string) string {
	if strings.HasPrefix(token, "K10") {
		if _, rest, ok := strings.Cut(token, "::"); ok {
			if _, s, ok := strings.Cut(rest, ":"); ok {
				return s
			}
		}
	}
	return token
}

func readToken(cfg *config) (string, error) {
	if t := cfg.str("token"); t != "" {
		return t, nil
	}
	if f := cfg.str("token-file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("token-file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return "", nil
}

// register records name's node password hash, or checks it against the
// one recorded: k3s refuses a node whose /etc/rancher/node/password changed.
func register(name, password string) (string, error) {
	dir := filepath.Join(serverDir, "test-orchestrator-nodes")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(password))
	h := hex.EncodeToString(sum[:])
	p := filepath.Join(dir, name)
	if old, err := os.ReadFile(p); err == nil {
		if string(old) != h {
			return "", fmt.Errorf("node password rejected for %s: /etc/rancher/node/password differs from the one it first joined with (node identity lost)", name)
		}
		return "rejoined with its node password (identity kept)", nil
	}
	return "registered (new node password)", os.WriteFile(p, []byte(h), 0o600)
}

func registered(name string) bool {
	_, err := os.Stat(filepath.Join(serverDir, "test-orchestrator-nodes", name))
	return err == nil
}

func runServer(cfg *config, h hostInfo) error {
	if ep := cfg.str("datastore-endpoint"); ep != "" {
		say("datastore-endpoint set (%s): the test orchestrator does not contact it", redactURL(ep))
	} else if b, _ := cfg.values["cluster-init"].(bool); b {
		say("cluster-init: embedded etcd HA, first server (the test orchestrator runs no etcd)")
	} else if s := cfg.str("server"); s != "" {
		say("joining server %s for embedded etcd HA (the test orchestrator does not join servers)", s)
	} else {
		say("datastore: SQLite (kine) default (the test orchestrator keeps its own files)")
	}
	c, err := loadCA(filepath.Join(serverDir, "tls"))
	if err != nil {
		return fmt.Errorf("CA: %w", err)
	}
	token, err := readToken(cfg)
	if err != nil {
		return err
	}
	tokenFile := filepath.Join(serverDir, "token")
	if token == "" {
		if b, err := os.ReadFile(tokenFile); err == nil {
			token = strings.TrimSpace(string(b))
		} else {
			token = randomHex(16)
		}
	}
	full := "K10" + c.hash() + "::server:" + secret(token)
	if err := os.WriteFile(tokenFile, []byte(full+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(serverDir, "node-token"), []byte(full+"\n"), 0o600); err != nil {
		return err
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1)}
	if ip := net.ParseIP(h.nodeIP); ip != nil {
		ips = append(ips, ip)
	}
	scert, skey, err := c.issue("k3s", nil, true, ips, []string{"localhost", "kubernetes", h.nodeName})
	if err != nil {
		return err
	}
	acert, akey, err := c.issue("system:admin", []string{"system:masters"}, false, nil, nil)
	if err != nil {
		return err
	}
	b64 := base64.StdEncoding.EncodeToString
	kc := fmt.Sprintf("apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: %s\n    server: https://127.0.0.1:6443\n  name: default\n"+
		"contexts:\n- context:\n    cluster: default\n    user: default\n  name: default\ncurrent-context: default\nkind: Config\npreferences: {}\n"+
		"users:\n- name: default\n  user:\n    client-certificate-data: %s\n    client-key-data: %s\n", b64(c.certPEM), b64(acert), b64(akey))
	if err := os.MkdirAll(filepath.Dir(kubeconfig), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(kubeconfig, []byte(kc), 0o600); err != nil {
		return err
	}
	msg, err := register(h.nodeName, h.password)
	if err != nil {
		return err
	}
	say("node %s %s", h.nodeName, msg)

	pair, err := tls.X509KeyPair(scert, skey)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(c.cert)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /cacerts", func(w http.ResponseWriter, r *http.Request) { w.Write(c.certPEM) })
	authed := func(f http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
				http.Error(w, `{"kind":"Status","message":"Unauthorized","code":401}`, http.StatusUnauthorized)
				return
			}
			f(w, r)
		}
	}
	ok := func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }
	mux.HandleFunc("GET /readyz", authed(ok))
	mux.HandleFunc("GET /healthz", authed(ok))
	mux.HandleFunc("GET /api/v1/nodes/{name}", authed(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		cn := r.TLS.PeerCertificates[0].Subject.CommonName
		if cn != "system:admin" && cn != "system:node:"+name {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		if !registered(name) {
			http.Error(w, `{"kind":"Status","reason":"NotFound","code":404}`, http.StatusNotFound)
			return
		}
		fmt.Fprintf(w, `{"kind":"Node","metadata":{"name":%q}}`, name)
	}))
	want := secret(token)
	mux.HandleFunc("POST /v1-k3s/join", func(w http.ResponseWriter, r *http.Request) {
		user, pw, _ := r.BasicAuth()
		if user != "node" || subtle.ConstantTimeCompare([]byte(secret(pw)), []byte(want)) != 1 {
			say("join from %s refused: wrong token", r.RemoteAddr)
			http.Error(w, "Unauthorized: token rejected", http.StatusUnauthorized)
			return
		}
		var req joinRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil || req.Name == "" || req.Password == "" {
			http.Error(w, "bad join request", http.StatusBadRequest)
			return
		}
		msg, err := register(req.Name, req.Password)
		if err != nil {
			say("join of %s refused: %v", req.Name, err)
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		cert, key, err := c.issue("system:node:"+req.Name, []string{"system:nodes"}, false, nil, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		say("agent %s (%s) joined: %s", req.Name, req.IP, msg)
		json.NewEncoder(w).Encode(joinAnswer{Cert: string(cert), Key: string(key)})
	})
	srv := &http.Server{Addr: ":6443", Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}}
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return err
	}
	if err := serveKubeletHealthz(); err != nil {
		return err
	}
	say("server ready: https://%s:6443 (node %s; token in %s)", h.nodeIP, h.nodeName, tokenFile)
	return srv.ServeTLS(ln, "", "")
}

// serveKubeletHealthz answers kubelet's healthz port.
func serveKubeletHealthz() error {
	ln, err := net.Listen("tcp", "127.0.0.1:10248")
	if err != nil {
		return fmt.Errorf("kubelet healthz: %w", err)
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	return nil
}

func redactURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	at := strings.LastIndex(rest, "@")
	if !ok || at < 0 {
		return s
	}
	user, _, _ := strings.Cut(rest[:at], ":")
	return scheme + "://" + user + ":<redacted>" + rest[at:]
}
