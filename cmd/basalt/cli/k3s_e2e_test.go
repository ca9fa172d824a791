//go:build e2e

package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/ssh"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/image/tree"
	"github.com/basaltos/basalt/internal/testutil"
	"github.com/basaltos/basalt/qemu"
)

// The k3s boot tests build a k3s image with `basalt build` from the k3s
// binary in $BASALT_K3S, default basalt's TEST ORCHESTRATOR
// (.cache/test-orchestrator, initsys/k3s/testdata/orchestrator: a stand-in
// for k3s on its documented contract, not k3s). `BASALT_K3S=/path/to/k3s make
// e2e-k3s` runs the same tests, same code path, with a real k3s; the markers
// only the test orchestrator prints are then not expected.

// k3sRig is what the k3s boot tests share: the basalt binary and the k3s
// they build images with.
type k3sRig struct {
	bin, k3s string
	env      []string
	// orchestrator: $BASALT_K3S is basalt's test orchestrator, not k3s.
	orchestrator bool
	memory       int
	deadline     time.Duration
}

func newK3sRig(t *testing.T) *k3sRig {
	repo, _ := filepath.Abs("../../..")
	testutil.NeedFile(t, filepath.Join(repo, ".cache", "tour", "examples", "retail-store", "basalt.lock"), "make testdata (it fetches the Debian inputs)")
	r := &k3sRig{k3s: os.Getenv("BASALT_K3S"), memory: 768, deadline: 8 * time.Minute}
	if r.k3s == "" {
		r.k3s = filepath.Join(repo, ".cache", "test-orchestrator")
		testutil.NeedFile(t, filepath.Join(r.k3s, "k3s"), "make testdata (it builds the test orchestrator)")
	}
	amd64 := r.k3s
	if fi, err := os.Stat(r.k3s); err == nil && fi.IsDir() {
		amd64 = filepath.Join(r.k3s, "k3s")
	}
	out, _ := exec.Command(amd64, "--version").CombinedOutput()
	r.orchestrator = strings.Contains(string(out), "basalt-test-orchestrator")
	if !r.orchestrator {
		// A real k3s server: ~370 MB at node Ready, /readyz ~64 s after
		// QEMU start on a quiet host (DESIGN.md), up to ~2x when loaded.
		r.memory, r.deadline = 2048, 15*time.Minute
		t.Logf("BASALT_K3S=%s: a real k3s (%s)", r.k3s, strings.TrimSpace(string(out)))
	} else {
		t.Logf("BASALT_K3S=%s: basalt's test orchestrator, not k3s", r.k3s)
	}
	r.bin = filepath.Join(t.TempDir(), "basalt")
	build := exec.Command("go", "build", "-o", r.bin, "./cmd/basalt")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	r.env = append(os.Environ(), "BASALT_CACHE_DIR="+filepath.Join(repo, ".cache", "basalt"), "BASALT_K3S="+r.k3s, "SOURCE_DATE_EPOCH=1700000000")
	return r
}

