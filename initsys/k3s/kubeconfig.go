package k3s

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// kubeconfig is the part of a kubeconfig file the health checks read:
// k3s.yaml (admin, inline *-data) and the agent's kubelet.kubeconfig (file
// paths).
type kubeconfig struct {
	CurrentContext string `yaml:"current-context"`
	Clusters       []struct {
		Name    string `yaml:"name"`
		Cluster struct {
			Server   string `yaml:"server"`
			CA       string `yaml:"certificate-authority"`
			CAData   string `yaml:"certificate-authority-data"`
			Insecure bool   `yaml:"insecure-skip-tls-verify"`
		} `yaml:"cluster"`
	} `yaml:"clusters"`
	Contexts []struct {
		Name    string `yaml:"name"`
		Context struct {
			Cluster string `yaml:"cluster"`
			User    string `yaml:"user"`
		} `yaml:"context"`
	} `yaml:"contexts"`
	Users []struct {
		Name string `yaml:"name"`
		User struct {
			Cert     string `yaml:"client-certificate"`
			CertData string `yaml:"client-certificate-data"`
			Key      string `yaml:"client-key"`
			KeyData  string `yaml:"client-key-data"`
			Token    string `yaml:"token"`
		} `yaml:"user"`
	} `yaml:"users"`
}

// apiClient is an HTTPS client for the API server a kubeconfig names.
type apiClient struct {
	server string
	token  string
	http   *http.Client
}

// loadKubeconfig reads path (its current context, else the first cluster
// and user) into a client.
func loadKubeconfig(path string) (*apiClient, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var kc kubeconfig
	if err := yaml.Unmarshal(b, &kc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(kc.Clusters) == 0 || len(kc.Users) == 0 {
		return nil, fmt.Errorf("%s: no cluster or no user", path)
	}
	ci, ui := 0, 0
	for _, c := range kc.Contexts {
		if c.Name != kc.CurrentContext {
			continue
		}
		for i := range kc.Clusters {
			if kc.Clusters[i].Name == c.Context.Cluster {
				ci = i
			}
		}
		for i := range kc.Users {
			if kc.Users[i].Name == c.Context.User {
				ui = i
			}
		}
	}
	cl, u := kc.Clusters[ci].Cluster, kc.Users[ui].User
	ca, err := pemOf(cl.CAData, cl.CA)
	if err != nil {
		return nil, fmt.Errorf("%s: certificate authority: %w", path, err)
	}
	tc := &tls.Config{InsecureSkipVerify: cl.Insecure}
	if len(ca) > 0 {
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(ca) {
			return nil, fmt.Errorf("%s: certificate authority: no PEM certificate", path)
		}
	}
	if u.CertData != "" || u.Cert != "" {
		cert, err := pemOf(u.CertData, u.Cert)
		if err != nil {
			return nil, fmt.Errorf("%s: client certificate: %w", path, err)
		}
		key, err := pemOf(u.KeyData, u.Key)
		if err != nil {
			return nil, fmt.Errorf("%s: client key: %w", path, err)
		}
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("%s: client certificate: %w", path, err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return &apiClient{server: strings.TrimSuffix(cl.Server, "/"), token: u.Token,
		http: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}}, nil
}

// pemOf returns base64 data decoded, else the file's bytes.
func pemOf(data, file string) ([]byte, error) {
	if data != "" {
		return base64.StdEncoding.DecodeString(data)
	}
	if file == "" {
		return nil, nil
	}
	return os.ReadFile(file)
}

// get fetches path from the API server; an answer other than 200 is an
// error that carries the status and the start of the body.
func (c *apiClient) get(ctx context.Context, path string) ([]byte, error) {
	return httpGet(ctx, c.http, c.server+path, c.token)
}

func httpGet(ctx context.Context, hc *http.Client, url, token string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body[:min(len(body), 200)])))
	}
	return body, nil
}
