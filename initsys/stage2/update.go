package stage2

import (
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/ab"
	"github.com/basaltos/basalt/contract/bundle"
	"github.com/basaltos/basalt/initsys/blockdev"
	"github.com/basaltos/basalt/initsys/boot"
	"github.com/basaltos/basalt/initsys/datapart"
	"github.com/basaltos/basalt/initsys/say"
	"github.com/basaltos/basalt/initsys/status"
	"github.com/basaltos/basalt/initsys/update"
)

// bootRWMount is where the updater mounts the boot partition read-write,
// only while it writes (a FAT left mounted is a FAT left dirty at a power cut).
const bootRWMount = "/run/basalt/boot-rw"

// defaultHealthTimeout bounds a trial boot's health gate unless the config
// says update.health_timeout.
const defaultHealthTimeout = 10 * time.Minute

// updateSteps run after the boot sequence: the updater looks at the A/B
// state (commit a trial when healthy, report a rollback), takes apply
// requests and polls the channel.
func (s *system) updateSteps() []boot.Step {
	return []boot.Step{
		{Name: "update-state", Essential: false, Run: s.startUpdate},
	}
}

func (s *system) startUpdate() error {
	rel := releaseKeys(release())
	if rel[ab.ReleaseKey] == "" {
		say.Printf("update: %s names no A/B mechanism (%s=): updates off", contract.ReleaseFile, ab.ReleaseKey)
		return nil
	}
	keys, err := update.LoadKeys(bundle.KeysFile)
	if err != nil {
		say.Printf("update: %s: %v (no update can be verified)", bundle.KeysFile, err)
	}
	found, err := blockdev.Find(s.devs, contract.PartRootA, contract.PartRootB)
	if err != nil {
		return err
	}
	roots := map[contract.Slot]string{}
	for _, sl := range []contract.Slot{contract.SlotA, contract.SlotB} {
		if d, ok := found[sl.PartLabel()]; ok {
			roots[sl] = d.Path("/dev")
		}
	}
	var mu sync.Mutex // one rw mount at a time
	u, err := update.New(update.Device{
		Release: rel, Booted: s.cmdline.Slot, RootDev: roots, Keys: keys,
		StateFile: update.StateFile, BootCountPath: update.BootCountPath,
		MountBoot: func() (string, func() error, error) {
			mu.Lock()
			dev := datapart.DeviceOf(s.boot, "/dev").Part
			if err := os.MkdirAll(bootRWMount, 0o755); err != nil {
				mu.Unlock()
				return "", nil, err
			}
			if err := unix.Mount(dev, bootRWMount, "vfat", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_NOATIME, "flush"); err != nil {
				mu.Unlock()
				return "", nil, fmt.Errorf("mount %s on %s: %w", dev, bootRWMount, err)
			}
			return bootRWMount, func() error {
				defer mu.Unlock()
				unix.Sync()
				return unix.Unmount(bootRWMount, 0)
			}, nil
		},
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.upd = u
	s.mu.Unlock()
	reboot := func() { s.shutdown(false) }
	// After arming, a mechanism may need a special reboot (Pi tryboot:
	// RESTART2 "0 tryboot"); a failed trial's reboot is a plain one.
	rebootArmed := reboot
	if m, err := ab.For(rel[ab.ReleaseKey]); err == nil {
		if r, ok := m.(ab.Rebooter); ok {
			rebootArmed = func() { s.rebootArg = r.RebootArg(); s.shutdown(false) }
		}
	}
	ch := func() update.Channel { return update.ChannelOf(s.config().Update) }
	if err := u.Serve(s.ctx, update.Socket, func() update.Options { return ch().Options }, rebootArmed); err != nil {
		return err
	}
	timeout := defaultHealthTimeout
	if c := s.config().Update; c != nil && c.HealthTimeout != nil {
		if d, err := time.ParseDuration(*c.HealthTimeout); err == nil {
			timeout = d
		}
	}
	if err := u.AfterBoot(s.ctx, s.healthGate, update.GateOptions{Timeout: timeout, Poll: 3 * time.Second}, reboot); err != nil {
		return err
	}
	if c := s.config().Update; c != nil && c.Push != nil {
		if err := u.ServePush(s.ctx, *c.Push, func() update.Options { return ch().Options }, reboot); err != nil {
			return err
		}
	}
	go u.Pull(s.ctx, ch, reboot)
	return nil
}

// healthGate is what a trial boot commits on: the root is mounted (stage 2
// runs from it) and not found corrupt by dm-verity, the config applied without errors, every service up
// without restarts, and the orchestrator healthy (or absent).
func (s *system) healthGate() (bool, string) {
	s.mu.Lock()
	results, cfgErrs, verity := s.results, len(s.cfg.Errors), s.verity
	s.mu.Unlock()
	if verity.State == status.VerityCorrupt {
		return false, "the root is corrupt (dm-verity refused a block): " + verity.Detail
	}
	for _, r := range results {
		if r.Name == "config-apply" && r.Err != "" {
			return false, "config not applied: " + r.Err
		}
	}
	if cfgErrs > 0 {
		return false, fmt.Sprintf("the device config has %d errors", cfgErrs)
	}
	for _, v := range s.sup.Status() {
		switch {
		case v.Restarts > 0 || v.Phase == "failed" || v.Phase == "backoff":
			return false, fmt.Sprintf("service %s is %s after %d restarts (last exit: %s)", v.Name, v.Phase, v.Restarts, v.LastExit)
		case v.Phase == "starting":
			return false, fmt.Sprintf("service %s is still starting", v.Name)
		}
	}
	if h := s.Health(); !h.OK() {
		return false, "orchestrator " + h.String()
	}
	return true, ""
}

// releaseKeys are the release file's keys the updater reads.
func releaseKeys(r contract.Release) map[string]string {
	return map[string]string{contract.ReleaseVersion: r.Version, contract.ReleaseBoard: r.Board,
		ab.ReleaseKey: r.Get(ab.ReleaseKey), bundle.CompatKey: r.Get(bundle.CompatKey)}
}
