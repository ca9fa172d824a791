// Command orchestrator is basalt's TEST ORCHESTRATOR: it stands in for the
// k3s binary in boot tests, on k3s' documented contract, and is not k3s.
// Every line it prints starts with "test-orchestrator:"; nothing it prints
// may be read as "k3s ran".
//
// `k3s server|agent [--flag=value...]`: it parses the command line and
// /etc/rancher/k3s/config.yaml (+ config.yaml.d/*.yaml) strictly (only the
// flags basalt writes, with k3s' types; a server-only flag on an agent is
// an error), checks the host contract of basalt's DESIGN.md ("What a real
// k3s server needs from the root") and fails loudly on any miss, then
//   - server: makes a CA, the admin kubeconfig /etc/rancher/k3s/k3s.yaml
//     (0600, client certificate; anonymous requests get 401 as in k3s), the
//     server token, and serves https://:6443 (/cacerts, /readyz, /healthz,
//     a token join handshake, /api/v1/nodes/NAME) and kubelet's healthz on
//     127.0.0.1:10248;
//   - agent: joins the server with the token (the CA hash of a K10 token is
//     checked against /cacerts, as k3s does), sending its node password;
//     gets a kubelet client certificate, writes kubelet.kubeconfig and
//     serves kubelet's healthz. A refused or unreachable server is an exit
//     1: the supervisor's backoff is what retries.
//
// Node identity: /etc/rancher/node/password is created at the first start
// (0600) and the server keeps a hash per node name; a node that comes back
// with another password is refused, as k3s refuses it.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const prefix = "test-orchestrator: "

func say(format string, args ...any) { fmt.Printf(prefix+format+"\n", args...) }

func fail(format string, args ...any) {
	fmt.Printf(prefix+"FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "server" && os.Args[1] != "agent") {
		fail("usage: k3s server|agent [--flag=value...] (got %q)", os.Args[1:])
	}
	role := os.Args[1]
	say("%s starting (this is basalt's test orchestrator, not k3s)", role)
	cfg, err := loadConfig(role, "/etc/rancher/k3s", os.Args[2:])
	if err != nil {
		fail("config: %v", err)
	}
	host, err := checkHost(cfg)
	if err != nil {
		fail("host contract: %v", err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sigs
		say("%v: stopping", s)
		os.Exit(0)
	}()
	if role == "server" {
		err = runServer(cfg, host)
	} else {
		err = runAgent(cfg, host)
	}
	if err != nil {
		fail("%s: %v", role, err)
	}
}
