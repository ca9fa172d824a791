package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// hostInfo is what the checks found out.
type hostInfo struct {
	nodeIP   string
	nodeName string
	password string // node password
	known    bool   // the password file existed before this start
}

// checkHost checks the host contract of DESIGN.md, every item, and returns
// all misses at once.
func checkHost(cfg *config) (hostInfo, error) {
	var h hostInfo
	var misses []string
	check := func(name string, err error) {
		if err != nil {
			misses = append(misses, fmt.Sprintf("%s: %v", name, err))
			say("check %s: MISSING: %v", name, err)
			return
		}
		say("check %s: ok", name)
	}
	ifc, err := defaultRoute()
	check("ipv4-default-route", err)
	h.nodeIP = cfg.str("node-ip")
	if h.nodeIP == "" && ifc != "" {
		h.nodeIP, err = ipv4Of(ifc)
		check("node-ip", err)
	}
	check("etc-passwd", hasLine("/etc/passwd", "root:x:0:0:"))
	check("etc-group", hasLine("/etc/group", "root:x:0:"))
	for _, d := range []string{"/etc/rancher", "/var/lib/rancher", "/var/lib/kubelet"} {
		check("writable "+d, writable(d))
	}
	for _, d := range []string{"/var/lib/rancher", "/var/lib/kubelet", "/etc/rancher"} {
		check("persistent "+d, persistent(d))
	}
	// On PATH: what the host provides (the k3s data dir brings the rest);
	// the wrapper put the pre-extracted data's bin/ on PATH.
	for _, p := range []string{"modprobe", "mount", "umount"} {
		_, err := exec.LookPath(p)
		check("path "+p, err)
	}
	if d := os.Getenv("TEST_ORCHESTRATOR_DATA"); d != "" {
		p, err := exec.LookPath("k3s")
		if err == nil && !strings.HasPrefix(p, d+"/") {
			err = fmt.Errorf("k3s on PATH is %s, not the data dir's", p)
		}
		check("path data-dir bin", err)
	}
	// k3s modprobes these at start; the kernel asks /sbin/modprobe for more.
	for _, m := range []string{"overlay", "nf_conntrack", "br_netfilter", "iptable_nat", "iptable_filter"} {
		check("modprobe "+m, run("modprobe", m))
	}
	check("kernel modprobe", kernelModprobe())
	mi, err := mountinfo()
	check("mountinfo", err)
	for _, want := range []struct{ dir, fstype string }{
		{"/dev", "devtmpfs"}, {"/dev/pts", "devpts"}, {"/dev/shm", "tmpfs"}, {"/run", "tmpfs"}, {"/tmp", "tmpfs"},
		{"/sys/fs/cgroup", "cgroup2"}, {"/sys/kernel/security", "securityfs"}, {"/sys/fs/bpf", "bpf"},
	} {
		m, ok := mi[want.dir]
		var err error
		if !ok || m.fstype != want.fstype {
			err = fmt.Errorf("want %s mounted on %s, have %+v", want.fstype, want.dir, m)
		}
		check("mount "+want.dir, err)
	}
	var err2 error
	if m := mi["/"]; !strings.Contains(m.optional, "shared:") {
		err2 = fmt.Errorf("/ is not shared (optional fields %q): want rshared", m.optional)
	}
	check("rshared /", err2)
	check("cgroup2 controllers", cgroupControllers())
	check("mount-umount tmpfs", mountUmount())
	h.nodeName = cfg.str("node-name")
	if h.nodeName == "" {
		n, _ := os.Hostname()
		h.nodeName = strings.ToLower(n)
	}
	h.password, h.known, err = nodePassword()
	check("node password", err)
	if len(misses) > 0 {
		return h, errors.New(strings.Join(misses, "; "))
	}
	say("host contract: all checks passed (node %s, ip %s)", h.nodeName, h.nodeIP)
	return h, nil
}

func defaultRoute() (string, error) {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan()
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) >= 8 && fl[1] == "00000000" && fl[7] == "00000000" {
			return fl[0], nil
		}
	}
	return "", errors.New("no IPv4 default route (a real k3s would silently come up IPv6-only)")
}