// basalt runs the CLI and returns its combined output.
func (r *k3sRig) basalt(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(r.bin, args...)
	cmd.Env = r.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("basalt %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// image builds a qemu-x86_64 k3s image whose baked config is cfg (the
// config: section, indented by two) and returns it; top is more top-level
// spec.
func (r *k3sRig) image(t *testing.T, top, cfg string) string {
	dir := t.TempDir()
	spec := "apiVersion: basalt.dev/v1alpha1\nkind: Image\nname: k3s-e2e\nversion: 0.1.0\nboards: [qemu-x86_64]\n" +
		"debian: {suite: bookworm}\norchestrator: {kind: k3s}\n" + top
	if cfg != "" {
		spec += "config:\n" + cfg
	}
	if err := os.WriteFile(filepath.Join(dir, "basalt.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	r.basalt(t, "build", "-f", filepath.Join(dir, "basalt.yaml"), "-o", filepath.Join(dir, "out"), "--offline")
	return filepath.Join(dir, "out", "k3s-e2e-0.1.0-qemu-x86_64.img")
}

// seed writes a NoCloud seed with user-data ud.
func seedImage(t *testing.T, ud string) string {
	tr := tree.New(1700000000)
	tr.AddBytes("user-data", 0o600, []byte("#cloud-config\n"+ud))
	tr.AddBytes("meta-data", 0o600, []byte("instance-id: k3s-e2e\n"))
	p := filepath.Join(t.TempDir(), "seed.img")
	if err := writeSeed(p, tr); err != nil {
		t.Fatal(err)
	}
	return p
}

// base is the VM config of the k3s tests: TCG, an overlay disk, no reboot
// exit (the identity test reboots).
func (r *k3sRig) base(t *testing.T, img string) qemu.Config {
	b, err := boards.Get("qemu-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	return qemu.Config{Board: b, Image: img, DiskSize: 2 << 30, Memory: r.memory, Accel: qemu.TCG}
}

// start boots c until the test ends or the rig's deadline.
func (r *k3sRig) start(t *testing.T, c qemu.Config) (*qemu.Machine, context.Context) {
	ctx, cancel := context.WithTimeout(context.Background(), r.deadline)
	m, err := qemu.Start(ctx, c)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Kill(); cancel() })
	return m, ctx
}

// sshRun runs cmd on the device as root and returns its output.
func sshRun(addr string, signer ssh.Signer, cmd string) (string, error) {
	c, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 30 * time.Second})
	if err != nil {
		return "", err
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	return string(out), err
}

// expectSeen waits until each marker is somewhere on the console, in any
// order. k3s starts in a boot step, before stage 2 says it is ready, so its
// first lines race the ready marker: only lines said once per console may be
// waited for this way.
func expectSeen(t *testing.T, ctx context.Context, m *qemu.Machine, markers ...string) {
	t.Helper()
	waitSeen(t, ctx, m.Log, markers...)
}

// waitSeen waits until each marker is somewhere in log(), in any order.
func waitSeen(t *testing.T, ctx context.Context, log func() string, markers ...string) {
	t.Helper()
	for {
		l := log()
		missing := slices.DeleteFunc(slices.Clone(markers), func(mk string) bool { return strings.Contains(l, mk) })
		if len(missing) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %q: %v\nconsole:\n%s", missing, ctx.Err(), l)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// readyz reads /readyz with the kubeconfig's admin client certificate.
func readyz(kc []byte) (string, error) {
	var k struct {
		Clusters []struct {
			Cluster struct {
				Server string `yaml:"server"`
				CA     string `yaml:"certificate-authority-data"`
			} `yaml:"cluster"`
		} `yaml:"clusters"`
		Users []struct {
			User struct {
				Cert string `yaml:"client-certificate-data"`
				Key  string `yaml:"client-key-data"`
			} `yaml:"user"`
		} `yaml:"users"`
	}
	if err := yaml.Unmarshal(kc, &k); err != nil || len(k.Clusters) == 0 || len(k.Users) == 0 {
		return "", fmt.Errorf("kubeconfig: %v", err)
	}
	dec := func(s string) []byte { b, _ := base64.StdEncoding.DecodeString(s); return b }
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(dec(k.Clusters[0].Cluster.CA))
	pair, err := tls.X509KeyPair(dec(k.Users[0].User.Cert), dec(k.Users[0].User.Key))
	if err != nil {
		return "", err
	}
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}}}
	resp, err := hc.Get(k.Clusters[0].Cluster.Server + "/readyz")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.Status + " " + string(b), nil
}

const staticNet = "network:\n  interfaces:\n    eth0: {addresses: [10.0.2.15/24], gateway4: 10.0.2.2, dhcp4: false}\n"

// qemuCLI runs `basalt qemu ARGS` in the background until the test ends
// or the deadline (SIGTERM: basalt stops QEMU) and returns its console.
func (r *k3sRig) qemuCLI(t *testing.T, deadline time.Duration, args ...string) (*consoleLines, context.Context) {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	w := newConsoleLines()
	cmd := exec.Command(r.bin, append([]string{"qemu"}, args...)...)
	cmd.Env, cmd.Stdout, cmd.Stderr = r.env, w, w
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			cmd.Process.Signal(syscall.SIGTERM)
		case <-done:
		}
	}()
	go func() { cmd.Wait(); close(done); cancel() }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("console:\n%s", w.String())
		}
	})
	return w, ctx
}

