// Package stage2 is PID 1 of the slot root: it installs the reaper and the
// signal handlers, runs the boot sequence (the steps list below, top to
// bottom), prints the ready marker, supervises services and shuts down
// cleanly on a signal.
//
// Signals to PID 1 (what `basalt-init reboot|poweroff` send):
//
//	SIGTERM, SIGINT (ctrl-alt-del, with reboot(CAD_OFF)) -> orderly reboot
//	SIGUSR2                                              -> orderly poweroff
package stage2

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/initsys/blockdev"
	"github.com/basaltos/basalt/initsys/boot"
	"github.com/basaltos/basalt/initsys/clock"
	"github.com/basaltos/basalt/initsys/datapart"
	"github.com/basaltos/basalt/initsys/devconfig"
	"github.com/basaltos/basalt/initsys/identity"
	"github.com/basaltos/basalt/initsys/k3s"
	"github.com/basaltos/basalt/initsys/mounts"
	"github.com/basaltos/basalt/initsys/netup"
	"github.com/basaltos/basalt/initsys/reaper"
	"github.com/basaltos/basalt/initsys/say"
	"github.com/basaltos/basalt/initsys/sshd"
	"github.com/basaltos/basalt/initsys/stage1"
	"github.com/basaltos/basalt/initsys/status"
	"github.com/basaltos/basalt/initsys/supervise"
	"github.com/basaltos/basalt/initsys/update"
	"github.com/basaltos/basalt/initsys/watchdog"
)

// Tunables.
const (
	rebootCountdown = 5 * time.Second
	dhcpTimeout     = 10 * time.Second
	ntpTimeout      = 3 * time.Second
	ntpInterval     = 30 * time.Minute
	stopGrace       = 10 * time.Second
)

// defaultNTP is used until the device config names servers.
var defaultNTP = []string{"pool.ntp.org"}

// system is what the steps share.
type system struct {
	start   time.Time
	ctx     context.Context
	cmdline stage1.Cmdline
	// cmdlineRaw is /proc/cmdline, for the config's basalt.* keys.
	cmdlineRaw string
	version    string
	// devs are the block devices (listed once); boot is the boot partition.
	devs  []blockdev.Dev
	boot  blockdev.Dev
	data  datapart.Device
	dataB uint64
	id    string
	net   netup.Net
	sup   *supervise.Supervisor
	// ntpKick makes the clock discipline sync at once (config reload).
	ntpKick chan struct{}

	mu      sync.Mutex
	cfg     devconfig.Result
	ssh     *sshd.Server
	k3s     *k3s.Node // nil: no orchestrator in the image
	upd     *update.Updater
	results []boot.Result
	verity  status.Verity
	ready   bool
	once    sync.Once
	dog     *watchdog.Dog // nil: the board has no watchdog
	// rebootArg, when set, makes the reboot a RESTART2 with this argument
	// (ab.Rebooter: the Pi's "0 tryboot" after arming a trial).
	rebootArg string
}

// openWatchdog arms the hardware watchdog, when there is one, and feeds it
// from here on: a hung boot resets the board (the Pi's trial boots need it).
func (s *system) openWatchdog() error {
	if s.cmdline.NoWatchdog {
		say.Printf("watchdog: left alone (%s)", stage1.CmdlineNoWatchdog)
		return nil
	}
	d, err := watchdog.Open(watchdog.Device)
	if err != nil {
		return err
	}
	if d != nil {
		say.Printf("watchdog %s armed (%s), fed by the init", watchdog.Device, d.Timeout())
	}
	s.dog = d
	return nil
}

func (s *system) steps() []boot.Step {
	return []boot.Step{
		{Name: "api-filesystems", Essential: true, Run: s.apiFS},
		{Name: "watchdog", Essential: false, Run: s.openWatchdog},
		{Name: "find-data", Essential: true, Run: s.findData},
		{Name: "verity-watch", Essential: false, Run: s.watchVerity},
		{Name: "grow-partition", Essential: false, Run: s.growPartition},
		{Name: "mount-data", Essential: true, Run: func() error { return mounts.MountData(s.data.Part) }},
		{Name: "grow-filesystem", Essential: false, Run: s.growFS},
		{Name: "data-layout", Essential: true, Run: mounts.LayoutData},
		{Name: "init-log", Essential: false, Run: keepLog},
		{Name: "machine-id", Essential: true, Run: s.machineID},
		{Name: "config", Essential: false, Run: s.loadConfig},
		{Name: "config-apply", Essential: false, Run: s.applyConfig},
		{Name: "hostname", Essential: false, Run: s.hostname},
		{Name: "status-socket", Essential: false, Run: func() error { return status.Serve(s.ctx, status.Socket, s.status) }},
		{Name: "network", Essential: false, Run: s.network},
		{Name: "clock", Essential: false, Run: s.clock},
		{Name: "ssh", Essential: false, Run: s.startSSH},
		{Name: "services", Essential: false, Run: s.services},
		{Name: "orchestrator", Essential: false, Run: s.orchestrator},
	}
}

