// Command k3s here is basalt's CONTAINERD PROOF, a test program (not k3s):
// scripts/test-containerd.sh packages it like the test orchestrator, in k3s'
// release format, with a real containerd, containerd-shim-runc-v2, ctr and
// runc next to it in the data dir's bin/ (where k3s' own data dir carries
// them). The device starts it as it starts k3s. It plays k3s' part in the
// container plumbing, with the real runtime:
//
//  1. modprobe overlay (basalt-init answers as modprobe) and check cgroup v2;
//  2. start containerd with k3s' paths (root agent/containerd on data,
//     state and socket under /run/k3s/containerd), overlayfs snapshotter;
//  3. import every archive the device linked into agent/images into the
//     k8s.io namespace, labelled io.cri-containerd.pinned=pinned as k3s
//     labels them, and say how long the import took (none when the device
//     seeded containerd from the store the builder made: the images are
//     there when containerd starts);
//  4. run a container from each preloaded image whose name ends in
//     "/containerd-proof-hello:1" (its entrypoint prints the marker), with
//     ctr's default seccomp profile when runc supports it;
//  5. say how long until the images were usable (first container ran),
//     time a plain `ctr images import` of the root's archives into a
//     namespace of its own (the same run's reference), and check that an
//     image that is not preloaded is refused (no network);
//  6. print "containerd-proof: OK" and stay up (the device restarts k3s on
//     any exit).
//
// Any failure prints "containerd-proof: FAIL: ..." with containerd's log tail.
// Nothing it prints may be read as "k3s ran".
package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const (
	dataDir   = "/var/lib/rancher/k3s"
	imagesDir = dataDir + "/agent/images"
	// rootImages: the archives in the read-only root (contract.K3sRootImages).
	rootImages = "/usr/lib/basalt/k3s/images"
	ctrdRoot   = dataDir + "/agent/containerd"
	ctrdState  = "/run/k3s/containerd"
	sock       = ctrdState + "/containerd.sock"
	ns         = "k8s.io"
	pinned     = "io.cri-containerd.pinned=pinned"
	helloName  = "/containerd-proof-hello:1"
	// notPreloaded is a reference no archive carries: with no network,
	// running it must fail (containerd never pulls on `ctr run`).
	notPreloaded = "docker.io/library/basalt-not-preloaded:1"
)

var logPath = ctrdRoot + "/containerd.log"

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "--version" || os.Args[1] == "-v") {
		fmt.Println("k3s version v0.0.0+basalt-containerd-proof (not k3s)")
		return
	}
	say("start (a test program, not k3s), args %q, %s", os.Args[1:], sinceKernel())
	if out, err := exec.Command("modprobe", "overlay").CombinedOutput(); err != nil {
		fail("modprobe overlay: %v: %s", err, out)
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err != nil {
		fail("cgroup v2 is not mounted at /sys/fs/cgroup: %v", err)
	} else {
		say("cgroup v2 controllers: %s", strings.TrimSpace(string(b)))
	}
	t0 := time.Now()
	startContainerd()
	say("containerd up in %d ms (server %s)", time.Since(t0).Milliseconds(), serverVersion())

	// The archives: k3s' .cache.json (which the device creates) and other
	// dot files are not archives, and are not counted as such.
	all, err := filepath.Glob(filepath.Join(imagesDir, "*"))
	if err != nil {
		fail("%v", err)
	}
	var archives, refs []string
	for _, a := range all {
		if !strings.HasPrefix(filepath.Base(a), ".") {
			archives = append(archives, a)
		}
	}
	t1 := time.Now()
	for _, a := range archives {
		t := time.Now()
		importArchive(ns, a)
		say("imported %s in %d ms", filepath.Base(a), time.Since(t).Milliseconds())
	}
	// The images by name (the CRI plugin adds sha256:<config> aliases).
	for _, r := range strings.Fields(ctr("-n", ns, "images", "ls", "-q")) {
		if !strings.HasPrefix(r, "sha256:") {
			refs = append(refs, r)
		}
	}
	if len(refs) == 0 {
		fail("no image imported from %s (%d files): nothing is preloaded", imagesDir, len(archives))
	}
	say("import: %d archives, %d images in %d ms", len(archives), len(refs), time.Since(t1).Milliseconds())
	if len(archives) == 0 {
		say("images present in containerd at its start (seeded at build time): nothing imported")
	}
	list := ctr("-n", ns, "images", "ls")
	var hello string
	for _, r := range refs {
		line := lineWith(list, r)
		if !strings.Contains(line, pinned) {
			fail("image %s in namespace %s is not labelled %s: %q", r, ns, pinned, line)
		}
		say("image %s in %s, %s", r, ns, pinned)
		if strings.HasSuffix(r, helloName) {
			hello = r
		}
	}
	if hello == "" {
		fail("no preloaded image named *%s among %v", helloName, refs)
	}
	args := []string{"-n", ns, "run", "--rm", "--snapshotter", "overlayfs"}
	if seccomp() {
		args = append(args, "--seccomp")
		say("runc has seccomp: the container runs under ctr's default seccomp profile")
	} else {
		say("runc was built without seccomp: the container runs without a seccomp profile")
	}
	t2 := time.Now()
	out := ctr(append(args, hello, "proof-hello")...)
	fmt.Print(out)
	say("container from %s ran in %d ms", hello, time.Since(t2).Milliseconds())
	say("images usable: first container ran %d ms after containerd was up", time.Since(t1).Milliseconds())
	reference()

	cmd := exec.Command("ctr", "-a", sock, "-n", ns, "run", "--rm", notPreloaded, "proof-missing")
	b, err := cmd.CombinedOutput()
	if err == nil {
		fail("ctr run %s succeeded: it is not preloaded", notPreloaded)
	}
	say("image not preloaded refused: %s", strings.TrimSpace(lastLine(string(b))))
	say("OK")
	select {}
}