// TestE2EK3sServer: a k3s server image (SQLite default) started with
// `basalt qemu --name` boots to ready and k3s (here: whatever $BASALT_K3S
// is) becomes healthy: the console marker, `basalt-init status`, and from
// the host `basalt kubeconfig --qemu` (the forwarded SSH, the root key
// basalt qemu seeded, the server address rewritten to the forwarded API
// port) reads /readyz with the admin certificate. After `basalt-init
// reboot` the node comes back with the same /etc/rancher/node/password and
// is healthy again (its identity survives).
func TestE2EK3sServer(t *testing.T) {
	r := newK3sRig(t)
	img := r.image(t, "debug: {shell: true}\n", "  hostname: k3s-e2e\n  "+strings.ReplaceAll(strings.TrimSuffix(staticNet, "\n"), "\n", "\n  ")+"\n")
	state := filepath.Join(t.TempDir(), "k3s-e2e")
	w, ctx := r.qemuCLI(t, r.deadline, img, "--name", state, "--disk-size", "2G", "--memory", fmt.Sprint(r.memory), "--accel", "tcg")
	w.expect(t, ctx, contract.MarkerReady)
	if r.orchestrator {
		expectAnywhere(t, ctx, w, "test-orchestrator: host contract: all checks passed (node k3s-e2e, ip 10.0.2.15)")
		expectAnywhere(t, ctx, w, "test-orchestrator: node k3s-e2e registered (new node password)")
	}
	expectAnywhere(t, ctx, w, contract.MarkerOrchestratorReady+" (k3s server)")
	st, err := readVMState(state)
	if err != nil || st.Key == "" {
		t.Fatalf("basalt qemu --name state: %v %+v", err, st)
	}
	key, _ := os.ReadFile(st.Key)
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	addr := st.Nodes[0].SSH
	status, err := sshRun(addr, signer, "/sbin/basalt-init status")
	if err != nil || !strings.Contains(status, "orchestrator: ready") {
		t.Fatalf("basalt-init status: %v\n%s", err, status)
	}
	pw1, err := sshRun(addr, signer, "cat "+contract.K3sNodePassword)
	if err != nil || strings.TrimSpace(pw1) == "" {
		t.Fatalf("node password: %v %q", err, pw1)
	}
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	r.basalt(t, "kubeconfig", "--qemu", state, "-o", kc)
	if fi, err := os.Stat(kc); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kubeconfig %s: %v %v, want 0600", kc, fi.Mode(), err)
	}
	b, _ := os.ReadFile(kc)
	got, err := readyz(b)
	if err != nil || got != "200 OK ok" {
		t.Fatalf("GET /readyz from the host with the fetched kubeconfig: %q %v", got, err)
	}
	t.Logf("host: /readyz through basalt kubeconfig --qemu: %s; status:\n%s", got, status)

	sshRun(addr, signer, "/sbin/basalt-init reboot") // the session may end with the reboot
	w.expect(t, ctx, "basalt: reboot now", contract.MarkerReady)
	if r.orchestrator {
		expectAnywhere(t, ctx, w, "test-orchestrator: node k3s-e2e rejoined with its node password (identity kept)")
	}
	w.expect(t, ctx, "basalt: reboot now", contract.MarkerOrchestratorReady+" (k3s server)")
	pw2, err := sshRun(addr, signer, "cat "+contract.K3sNodePassword)
	if err != nil || pw2 != pw1 {
		t.Fatalf("node password after reboot: %q (%v), before %q", pw2, err, pw1)
	}
}

// TestE2EK3sNoDefaultRoute is the server test's negative twin: a static
// address without a gateway leaves no IPv4 default route; the device says
// so and does not start k3s (which would come up IPv6-only), retrying with
// backoff.
func TestE2EK3sNoDefaultRoute(t *testing.T) {
	r := newK3sRig(t)
	c := r.base(t, r.image(t, "", ""))
	c.Net = qemu.Net{User: true}
	c.ExtraDrives = []string{seedImage(t, "network:\n  interfaces:\n    eth0: {addresses: [10.0.2.15/24], dhcp4: false}\n")}
	m, ctx := r.start(t, c)
	expectSeen(t, ctx, m, contract.MarkerReady, "[k3s] start failed: no IPv4 default route: k3s picks its node IP from it",
		"[k3s] restart #1 in 1s", "[k3s] restart #2 in 2s", "[k3s] restart #3 in 4s")
	log := m.Log()
	if strings.Contains(log, "[k3s] started pid") || strings.Contains(log, contract.MarkerOrchestratorReady) {
		t.Fatalf("k3s started without an IPv4 default route:\n%s", log)
	}
}

// consoleLines collects the prefixed consoles of a cluster and waits for
// markers in order.
type consoleLines struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newConsoleLines() *consoleLines { return &consoleLines{changed: make(chan struct{})} }