// Main runs stage 2; it does not return.
func Main() {
	s := &system{start: time.Now(), ctx: context.Background(), ntpKick: make(chan struct{}, 1)}
	if err := say.TakeHandOff(); err != nil {
		say.Printf("%v", err)
	}
	// Before any child starts: the reaper and the signal handlers.
	reaper.Start()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR2)
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF); err != nil { // ctrl-alt-del -> SIGINT to us
		say.Printf("ctrl-alt-del stays a hard reboot: reboot(CAD_OFF): %v", err)
	}
	go func() {
		sig := <-sigs
		off := sig == syscall.SIGUSR2
		what := "reboot"
		if off {
			what = "poweroff"
		}
		say.Printf("%v: %s", sig, what)
		s.shutdown(off)
	}()

	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		say.Printf("kernel command line: %v; booting with the defaults", err)
	}
	s.cmdlineRaw = strings.TrimSpace(string(b))
	if s.cmdline, err = stage1.ParseCmdline(s.cmdlineRaw); err != nil {
		say.Printf("kernel command line: %v", err)
	}
	s.version = release().Version
	s.sup = supervise.New(supervise.Options{LogDir: contract.LogDir, LogMaxBytes: 1 << 20, LogKeep: 3,
		Backoff: supervise.Backoff{Min: time.Second, Max: time.Minute, Reset: 2 * time.Minute}, Grace: stopGrace, Start: s.start})

	results, err := boot.Sequence{Steps: s.steps()}.Run()
	s.mu.Lock()
	s.results = results
	s.mu.Unlock()
	if err != nil {
		p := boot.Policy{Debug: s.cmdline.Debug, Countdown: rebootCountdown, Sleep: time.Sleep,
			Reboot: func() error { s.shutdown(false); return nil },
			Shell:  func() error { return boot.ConsoleShell(reaper.Run) },
			Hang:   boot.Hang}
		p.Fail(err)
		boot.Hang()
	}
	s.mu.Lock()
	s.ready = true
	s.mu.Unlock()
	say.Mark(contract.MarkerReady, " (%d ms in stage 2, %d ms since kernel start; init %d ms without network/clock waits; rss %s)",
		time.Since(s.start).Milliseconds(), sinceKernelStart().Milliseconds(), ownTime(results).Milliseconds(), rss())
	// After the boot sequence, so that a trial's health gate sees its results.
	more, _ := boot.Sequence{Steps: s.updateSteps()}.Run()
	s.mu.Lock()
	s.results = append(s.results, more...)
	s.mu.Unlock()
	// The info screen is for the person at the console, not a log line: it
	// goes to the console only.
	show := func() string {
		host, _ := os.Hostname()
		_, err := os.Stat(boot.ShellPath)
		return infoScreen(s.status(), host, s.config(), err == nil)
	}
	fmt.Fprint(os.Stdout, show())
	go showInfoOnKey(os.Stdin, os.Stdout, show)
	boot.Hang()
}

// rss is PID 1's resident set size for the console, "12.3 MB".
func rss() string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	b, err := vmRSS(f)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%.1f MB", float64(b)/(1<<20))
}

func (s *system) apiFS() error {
	if err := mounts.Do("/", mounts.API()); err != nil {
		return err
	}
	return mounts.Finish()
}

// findData lists the block devices once for this step and the config
// step: the data partition and the boot partition.
func (s *system) findData() error {
	devs, err := blockdev.List("/sys")
	if err != nil {
		return fmt.Errorf("list block devices: %w", err)
	}
	found, err := blockdev.Find(devs, contract.PartData, contract.PartBoot)
	if err != nil {
		return err
	}
	d, ok := found[contract.PartData]
	if !ok {
		return fmt.Errorf("no partition labelled %s (PARTLABEL) in /sys/class/block", contract.PartData)
	}
	s.devs, s.boot, s.data = devs, found[contract.PartBoot], datapart.DeviceOf(d, "/dev")
	return nil
}

