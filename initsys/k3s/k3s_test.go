package k3s

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/config"
	"github.com/basaltos/basalt/initsys/supervise"
)

func parse(t *testing.T, doc string) *config.Config {
	t.Helper()
	d, _, err := config.Parse("t.yaml", []byte("apiVersion: basalt.dev/v1alpha1\nkind: DeviceConfig\n"+doc))
	if err != nil {
		t.Fatal(err)
	}
	return &d.Config
}

func TestRender(t *testing.T) {
	for _, tc := range []struct{ name, in, conf, reg string }{
		{"empty is a SQLite server", "", "{}\n", ""},
		{"agent", `cluster:
  role: agent
  server: https://10.0.0.1:6443
  token: K10abc::server:s3cret
  node_name: edge-1
  node_ip: 10.0.0.7
  labels: {site: paris, a: b}
  taints: ["dedicated=edge:NoSchedule"]
  datastore: postgres://k:pw@db/k3s
  extra_args: ["--kubelet-arg=max-pods=50"]
`, "server: https://10.0.0.1:6443\ntoken: K10abc::server:s3cret\nnode-name: edge-1\nnode-ip: 10.0.0.7\nnode-label:\n    - a=b\n    - site=paris\nnode-taint:\n    - dedicated=edge:NoSchedule\n", ""},
		{"external datastore", "cluster: {datastore: 'mysql://u:p@tcp(db:3306)/k3s', token_file: /data/token}\n",
			"token-file: /data/token\ndatastore-endpoint: mysql://u:p@tcp(db:3306)/k3s\n", ""},
		{"first etcd server", "cluster: {datastore: etcd, token: t}\n", "token: t\ncluster-init: true\n", ""},
		{"joining etcd server", "cluster: {datastore: etcd, server: 'https://s1:6443', token: t}\n", "server: https://s1:6443\ntoken: t\n", ""},
		{"registries", "registries:\n  mirrors: {docker.io: {endpoint: ['https://mirror:5000']}}\n  configs: {mirror:5000: {auth: {username: u, password: pw}}}\n",
			"{}\n", "mirrors:\n    docker.io:\n        endpoint:\n            - https://mirror:5000\nconfigs:\n    mirror:5000:\n        auth:\n            username: u\n            password: pw\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf, reg, err := Render(parse(t, tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.conf, string(conf)); diff != "" {
				t.Errorf("config.yaml (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.reg, string(reg)); diff != "" {
				t.Errorf("registries.yaml (-want +got):\n%s", diff)
			}
		})
	}
}

func TestArgs(t *testing.T) {
	if diff := cmp.Diff([]string{"agent", "--kubelet-arg=max-pods=50"}, Args(parse(t, "cluster: {role: agent, extra_args: ['--kubelet-arg=max-pods=50']}\n").Cluster)); diff != "" {
		t.Error(diff)
	}
	if diff := cmp.Diff([]string{"server"}, Args(nil)); diff != "" {
		t.Error(diff)
	}
}

func TestWriteConfigSecretsAre0600(t *testing.T) {
	root := t.TempDir()
	cfg := parse(t, "cluster: {token: s3cret}\nregistries: {configs: {r: {auth: {password: pw}}}}\n")
	if err := WriteConfig(root, cfg); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{ConfigFile, RegistriesFile} {
		fi, err := os.Stat(filepath.Join(root, contract.K3sConfigDir, n))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want 0600", n, fi.Mode(), err)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, contract.K3sConfigDir, ConfigDropIns)); err != nil || !fi.IsDir() {
		t.Errorf("%s: %v", ConfigDropIns, err)
	}
	// Without registries the file goes.
	if err := WriteConfig(root, parse(t, "")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, contract.K3sConfigDir, RegistriesFile)); !os.IsNotExist(err) {
		t.Errorf("registries.yaml kept: %v", err)
	}
}

