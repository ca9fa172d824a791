package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/basaltos/basalt/boards"
	"github.com/basaltos/basalt/image/disk"
	"github.com/basaltos/basalt/internal/errclass"
	"github.com/basaltos/basalt/qemu"
)

type qemuOptions struct {
	board    string
	diskSize string
	net      string
	forwards []string
	memory   int
	smp      int
	accel    string
	snapshot bool
	noReboot bool
	seed     string
	cluster  int
	token    string
	name     string
}

func newQemuCmd(_ *globalOptions) *cobra.Command {
	o := &qemuOptions{}
	cmd := &cobra.Command{
		Use:   "qemu IMAGE",
		Short: "Boot an image in QEMU with its board's machine, firmware and a serial console",
		Long: `Boot IMAGE (raw or qcow2) in QEMU: the board's machine and CPU, its firmware
(OVMF/AAVMF with a private copy of the UEFI vars, U-Boot for armv7), the serial
console on this terminal (Ctrl-A X quits), KVM when it works here, else TCG.

The board comes from --board, else from the manifest next to the image
(NAME.manifest.json for NAME.img), else from the end of the file name.
--disk-size boots on a bigger virtual disk (an overlay; the image is unchanged).
--seed attaches a NoCloud seed (basalt config seed) as a second disk.
--net user is QEMU's user network, isolated (restrict=on: no outside address,
so no DNS or NTP); --net outside lets the guest reach the internet through the
host. Forwards bind 127.0.0.1 only.

  basalt qemu out/demo-0.1.0-qemu-x86_64.img
  basalt qemu demo.img --board qemu-arm64 --disk-size 4G --seed seed.img
  basalt qemu demo.img --net outside --forward 127.0.0.1:2222-:22 --forward 6443-:6443

--name NAME also forwards the VM's SSH and API (6443) to free ports of
127.0.0.1 (implies --net user), seeds root a fresh SSH key (unless --seed: then
your seed's keys apply) and keeps both in the state directory
<cache dir>/qemu/NAME while it runs, for ` + "`basalt kubeconfig --qemu NAME`" + `.

--cluster N boots N VMs of the image (one k3s server, N-1 agents), each on its
own overlay disk (--disk-size, default 4G), on a private network between them
(a hub on 127.0.0.1; the VMs reach nothing else). Each gets a NoCloud seed with
its name, address (10.77.0.10 for the server, .11... for the agents, default
route via 10.77.0.1), role, the server's address and one join token (--token,
default random): the agents join by themselves. Each VM also gets an isolated
user network whose forwards (127.0.0.1, free ports) reach its SSH, and the
server's API (6443); --forward adds more to the server. The seeds give root a
fresh SSH key, kept with qemu.json (the forwarded addresses) in the state
directory <cache dir>/qemu/NAME (--name, default the image's file name) while
the VMs run: ` + "`basalt kubeconfig --qemu NAME`" + ` fetches the server's admin
kubeconfig (the image needs a shell for SSH sessions: a config user with
ssh_authorized_keys, or debug: {shell: true}). Consoles are prefixed
[basalt-server], [basalt-agent-1], ...; Ctrl-C stops all.

  basalt qemu k3s.img --cluster 3 --name edge
  basalt kubeconfig --qemu edge -o edge.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runQemu(cmd, o, args[0]) },
	}
	f := cmd.Flags()
	f.StringVar(&o.board, "board", "", "board (default: from the image's manifest or file name)")
	f.StringVar(&o.diskSize, "disk-size", "", "boot on a virtual disk of this size, e.g. 4G or 8GiB")
	f.StringVar(&o.net, "net", "none", "network: none, user (isolated) or outside (user network that reaches the internet)")
	f.StringVar(&o.seed, "seed", "", "NoCloud seed image to attach (basalt config seed DIR -o seed.img)")
	f.StringArrayVar(&o.forwards, "forward", nil, "port forward [tcp:|udp:][127.0.0.1:]HOST-:GUEST (implies --net user; repeatable)")
	f.IntVar(&o.memory, "memory", 0, "memory in MiB (default: the board's)")
	f.IntVar(&o.smp, "smp", 0, "CPUs (default: the board's)")
	f.StringVar(&o.accel, "accel", "auto", "accelerator: auto, kvm or tcg")
	f.BoolVar(&o.snapshot, "snapshot", false, "discard the guest's writes to the image")
	f.BoolVar(&o.noReboot, "no-reboot", false, "exit when the guest reboots")
	f.IntVar(&o.cluster, "cluster", 0, "boot N VMs: one k3s server and N-1 agents that join it")
	f.StringVar(&o.token, "token", "", "the cluster's join token (with --cluster; default: random)")
	f.StringVar(&o.name, "name", "", "name the VM (or, with --cluster, the cluster; default: the image's file name) for basalt kubeconfig --qemu NAME")
	_ = cmd.RegisterFlagCompletionFunc("board", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return boards.Names(), cobra.ShellCompDirectiveNoFileComp
	})
	_ = cmd.RegisterFlagCompletionFunc("net", cobra.FixedCompletions([]string{"none", "user", "outside"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("accel", cobra.FixedCompletions([]string{"auto", "kvm", "tcg"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runQemu(cmd *cobra.Command, o *qemuOptions, image string) error {
	c, err := o.config(image)
	if err != nil {
		return err
	}
	c.Console = cmd.OutOrStdout()
	if o.cluster > 0 {
		if c.DiskSize == 0 && !c.Snapshot {
			c.DiskSize = 4 << 30
		}
		token := o.token
		if token == "" {
			token = newToken()
		}
		name := o.name
		if name == "" {
			name = strings.TrimSuffix(filepath.Base(image), filepath.Ext(image))
		}
		state, err := qemuStateDir(name)
		if err != nil {
			return err
		}
		return runCluster(cmd.Context(), c, clusterNodes(o.cluster, token), cmd.OutOrStdout(), state)
	}
	if term.IsTerminal(int(os.Stdin.Fd())) {
		c.Stdin = os.Stdin
	}
	if o.name != "" {
		state, err := qemuStateDir(o.name)
		if err != nil {
			return err
		}
		return runNamed(cmd.Context(), c, o.name, state, o.seed != "")
	}
	return qemu.Run(cmd.Context(), c)
}

// config turns the flags into a qemu.Config; every error is invalid input.
func (o *qemuOptions) config(image string) (qemu.Config, error) {
	if err := checkImage(image); err != nil {
		return qemu.Config{}, errclass.Invalidf("%w", err)
	}
	name := o.board
	if name == "" {
		var err error
		if name, err = imageBoard(image); err != nil {
			return qemu.Config{}, errclass.Invalidf("%w", err)
		}
	}
	b, err := boards.Get(name)
	if err != nil {
		return qemu.Config{}, errclass.Invalidf("--board: %w", err)
	}
	c := qemu.Config{Board: b, Image: image, Memory: o.memory, SMP: o.smp, Snapshot: o.snapshot, NoReboot: o.noReboot}
	if o.diskSize != "" {
		if c.DiskSize, err = parseSize(o.diskSize); err != nil {
			return qemu.Config{}, errclass.Invalidf("--disk-size: %w", err)
		}
	}
	switch o.net {
	case "none":
		c.Net.User = len(o.forwards) > 0
	case "user":
		c.Net.User = true
	case "outside":
		c.Net.User, c.Net.Outside = true, true
	default:
		return qemu.Config{}, errclass.Invalidf("--net %q: want none, user or outside", o.net)
	}
	if o.seed != "" {
		if fi, err := os.Stat(o.seed); err != nil || !fi.Mode().IsRegular() {
			return qemu.Config{}, errclass.Invalidf("--seed %s: want a seed image file (basalt config seed DIR -o seed.img)", o.seed)
		}
		c.ExtraDrives = append(c.ExtraDrives, o.seed)
	}
	for _, s := range o.forwards {
		fw, err := qemu.ParseForward(s)
		if err != nil {
			return qemu.Config{}, errclass.Invalidf("--forward: %w", err)
		}
		c.Net.Forwards = append(c.Net.Forwards, fw)
	}
	if o.cluster < 0 || o.cluster > 16 {
		return qemu.Config{}, errclass.Invalidf("--cluster %d: want 1 to 16 VMs", o.cluster)
	}
	if o.seed != "" && o.cluster > 0 {
		return qemu.Config{}, errclass.Invalidf("--seed and --cluster: the cluster makes each VM's seed")
	}
	if o.token != "" && o.cluster == 0 {
		return qemu.Config{}, errclass.Invalidf("--token needs --cluster")
	}
	switch o.accel {
	case "auto":
	case "kvm", "tcg":
		c.Accel = qemu.Accel(o.accel)
	default:
		return qemu.Config{}, errclass.Invalidf("--accel %q: want auto, kvm or tcg", o.accel)
	}
	return c, nil
}

// checkImage refuses what is not a disk image: a qcow2 file, or a raw
// file with a partition table (GPT or MBR); anything else (/etc/passwd)
// would only boot into the firmware's shell.
func checkImage(image string) error {
	format, _, err := qemu.DetectFormat(image)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if format == qemu.QCOW2 {
		return nil
	}
	if _, err := disk.Read(image); err != nil {
		return fmt.Errorf("%s is not a disk image (no GPT or MBR partition table: %w); build one with basalt build", image, err)
	}
	return nil
}

// imageBoard finds an image's board: the "board" of NAME.manifest.json next
// to NAME.img, else the longest board name the file name ends with.
func imageBoard(image string) (string, error) {
	base := filepath.Base(image)
	for _, ext := range []string{".qcow2", ".img", ".raw"} {
		base = strings.TrimSuffix(base, ext)
	}
	manifest := filepath.Join(filepath.Dir(image), base+".manifest.json")
	if data, err := os.ReadFile(manifest); err == nil {
		var m struct {
			Board string `json:"board"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			return "", fmt.Errorf("%s: %w", manifest, err)
		}
		if m.Board != "" {
			return m.Board, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	best := ""
	for _, n := range boards.Names() {
		if (base == n || strings.HasSuffix(base, "-"+n)) && len(n) > len(best) {
			best = n
		}
	}
	if best == "" {
		return "", fmt.Errorf("cannot tell the board of %s (no %s, no board name at the end of the file name): use --board (%s)",
			image, filepath.Base(manifest), strings.Join(boards.Names(), ", "))
	}
	return best, nil
}

// parseSize parses a byte count with an optional binary unit: 4G, 4GiB,
// 512M, 1048576.
func parseSize(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range []struct {
		suffixes []string
		mult     int64
	}{{[]string{"TiB", "T"}, 1 << 40}, {[]string{"GiB", "G"}, 1 << 30}, {[]string{"MiB", "M"}, 1 << 20}, {[]string{"KiB", "K"}, 1 << 10}} {
		for _, suf := range u.suffixes {
			if strings.HasSuffix(num, suf) {
				num, mult = strings.TrimSuffix(num, suf), u.mult
				break
			}
		}
		if mult != 1 {
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: want a positive whole number with an optional unit (K, M, G, T or KiB, MiB, GiB, TiB), e.g. 4G", s)
	}
	return n * mult, nil
}