func (c *consoleLines) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(b)
	close(c.changed)
	c.changed = make(chan struct{})
	return len(b), nil
}

func (c *consoleLines) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// expect waits for each marker after the previous one's position.
func (c *consoleLines) expect(t *testing.T, ctx context.Context, markers ...string) {
	t.Helper()
	from := 0
	for _, mk := range markers {
		for {
			c.mu.Lock()
			s, ch := c.buf.String(), c.changed
			c.mu.Unlock()
			if i := strings.Index(s[from:], mk); i >= 0 {
				from += i + len(mk)
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("waiting for %q: %v\nconsoles:\n%s", mk, ctx.Err(), c.String())
			case <-ch:
			}
		}
	}
}

// clusterDeadline: n VMs share two host cores.
func (r *k3sRig) clusterDeadline(n int) time.Duration {
	return r.deadline + time.Duration(n-1)*3*time.Minute
}

// startCluster boots nodes on one hub as `basalt qemu --cluster` does,
// with one TCG CPU and the rig's memory each, for a plan the CLI cannot
// make (a wrong token), and returns the consoles.
func (r *k3sRig) startCluster(t *testing.T, img string, nodes []clusterNode) (*consoleLines, context.Context) {
	ctx, cancel := context.WithTimeout(context.Background(), r.clusterDeadline(len(nodes)))
	w := newConsoleLines()
	done := make(chan error, 1)
	c := r.base(t, img)
	c.SMP = 1
	go func() { done <- runCluster(ctx, c, nodes, w, filepath.Join(t.TempDir(), "state")) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("consoles:\n%s", w.String())
		}
	})
	return w, ctx
}

// TestE2EK3sCluster: `basalt qemu --cluster 3` (the CLI): a server and two
// agents on a private hub between the VMs, configured only by the seeds
// the cluster makes; the agents join on their first boot and all become
// healthy. From the host, `basalt kubeconfig --qemu` (the state the
// cluster writes: forwarded ports, the SSH key its seeds give root) fetches
// the server's admin kubeconfig, which reads /readyz through the forwarded
// API port; basalt's default manifests are linked into the server's
// auto-deploy dir. Then agent 1 reboots (over its forwarded SSH) and rejoins as
// itself: the same /etc/rancher/node/password, accepted by the server; and
// agent 2, its node password replaced, reboots and is refused (the twin).
func TestE2EK3sCluster(t *testing.T) {
	r := newK3sRig(t)
	token := newToken()
	img := r.image(t, "debug: {shell: true}\n", "")
	start := time.Now()
	state := filepath.Join(t.TempDir(), "edge")
	// One TCG CPU each: three VMs share two host cores.
	w, ctx := r.qemuCLI(t, r.clusterDeadline(3), img, "--cluster", "3", "--name", state, "--token", token,
		"--disk-size", "2G", "--memory", fmt.Sprint(r.memory), "--smp", "1", "--accel", "tcg")
	w.expect(t, ctx, "[basalt-server] "+contract.MarkerOrchestratorReady+" (k3s server)")
	for _, a := range []string{"basalt-agent-1 (10.77.0.11)", "basalt-agent-2 (10.77.0.12)"} {
		if r.orchestrator {
			expectAnywhere(t, ctx, w, "[basalt-server] [k3s] test-orchestrator: agent "+a+" joined: registered (new node password)")
		}
		name, _, _ := strings.Cut(a, " ")
		expectAnywhere(t, ctx, w, "["+name+"] "+contract.MarkerOrchestratorReady+" (k3s agent)")
	}
	t.Logf("server and two agents ready %.1f s after basalt qemu started", time.Since(start).Seconds())

	kc := filepath.Join(t.TempDir(), "kubeconfig")
	r.basalt(t, "kubeconfig", "--qemu", state, "-o", kc)
	b, _ := os.ReadFile(kc)
	got, err := readyz(b)
	if err != nil || got != "200 OK ok" {
		t.Fatalf("GET /readyz from the host with basalt kubeconfig --qemu: %q %v\n%s", got, err, b)
	}

	st, err := readVMState(state)
	if err != nil || len(st.Nodes) != 3 {
		t.Fatalf("cluster state: %v %+v", err, st)
	}
	key, _ := os.ReadFile(st.Key)
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// basalt's default manifests (manifests/) are in k3s' auto-deploy dir.
	want := contract.K3sRootManifests + "/basalt-system.yaml"
	if got, err := sshRun(st.Nodes[0].SSH, signer, "readlink "+contract.K3sManifestsDir+"/basalt-system.yaml"); err != nil || strings.TrimSpace(got) != want {
		t.Errorf("server: %s/basalt-system.yaml -> %q (%v), want %s", contract.K3sManifestsDir, got, err, want)
	}
	agent := st.Nodes[1].SSH
	pw1, err := sshRun(agent, signer, "cat "+contract.K3sNodePassword)
	if err != nil || strings.TrimSpace(pw1) == "" {
		t.Fatalf("agent node password: %v %q", err, pw1)
	}
	// The negative twin, at the same time: agent 2 loses its identity (another
	// node password) and reboots; the server refuses it, the agent says so
	// and is retried, never ready again.
	if r.orchestrator {
		sshRun(st.Nodes[2].SSH, signer, "echo not-its-node-password >"+contract.K3sNodePassword+" && /sbin/basalt-init reboot")
	}
	sshRun(agent, signer, "/sbin/basalt-init reboot") // the session may end with the reboot
	w.expect(t, ctx, "[basalt-agent-1] basalt: reboot now", "[basalt-agent-1] "+contract.MarkerOrchestratorReady+" (k3s agent)")
	if r.orchestrator {
		expectAnywhere(t, ctx, w, "[basalt-server] [k3s] test-orchestrator: agent basalt-agent-1 (10.77.0.11) joined: rejoined with its node password (identity kept)")
	}
	pw2, err := sshRun(agent, signer, "cat "+contract.K3sNodePassword)
	if err != nil || pw2 != pw1 {
		t.Fatalf("agent node password after reboot: %q (%v), before %q", pw2, err, pw1)
	}
	if r.orchestrator {
		const refused = "[basalt-agent-2] [k3s] test-orchestrator: FAIL: agent: join https://10.77.0.10:6443 refused: 403 Forbidden: node password rejected for basalt-agent-2"
		w.expect(t, ctx, "[basalt-agent-2] basalt: reboot now", refused, "[k3s] restart #", refused)
		expectAnywhere(t, ctx, w, "[basalt-server] [k3s] test-orchestrator: join of basalt-agent-2 refused: node password rejected for basalt-agent-2")
		log := w.String()
		if strings.Contains(log[strings.Index(log, "[basalt-agent-2] basalt: reboot now"):], "[basalt-agent-2] "+contract.MarkerOrchestratorReady) {
			t.Errorf("agent 2 became ready with another node password")
		}
	}
	if strings.Contains(w.String(), token) {
		t.Errorf("the join token is on a console")
	}
	t.Logf("cluster test done in %.1f s", time.Since(start).Seconds())
}