func TestLink(t *testing.T) {
	root := t.TempDir()
	mk := func(p string) {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mk(contract.K3sRootData + "/abc/bin/k3s")
	mk(contract.K3sRootImages + "/airgap-1111.tar.zst")
	mk(contract.K3sRootManifests + "/app.yaml")
	// A link left by another slot's image, and a user's own archive.
	os.MkdirAll(filepath.Join(root, contract.K3sImagesDir), 0o755)
	os.Symlink(contract.K3sRootImages+"/old-0000.tar", filepath.Join(root, contract.K3sImagesDir, "old-0000.tar"))
	mk(contract.K3sImagesDir + "/mine.tar")
	for range 2 { // idempotent
		if err := Link(root); err != nil {
			t.Fatal(err)
		}
	}
	link := func(p string) string { s, _ := os.Readlink(filepath.Join(root, p)); return s }
	if got := link(contract.K3sDataDir + "/data"); got != contract.K3sRootData {
		t.Errorf("data link %q", got)
	}
	if got := link(contract.K3sImagesDir + "/airgap-1111.tar.zst"); got != contract.K3sRootImages+"/airgap-1111.tar.zst" {
		t.Errorf("image link %q", got)
	}
	if got := link(contract.K3sManifestsDir + "/app.yaml"); got != contract.K3sRootManifests+"/app.yaml" {
		t.Errorf("manifest link %q", got)
	}
	if _, err := os.Lstat(filepath.Join(root, contract.K3sImagesDir, "old-0000.tar")); !os.IsNotExist(err) {
		t.Errorf("dangling image link kept: %v", err)
	}
	for _, p := range []string{"mine.tar", contract.K3sImagesCache} {
		if _, err := os.Stat(filepath.Join(root, contract.K3sImagesDir, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func TestDefaultRoute(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "route")
		os.WriteFile(p, []byte("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"+s), 0o644)
		return p
	}
	p := write("eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")
	if ifc, err := DefaultRoute(p); err != nil || ifc != "" {
		t.Errorf("no default: %q %v", ifc, err)
	}
	p = write("eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\neth1\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n")
	if ifc, err := DefaultRoute(p); err != nil || ifc != "eth1" {
		t.Errorf("default: %q %v", ifc, err)
	}
}

// pki is a CA with a server certificate for 127.0.0.1 and a client
// certificate, PEM encoded.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey []byte
	pool                                             *x509.CertPool
}

func newPKI(t *testing.T) pki {
	key := func() (*ecdsa.PrivateKey, []byte) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		b, _ := x509.MarshalECPrivateKey(k)
		return k, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: b})
	}
	caKey, _ := key()
	caT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caT, caT, &caKey.PublicKey, caKey)
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(n int64, usage x509.ExtKeyUsage) ([]byte, []byte) {
		k, kp := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(n), Subject: pkix.Name{CommonName: "leaf"}, NotBefore: time.Now().Add(-time.Hour),
			NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), kp
	}
	p := pki{ca: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), pool: x509.NewCertPool()}
	p.pool.AddCert(caCert)
	p.serverCert, p.serverKey = leaf(2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf(3, x509.ExtKeyUsageClientAuth)
	return p
}

// TestServerReadyNeedsClientCert: /readyz behind client-certificate auth
// (as k3s: anonymous auth off) is read with k3s.yaml's admin credential.
func TestServerReadyNeedsClientCert(t *testing.T) {
	p := newPKI(t)
	ready := "ok"
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, ready)
	}))
	pair, _ := tls.X509KeyPair(p.serverCert, p.serverKey)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: p.pool, ClientAuth: tls.VerifyClientCertIfGiven}
	srv.StartTLS()
	defer srv.Close()

	root := t.TempDir()
	ctx := context.Background()
	if err := serverReady(root)(ctx); err == nil || !strings.Contains(err.Error(), "no admin kubeconfig yet") {
		t.Errorf("without k3s.yaml: %v", err)
	}
	b64 := base64.StdEncoding.EncodeToString
	kc := fmt.Sprintf("apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: %s\n    server: %s\n  name: default\ncontexts:\n- context: {cluster: default, user: default}\n  name: default\ncurrent-context: default\nkind: Config\nusers:\n- name: default\n  user:\n    client-certificate-data: %s\n    client-key-data: %s\n",
		b64(p.ca), srv.URL, b64(p.clientCert), b64(p.clientKey))
	os.MkdirAll(filepath.Join(root, contract.K3sConfigDir), 0o755)
	os.WriteFile(filepath.Join(root, contract.K3sKubeconfig), []byte(kc), 0o600)
	if err := serverReady(root)(ctx); err != nil {
		t.Errorf("ready: %v", err)
	}
	ready = "[-]etcd failed"
	if err := serverReady(root)(ctx); err == nil {
		t.Error("not-ok body counted as ready")
	}
	// Without the client certificate the answer is 401.
	nocert := strings.Replace(kc, "client-certificate-data", "x-client-certificate-data", 1)
	nocert = strings.Replace(nocert, "client-key-data", "x-client-key-data", 1)
	os.WriteFile(filepath.Join(root, contract.K3sKubeconfig), []byte(nocert), 0o600)
	if err := serverReady(root)(ctx); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("anonymous: %v", err)
	}
}

func TestHealthNilNode(t *testing.T) {
	var n *Node
	if h := n.Health(); !h.OK() || h.State != Off {
		t.Errorf("nil node: %+v", h)
	}
	if err := n.Restart(nil); err != nil {
		t.Error(err)
	}
}

