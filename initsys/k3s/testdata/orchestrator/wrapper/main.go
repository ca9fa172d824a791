// Command k3s here is the outer binary of basalt's TEST ORCHESTRATOR, built
// by scripts/test-orchestrator.sh in k3s' release format: it carries one
// go:embed'd data archive named <sha256>.tar.zst (bin/k3s = the test
// orchestrator proper, etc/) and, like k3s' cmd/k3s, execs
// <data-dir>/data/<hash>/bin/k3s with <hash>/bin first and <hash>/bin/aux
// last on PATH. Unlike k3s it never extracts: basalt pre-extracts the
// archive into the root at build time, so a missing data dir is a failure
// of that contract and it says so loudly.
//
// It is not k3s. Nothing it prints may be read as "k3s ran".
package main

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

//go:embed data
var data embed.FS

const dataDir = "/var/lib/rancher/k3s" // k3s' default as root

func main() {
	ents, err := fs.ReadDir(data, "data")
	if err != nil || len(ents) != 1 || !strings.HasSuffix(ents[0].Name(), ".tar.zst") {
		fail("the embedded data archive is missing (built without scripts/test-orchestrator.sh?)")
	}
	hash := strings.TrimSuffix(ents[0].Name(), ".tar.zst")
	if len(os.Args) > 1 && (os.Args[1] == "--version" || os.Args[1] == "-v") {
		fmt.Printf("k3s version v0.0.0+basalt-test-orchestrator (data %s)\n", hash)
		return
	}
	dir := dataDir
	if d := os.Getenv("K3S_DATA_DIR"); d != "" {
		dir = d
	}
	hashDir := filepath.Join(dir, "data", hash)
	bin := filepath.Join(hashDir, "bin", "k3s")
	if _, err := os.Stat(bin); err != nil {
		fail(fmt.Sprintf("%s: %v: the k3s data is not pre-extracted (a real k3s would now extract ~200 MB there, on the data partition)", bin, err))
	}
	path := filepath.Join(dir, "data", "cni") + ":" + filepath.Join(hashDir, "bin") + ":" + os.Getenv("PATH") + ":" + filepath.Join(hashDir, "bin", "aux")
	env := []string{"PATH=" + path, "TEST_ORCHESTRATOR_DATA=" + hashDir}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "PATH=") {
			env = append(env, e)
		}
	}
	err = syscall.Exec(bin, append([]string{"k3s"}, os.Args[1:]...), env)
	fail(fmt.Sprintf("exec %s: %v", bin, err))
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "test-orchestrator: FAIL:", msg)
	os.Exit(1)
}