// expectAnywhere waits until marker is on the consoles (the agents join in
// either order).
func expectAnywhere(t *testing.T, ctx context.Context, w *consoleLines, marker string) {
	t.Helper()
	waitSeen(t, ctx, w.String, marker)
}

// TestE2EK3sWrongToken is the cluster's negative twin: an agent with a
// wrong token is refused by the server, says so, and is retried with
// backoff (never ready, never a hot loop).
func TestE2EK3sWrongToken(t *testing.T) {
	r := newK3sRig(t)
	nodes := clusterNodes(2, newToken())
	nodes[1].token = "not-the-cluster-token"
	w, ctx := r.startCluster(t, r.image(t, "", ""), nodes)
	w.expect(t, ctx, "[basalt-server] "+contract.MarkerOrchestratorReady+" (k3s server)")
	if r.orchestrator {
		w.expect(t, ctx, "[basalt-server] [k3s] test-orchestrator: join from 10.77.0.11",
			"[basalt-agent-1] [k3s] test-orchestrator: FAIL: agent: join https://10.77.0.10:6443 refused: 401 Unauthorized: Unauthorized: token rejected",
			"[basalt-agent-1] basalt: t=", "[k3s] restart #",
			"[basalt-agent-1] [k3s] test-orchestrator: FAIL: agent: join https://10.77.0.10:6443 refused: 401")
	} else {
		// A real k3s agent retries by itself; give it a minute after the server.
		select {
		case <-ctx.Done():
		case <-time.After(time.Minute):
		}
	}
	if strings.Contains(w.String(), "[basalt-agent-1] "+contract.MarkerOrchestratorReady) {
		t.Fatalf("an agent with a wrong token became ready:\n%s", w.String())
	}
}