// TestPrecheck: without an IPv4 default route k3s is not started (and the
// health says why); with one, the start writes config.yaml from the config
// in effect, which Restart replaces (a role change is refused: it needs a
// reboot).
func TestPrecheck(t *testing.T) {
	root := t.TempDir()
	route := filepath.Join(root, "route")
	hdr := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	os.WriteFile(route, []byte(hdr+"eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"), 0o644)
	n := &Node{o: Options{Root: root, ProcNetRoute: route, Sup: supervise.New(supervise.Options{})}, cfg: parse(t, "cluster: {token: one}\n")}
	if err := n.precheck(); err != ErrNoDefaultRoute {
		t.Fatalf("precheck without a route: %v", err)
	}
	if h := n.Health(); h.State != Starting || !strings.Contains(h.Reason, "no IPv4 default route") {
		t.Errorf("health %+v", h)
	}
	os.WriteFile(route, []byte(hdr+"eth0\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"), 0o644)
	if err := n.precheck(); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(root, contract.K3sConfigDir, ConfigFile)
	if b, _ := os.ReadFile(conf); string(b) != "token: one\n" {
		t.Errorf("config.yaml %q", b)
	}
	if err := n.Restart(parse(t, "cluster: {token: two}\n")); err != nil {
		t.Fatal(err)
	}
	n.precheck()
	if b, _ := os.ReadFile(conf); string(b) != "token: two\n" {
		t.Errorf("config.yaml after Restart %q", b)
	}
	if err := n.Restart(parse(t, "cluster: {role: agent, server: 'https://s:6443', token: two}\n")); err == nil {
		t.Error("a role change was applied without a reboot")
	}
}

// TestLinkSeed: the first boot copies the seeded meta.db, links its blobs
// and links no archive; a later boot of the same root does nothing more;
// a root with another seed (after an update) links its blobs and archives
// for k3s to import and leaves containerd's meta.db alone.
func TestLinkSeed(t *testing.T) {
	root := t.TempDir()
	put := func(p, s string) {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(p string) string { b, _ := os.ReadFile(filepath.Join(root, p)); return string(b) }
	exists := func(p string) bool { _, err := os.Lstat(filepath.Join(root, p)); return err == nil }
	link := func(p string) string { s, _ := os.Readlink(filepath.Join(root, p)); return s }
	seed := contract.K3sRootContainerd + "/"
	ctrd := contract.K3sContainerdDir + "/"
	put(seed+contract.ContainerdMetaDB, "db-1")
	put(seed+contract.ContainerdBlobs+"/aaaa", "blob a")
	put(seed+"id", "seed-1\n")
	put(contract.K3sRootImages+"/app-1111.tar", "archive")
	for range 2 {
		if err := Link(root); err != nil {
			t.Fatal(err)
		}
		if read(ctrd+contract.ContainerdMetaDB) != "db-1" || link(ctrd+contract.ContainerdBlobs+"/aaaa") != seed+contract.ContainerdBlobs+"/aaaa" || read(contract.K3sContainerdSeeded) != "seed-1\n" {
			t.Fatalf("not seeded: meta.db %q, blob %q, marker %q", read(ctrd+contract.ContainerdMetaDB), link(ctrd+contract.ContainerdBlobs+"/aaaa"), read(contract.K3sContainerdSeeded))
		}
		if exists(contract.K3sImagesDir + "/app-1111.tar") {
			t.Fatal("archive linked for import though its images are seeded")
		}
	}
	if fi, _ := os.Stat(filepath.Join(root, ctrd+contract.ContainerdMetaDB)); fi.Mode().Perm() != 0o600 {
		t.Errorf("meta.db mode %v", fi.Mode())
	}
	// An update: another seed in the root, with another blob and archive.
	put(seed+"id", "seed-2\n")
	put(seed+contract.ContainerdMetaDB, "db-2")
	put(seed+contract.ContainerdBlobs+"/bbbb", "blob b")
	put(contract.K3sRootImages+"/app-2222.tar", "archive 2")
	if err := Link(root); err != nil {
		t.Fatal(err)
	}
	if read(ctrd+contract.ContainerdMetaDB) != "db-1" || read(contract.K3sContainerdSeeded) != "seed-1\n" {
		t.Errorf("containerd's live meta.db or marker replaced: %q %q", read(ctrd+contract.ContainerdMetaDB), read(contract.K3sContainerdSeeded))
	}
	if link(ctrd+contract.ContainerdBlobs+"/bbbb") != seed+contract.ContainerdBlobs+"/bbbb" || !exists(contract.K3sImagesDir+"/app-2222.tar") {
		t.Error("the new seed's blob or archive is not linked")
	}
}