func (s *system) growPartition() error {
	msg, err := datapart.GrowPartition(s.data, contract.PartData)
	if err == nil {
		say.Printf("%s: %s", contract.PartData, msg)
	}
	return err
}

func (s *system) growFS() error {
	before, after, bs, err := datapart.GrowFS(s.data.Part, mounts.DataDir, s.cmdline.GrowSteps, func(blocks uint64) {
		say.Printf("data filesystem growing: %d blocks", blocks)
	})
	if err != nil {
		return err
	}
	s.dataB = after * uint64(bs)
	if before == after {
		say.Printf("data filesystem already fills %s (%d bytes)", s.data.Part, s.dataB)
	} else {
		say.Printf("data filesystem grown %d -> %d bytes", before*uint64(bs), s.dataB)
	}
	return nil
}

// initLog keeps PID 1's own lines (stage 1's too) on data, rotated like a
// service's log.
var initLog = contract.InitLog

// keepLog starts the kept log; the lines said so far are written first.
func keepLog() error {
	f, err := supervise.OpenRotating(initLog, 1<<20, 3)
	if err != nil {
		return err
	}
	return say.Keep(f)
}

func (s *system) machineID() error {
	id, created, err := identity.MachineID("/etc/machine-id")
	if err != nil {
		return err
	}
	s.id = id
	if created {
		say.Printf("new machine id %s", id)
	}
	return nil
}

func (s *system) network() error {
	wired, err := netup.Wired("/sys/class/net")
	if err != nil {
		return err
	}
	s.net.EtcDir = "/etc"
	return s.net.Up(s.ctx, s.config().Network, wired, dhcpTimeout)
}

func (s *system) clock() error {
	floor, ferr := clock.BuildEpoch(contract.ReleaseFile)
	if ferr == nil {
		if stepped, err := clock.Floor(floor); err != nil {
			return err
		} else if stepped {
			say.Printf("clock was before the image's build time; set to %s", floor.UTC().Format(time.RFC3339))
		}
	}
	r := s.net.Resolver()
	// The loop asks for the servers each round: a config reload that
	// changes them kicks it (s.ntpKick).
	lastNTP := "" // the discipline loop's last complaint, said once
	go clock.Discipline(s.ctx, r, func() []string { return ntpServers(s.config()) }, s.ntpKick,
		ntpInterval, ntpTimeout, floor, func(servers []string, off time.Duration, err error) {
			// Without DNS every round fails the same way: say it once, short.
			msg := ""
			switch {
			case err != nil && noDNS(servers, s.net.Nameservers()):
				msg = fmt.Sprintf("ntp %s: no DNS server on this network", strings.Join(servers, ", "))
			case err != nil:
				msg = fmt.Sprintf("ntp %v: %v", servers, err)
			}
			if msg != "" && msg != lastNTP {
				say.Printf("%s", msg)
			}
			lastNTP = msg
		})
	servers := ntpServers(s.config())
	if len(servers) == 0 {
		say.Printf("ntp disabled by the config")
		return ferr
	}
	if noDNS(servers, s.net.Nameservers()) {
		// One short line, not a resolver error per server.
		err := fmt.Errorf("no DNS server on this network: NTP %s cannot be resolved; clock at the build-epoch floor or later (%s)",
			strings.Join(servers, ", "), floor.UTC().Format(time.RFC3339))
		if ferr != nil {
			return fmt.Errorf("%w; and %v", err, ferr)
		}
		return err
	}
	off, err := clock.Sync(r, servers, ntpTimeout, floor)
	if err != nil {
		if ferr != nil {
			return fmt.Errorf("%w; and %w", err, ferr)
		}
		return fmt.Errorf("%w; clock left at the build-epoch floor or later (%s)", err, floor.UTC().Format(time.RFC3339))
	}
	say.Printf("clock corrected by %v", off)
	return nil
}

// noDNS reports whether no NTP server can be reached for want of DNS: every
// server is a name and the network gave no nameserver.
func noDNS(servers, nameservers []string) bool {
	if len(nameservers) > 0 {
		return false
	}
	for _, sv := range servers {
		if net.ParseIP(sv) != nil {
			return false
		}
	}
	return true
}

func (s *system) services() error {
	svcs, err := loadServices(contract.ServicesFile)
	if err != nil {
		return err
	}
	return s.sup.Start(svcs)
}