func ipv4Of(name string) (string, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return "", err
	}
	addrs, _ := ifc.Addrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.String(), nil
		}
	}
	return "", fmt.Errorf("%s has no IPv4 address", name)
}

func hasLine(path, prefix string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix) {
			return nil
		}
	}
	return fmt.Errorf("%s has no %q line", path, prefix)
}

func writable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	p := filepath.Join(dir, ".test-orchestrator-probe")
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		return err
	}
	return os.Remove(p)
}

// persistent: the directory is on a disk filesystem (the data partition,
// or the /etc overlay whose upper is there), not tmpfs or the squashfs.
func persistent(dir string) error {
	mi, err := mountinfo()
	if err != nil {
		return err
	}
	best := ""
	for d := range mi {
		if (dir == d || strings.HasPrefix(dir, strings.TrimSuffix(d, "/")+"/")) && len(d) > len(best) {
			best = d
		}
	}
	switch fs := mi[best].fstype; fs {
	case "ext4", "overlay", "btrfs", "xfs":
		return nil
	default:
		return fmt.Errorf("%s is on %s (%s): not persistent", dir, best, fs)
	}
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// kernelModprobe: the kernel's module helper is /sbin/modprobe and it runs.
func kernelModprobe() error {
	b, err := os.ReadFile("/proc/sys/kernel/modprobe")
	if err != nil {
		return err
	}
	p := strings.TrimSpace(string(b))
	if _, err := os.Stat(p); err != nil {
		return fmt.Errorf("kernel module helper %s: %w", p, err)
	}
	return run(p, "-q", "-n", "overlay")
}

type mnt struct{ fstype, optional string }

// mountinfo maps mount points to their type and optional fields (the last
// mount on a point wins).
func mountinfo() (map[string]mnt, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	out := map[string]mnt{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 6 || len(g) < 1 {
			continue
		}
		out[f[4]] = mnt{fstype: g[0], optional: strings.Join(f[6:], " ")}
	}
	return out, nil
}

func cgroupControllers() error {
	avail, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	if err != nil {
		return err
	}
	on, err := os.ReadFile("/sys/fs/cgroup/cgroup.subtree_control")
	if err != nil {
		return err
	}
	enabled := map[string]bool{}
	for _, c := range strings.Fields(string(on)) {
		enabled[c] = true
	}
	var off []string
	for _, c := range strings.Fields(string(avail)) {
		if !enabled[c] {
			off = append(off, c)
		}
	}
	for _, need := range []string{"cpu", "memory", "pids"} {
		if !enabled[need] {
			off = append(off, need+"(required)")
		}
	}
	if len(off) > 0 {
		return fmt.Errorf("not in cgroup.subtree_control: %v", off)
	}
	return nil
}

// mountUmount does what kubelet does for a pod's tmpfs volume, with the
// mount and umount on PATH, and the "not mounted" probe of mount-utils.
func mountUmount() error {
	dir := "/var/lib/kubelet/pods/test-orchestrator/volumes/kubernetes.io~empty-dir/probe"
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	if err := run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir); err != nil {
		return err
	}
	mi, _ := mountinfo()
	if mi[dir].fstype != "tmpfs" {
		return fmt.Errorf("mount -t tmpfs returned 0 but %s is not a tmpfs", dir)
	}
	if err := run("umount", dir); err != nil {
		return err
	}
	out, err := exec.Command("umount", dir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not mounted") {
		return fmt.Errorf("umount of a directory that is not mounted: %v %q, want an error saying 'not mounted'", err, out)
	}
	return os.RemoveAll("/var/lib/kubelet/pods/test-orchestrator")
}

// nodePassword reads /etc/rancher/node/password, creating it (0600) at the
// first start as k3s does.
func nodePassword() (string, bool, error) {
	const p = "/etc/rancher/node/password"
	if b, err := os.ReadFile(p); err == nil {
		return strings.TrimSpace(string(b)), true, nil
	}
	pw := randomHex(16)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", false, err
	}
	if err := os.WriteFile(p, []byte(pw+"\n"), 0o600); err != nil {
		return "", false, err
	}
	return pw, false, nil
}
