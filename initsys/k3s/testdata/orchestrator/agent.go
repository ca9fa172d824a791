package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const agentDir = "/var/lib/rancher/k3s/agent"

func runAgent(cfg *config, h hostInfo) error {
	server := strings.TrimSuffix(cfg.str("server"), "/")
	token, err := readToken(cfg)
	if err != nil {
		return err
	}
	insecure := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := insecure.Get(server + "/cacerts")
	if err != nil {
		return fmt.Errorf("server %s unreachable: %v", server, err)
	}
	caPEM, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s/cacerts: %s", server, resp.Status)
	}
	// A K10 token pins the server's CA, as in k3s.
	if strings.HasPrefix(token, "K10") {
		want, _, _ := strings.Cut(strings.TrimPrefix(token, "K10"), "::")
		sum := sha256.Sum256(caPEM)
		if got := hex.EncodeToString(sum[:]); got != want {
			return fmt.Errorf("server %s: CA hash %s does not match the token's %s", server, got, want)
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("server %s: /cacerts is not a PEM certificate", server)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	body, _ := json.Marshal(joinRequest{Name: h.nodeName, Password: h.password, IP: h.nodeIP})
	req, _ := http.NewRequest(http.MethodPost, server+"/v1-k3s/join", bytes.NewReader(body))
	req.SetBasicAuth("node", token)
	resp, err = hc.Do(req)
	if err != nil {
		return fmt.Errorf("join %s: %v", server, err)
	}
	ans, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("join %s refused: %s: %s", server, resp.Status, strings.TrimSpace(string(ans)))
	}
	var ja joinAnswer
	if err := json.Unmarshal(ans, &ja); err != nil {
		return fmt.Errorf("join %s: answer: %v", server, err)
	}
	if err := os.MkdirAll(agentDir, 0o700); err != nil {
		return err
	}
	files := map[string]string{"server-ca.crt": string(caPEM), "client-kubelet.crt": ja.Cert, "client-kubelet.key": ja.Key}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(agentDir, n), []byte(c), 0o600); err != nil {
			return err
		}
	}
	kc := fmt.Sprintf("apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority: %[1]s/server-ca.crt\n    server: %[2]s\n  name: local\n"+
		"contexts:\n- context:\n    cluster: local\n    user: user\n  name: Default\ncurrent-context: Default\nkind: Config\npreferences: {}\n"+
		"users:\n- name: user\n  user:\n    client-certificate: %[1]s/client-kubelet.crt\n    client-key: %[1]s/client-kubelet.key\n", agentDir, server)
	if err := os.WriteFile(filepath.Join(agentDir, "kubelet.kubeconfig"), []byte(kc), 0o600); err != nil {
		return err
	}
	if err := serveKubeletHealthz(); err != nil {
		return err
	}
	say("agent joined %s as node %s (ip %s, node password %s)", server, h.nodeName, h.nodeIP, map[bool]string{true: "kept from before", false: "new"}[h.known])
	for {
		time.Sleep(time.Hour)
	}
}