// orchestrator starts k3s when the image has it (contract.K3sBin).
func (s *system) orchestrator() error {
	if !k3s.Present("/") {
		say.Printf("no orchestrator in this image")
		return nil
	}
	n, err := k3s.Start(s.ctx, k3s.Options{Root: "/", Config: s.config(), Env: serviceEnv(nil), Sup: s.sup})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.k3s = n
	s.mu.Unlock()
	return nil
}

// Health is the orchestrator's health: the gate an update commits on.
func (s *system) Health() k3s.Health {
	s.mu.Lock()
	n := s.k3s
	s.mu.Unlock()
	return n.Health()
}

func (s *system) status() status.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := status.Status{Slot: string(s.cmdline.Slot), Version: s.version, Ready: s.ready,
		Steps: s.results, Services: s.sup.Status(), DataBytes: s.dataB, Addresses: s.net.Addrs, NetworkUnmatched: s.net.Unmatched,
		ConfigSources: s.cfg.Sources, ConfigUsedLastGood: s.cfg.UsedLastGood, Orchestrator: s.k3s.Health(), Verity: s.verity}
	if s.upd != nil {
		u := s.upd.Status()
		st.Update = &u
	}
	for _, e := range s.cfg.Errors {
		st.ConfigErrors = append(st.ConfigErrors, e.Error())
	}
	for _, w := range s.cfg.Warnings {
		st.ConfigWarnings = append(st.ConfigWarnings, w.Error())
	}
	for _, w := range s.cfg.Refused {
		st.ConfigRefused = append(st.ConfigRefused, w.Error())
	}
	var fs unix.Statfs_t
	if unix.Statfs(mounts.DataDir, &fs) == nil {
		st.DataBytes = fs.Blocks * uint64(fs.Bsize)
	}
	return st
}

// shutdown runs the shutdown sequence (reboot, or power off when off); once.
func (s *system) shutdown(off bool) {
	s.once.Do(func() { s.shutdownSequence(off).Run() })
	boot.Hang()
}

// shutdownSequence stops the services (in reverse start order), syncs,
// unmounts data and reboots or powers off. Every step but the last is
// optional: a failure is said and the machine still goes down.
func (s *system) shutdownSequence(off bool) boot.Sequence {
	cmd, what := unix.LINUX_REBOOT_CMD_RESTART, "reboot"
	if off {
		cmd, what = unix.LINUX_REBOOT_CMD_POWER_OFF, "poweroff"
	}
	return boot.Sequence{Name: "shutdown", Steps: []boot.Step{
		{Name: "stop-services", Run: func() error { s.sup.Stop(); return nil }},
		{Name: "sync", Run: func() error { unix.Sync(); return nil }},
		{Name: "unmount", Run: func() error {
			if err := say.Close(); err != nil { // the kept log is on data
				say.Printf("shutdown: %s: %v", initLog, err)
			}
			return mounts.Unmount()
		}},
		{Name: "watchdog", Run: func() error {
			if off { // an armed watchdog would restart a halted board
				return s.dog.Close()
			}
			return nil
		}},
		{Name: what, Essential: true, Run: func() error {
			unix.Sync()
			if !off && s.rebootArg != "" {
				say.Printf("%s now (%q)", what, s.rebootArg)
				return restart2(s.rebootArg)
			}
			say.Printf("%s now", what)
			return unix.Reboot(cmd)
		}},
	}}
}

// release reads contract.ReleaseFile; a root without one (or a broken
// one) is said and leaves the version empty.
func release() contract.Release {
	b, err := os.ReadFile(contract.ReleaseFile)
	if err != nil {
		say.Printf("%v", err)
		return contract.Release{}
	}
	rel, err := contract.ParseRelease(b)
	if err != nil {
		say.Printf("%v", err)
	}
	return rel
}

// restart2 reboots with an argument for the firmware (reboot(2)
// LINUX_REBOOT_CMD_RESTART2): the kernel hands it to its restart handlers.
func restart2(arg string) error {
	p, err := unix.BytePtrFromString(arg)
	if err != nil {
		return err
	}
	_, _, e := unix.Syscall6(unix.SYS_REBOOT, unix.LINUX_REBOOT_MAGIC1, unix.LINUX_REBOOT_MAGIC2, unix.LINUX_REBOOT_CMD_RESTART2, uintptr(unsafe.Pointer(p)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
