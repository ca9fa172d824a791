package cli

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/basaltos/basalt/internal/errclass"
)

// k3sYAML is the shape of the admin kubeconfig k3s writes.
const k3sYAML = `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
`

func TestRewriteKubeconfig(t *testing.T) {
	out, err := rewriteKubeconfig([]byte(k3sYAML), "https://10.0.0.5:6443")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"server: https://10.0.0.5:6443", "client-key-data: S0VZ", "current-context: default", "certificate-authority-data: Q0E="} {
		if !strings.Contains(string(out), k) {
			t.Errorf("rewritten kubeconfig lacks %q:\n%s", k, out)
		}
	}
	if strings.Contains(string(out), "127.0.0.1") {
		t.Errorf("old server kept:\n%s", out)
	}
	for _, bad := range []string{"", "[]", "clusters: [{name: x}]", "a: b"} {
		if _, err := rewriteKubeconfig([]byte(bad), "https://h:6443"); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzRewriteKubeconfig(f *testing.F) {
	f.Add([]byte(k3sYAML))
	f.Add([]byte("clusters: [{cluster: {server: [1]}}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := rewriteKubeconfig(b, "https://h:6443")
		if err == nil && !strings.Contains(string(out), "https://h:6443") {
			t.Errorf("no error and no server in %q", out)
		}
	})
}

func TestSSHTarget(t *testing.T) {
	for _, tc := range []struct{ in, user, host, addr string }{
		{"root@10.0.0.5", "root", "10.0.0.5", "10.0.0.5:22"},
		{"127.0.0.1:2222", "root", "127.0.0.1", "127.0.0.1:2222"},
		{"ops@[fe80::1]:22", "ops", "fe80::1", "[fe80::1]:22"},
		{"store-7.lan", "root", "store-7.lan", "store-7.lan:22"},
	} {
		u, h, a := sshTarget(tc.in)
		if diff := cmp.Diff([]string{tc.user, tc.host, tc.addr}, []string{u, h, a}); diff != "" {
			t.Errorf("%s: %s", tc.in, diff)
		}
	}
}

// TestVMState: the state `basalt qemu --cluster` writes is what
// `basalt kubeconfig --qemu` reads (a name resolves under the cache dir, a
// path is used as is); no running cluster is a clear invalid-input error.
func TestVMState(t *testing.T) {
	t.Setenv("BASALT_CACHE_DIR", t.TempDir())
	dir, err := qemuStateDir("edge")
	if err != nil || !strings.HasSuffix(dir, "/qemu/edge") {
		t.Fatalf("qemuStateDir(edge) = %q, %v", dir, err)
	}
	if _, err := readVMState("edge"); err == nil || errclass.Code(err) != errclass.ExitInvalid || !strings.Contains(err.Error(), "--name edge` running") {
		t.Fatalf("no cluster: %v", err)
	}
	key, pub, err := newVMKey(dir)
	if err != nil || !strings.HasPrefix(pub, "ssh-ed25519 ") {
		t.Fatalf("newVMKey: %q %v", pub, err)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key %s: %v %v", key, fi, err)
	}
	want := vmState{Key: key, API: "https://127.0.0.1:40001", Nodes: []vmNode{{Name: "basalt-server", Role: "server", IP: "10.77.0.10", SSH: "127.0.0.1:40000"}}}
	if err := want.write(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"edge", dir} {
		got, err := readVMState(name)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, *got); diff != "" {
			t.Errorf("readVMState(%s): %s", name, diff)
		}
	}
	if _, err := qemuStateDir(".hidden"); err == nil {
		t.Error("a name starting with . was taken")
	}
}