// importArchive imports an archive into namespace n as k3s does (pinned),
// and unpacks it (ctr's default), so the container then needs no unpack.
func importArchive(n, path string) {
	ctr("-n", n, "images", "import", "--label", pinned, path)
}

// reference: a plain `ctr images import` of the root's own archives (the
// files the device links for import) into a namespace of its own, timed,
// the same run's yardstick for the device's way (bench). A fresh name per
// boot: nothing from an earlier boot is reused but blobs, whose ingest is
// still read, hashed and written.
func reference() {
	archives, _ := filepath.Glob(rootImages + "/*")
	if len(archives) == 0 {
		return
	}
	var size int64
	for _, a := range archives {
		if fi, err := os.Stat(a); err == nil {
			size += fi.Size()
		}
	}
	n := fmt.Sprintf("basalt-ref-%d", time.Now().UnixNano())
	t := time.Now()
	for _, a := range archives {
		importArchive(n, a)
	}
	say("reference: plain ctr import of %d archives (%d bytes) into namespace %s: %d ms", len(archives), size, n, time.Since(t).Milliseconds())
}

// startContainerd writes a config with k3s' paths and starts containerd,
// logging to logPath on data, and waits for its socket.
func startContainerd() {
	for _, d := range []string{ctrdRoot, ctrdState, dataDir + "/agent/etc/containerd"} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			fail("%v", err)
		}
	}
	cfg := dataDir + "/agent/etc/containerd/config.toml"
	conf := fmt.Sprintf("version = 3\nroot = %q\nstate = %q\n\n[grpc]\n  address = %q\n", ctrdRoot, ctrdState, sock)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		fail("%v", err)
	}
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		fail("%v", err)
	}
	cmd := exec.Command("containerd", "--config", cfg)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		fail("start containerd: %v", err)
	}
	go func() {
		err := cmd.Wait()
		fail("containerd exited: %v", err)
	}()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if exec.Command("ctr", "-a", sock, "version").Run() == nil {
			return
		}
	}
	fail("containerd did not answer on %s within 2 minutes", sock)
}

func ctr(args ...string) string {
	b, err := exec.Command("ctr", append([]string{"-a", sock}, args...)...).CombinedOutput()
	if err != nil {
		fail("ctr %s: %v: %s", strings.Join(args, " "), err, b)
	}
	return string(b)
}

func serverVersion() string {
	v := strings.Split(ctr("version"), "Server:")
	return strings.Join(strings.Fields(v[len(v)-1]), " ")
}

// sinceKernel says how long the kernel has run (/proc/uptime): at the
// proof's start, the time from kernel start to the orchestrator's exec.
func sinceKernel() string {
	b, err := os.ReadFile("/proc/uptime")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		if s, err := strconv.ParseFloat(f[0], 64); err == nil {
			return fmt.Sprintf("%d ms since kernel start", int64(s*1000))
		}
	}
	return "time since kernel start unknown"
}

// seccomp: runc reports the libseccomp it was linked with.
func seccomp() bool {
	b, _ := exec.Command("runc", "--version").Output()
	return bytes.Contains(b, []byte("libseccomp:"))
}

func lineWith(text, s string) string {
	for _, l := range strings.Split(text, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == s {
			return l
		}
	}
	return ""
}

func lastLine(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return l[len(l)-1]
}

func say(format string, a ...any) {
	fmt.Printf("containerd-proof: "+format+"\n", a...)
}

func fail(format string, a ...any) {
	fmt.Printf("containerd-proof: FAIL: "+format+"\n", a...)
	if b, err := os.ReadFile(logPath); err == nil {
		l := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(l) > 15 {
			l = l[len(l)-15:]
		}
		for _, s := range l {
			fmt.Println("containerd-proof: containerd log:", s)
		}
	}
	os.Exit(1)
}
