package stage2

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/bundle"
	"github.com/basaltos/basalt/contract/config"
	"github.com/basaltos/basalt/initsys/blockdev"
	"github.com/basaltos/basalt/initsys/datapart"
	"github.com/basaltos/basalt/initsys/devconfig"
	"github.com/basaltos/basalt/initsys/identity"
	"github.com/basaltos/basalt/initsys/mounts"
	"github.com/basaltos/basalt/initsys/say"
	"github.com/basaltos/basalt/initsys/sshd"
	"github.com/basaltos/basalt/initsys/status"
)

// Where stage 2 mounts the config sources (read-only, only while loading)
// and keeps the last good merged config (on data, 0600).
const (
	bootMount = "/run/basalt/boot"
	seedMount = "/run/basalt/seed"
)

var lastGood = filepath.Join(mounts.DataDir, "basalt", "config.last-good.yaml")

// loadConfig mounts the boot partition and a NoCloud seed read-only, loads
// and merges the device config, reports errors and warnings on the console
// and keeps the result for the other steps and for status. A source that
// cannot be read is reported, not fatal: the config is whatever was valid.
func (s *system) loadConfig() error {
	src := s.configSources()
	var problems []error
	if umount, err := mountBoot(s.boot); err != nil {
		problems = append(problems, err)
	} else {
		defer umount()
		src.BootDir = bootMount
	}
	if dev, fstype, err := mountSeed(s.devs, s.data); err != nil {
		problems = append(problems, err)
	} else if dev != "" {
		defer unix.Unmount(seedMount, 0)
		src.SeedDir = seedMount
		say.Printf("NoCloud seed %s (%s)", dev, fstype)
	}
	r, err := devconfig.Load(s.ctx, src)
	if rep := r.Report(); rep != "" {
		say.Printf("%s", rep)
	}
	if err != nil {
		problems = append(problems, err)
	}
	s.mu.Lock()
	s.cfg = r
	s.mu.Unlock()
	if r.Config == nil {
		r.Config = &config.Config{}
		s.cfg.Config = r.Config
	}
	say.Printf("config sources: %v", r.Sources)
	return errors.Join(problems...)
}

// configSources are the config sources but the mounted ones, with the
// trusted keys when the image says configTrust: signed.
func (s *system) configSources() devconfig.Sources {
	src := devconfig.Sources{Baked: contract.BakedConfig, Cmdline: s.cmdlineRaw, LastGood: lastGood}
	b, err := os.ReadFile(config.TrustKeysFile)
	if errors.Is(err, os.ErrNotExist) {
		return src // configTrust: any
	}
	src.Keys = []ed25519.PublicKey{} // signed, even when no key is usable: refuse all
	if err == nil {
		var keys []ed25519.PublicKey
		if keys, err = bundle.ParsePublicKeys(b); err == nil {
			src.Keys = keys
		}
	}
	if err != nil {
		say.Printf("config trust: %s: %v: every config source but the baked one is refused", config.TrustKeysFile, err)
	}
	return src
}

// mountBoot mounts the basalt-boot FAT partition read-only at bootMount.
func mountBoot(boot blockdev.Dev) (func(), error) {
	if boot.Name == "" {
		return nil, fmt.Errorf("no partition labelled %s (PARTLABEL) in /sys/class/block", contract.PartBoot)
	}
	dev := datapart.DeviceOf(boot, "/dev")
	if err := os.MkdirAll(bootMount, 0o755); err != nil {
		return nil, fmt.Errorf("mount boot partition: %w", err)
	}
	if err := unix.Mount(dev.Part, bootMount, "vfat", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return nil, fmt.Errorf("mount boot partition %s on %s: %w", dev.Part, bootMount, err)
	}
	return func() { unix.Unmount(bootMount, 0) }, nil
}

// mountSeed mounts the first NoCloud seed volume among devs read-only at
// seedMount; dev is "" when there is none. The disk holding the data
// partition and its partitions are basalt's own, not probed.
func mountSeed(devs []blockdev.Dev, data datapart.Device) (dev, fstype string, err error) {
	var paths []string
	for _, d := range devs {
		if p := d.Path("/dev"); p != data.Disk && filepath.Join("/dev", d.Disk) != data.Disk {
			paths = append(paths, p)
		}
	}
	if dev, fstype = devconfig.FindSeed(paths); dev == "" {
		return "", "", nil
	}
	if err := devconfig.MountSeed(dev, fstype, seedMount); err != nil {
		return "", "", err
	}
	return dev, fstype, nil
}

// applyConfig writes the config's files and users, and its timezone.
func (s *system) applyConfig() error {
	cfg := s.config()
	err := devconfig.Apply(context.Background(), cfg, devconfig.ApplyOptions{Root: "/", Chown: true})
	if cfg.Timezone != nil && *cfg.Timezone != "" {
		err = errors.Join(err, identity.Timezone("/etc", contract.ZoneInfoDir, *cfg.Timezone))
	}
	return err
}

// config returns the loaded config (empty before the config step).
func (s *system) config() *config.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.Config == nil {
		return &config.Config{}
	}
	return s.cfg.Config
}

// hostname is the configured hostname (or the FQDN's first label), else
// one derived from the machine id.
func (s *system) hostname() error {
	cfg, name := s.config(), ""
	if cfg.Hostname != nil {
		name = *cfg.Hostname
	} else if cfg.FQDN != nil {
		name, _, _ = strings.Cut(*cfg.FQDN, ".")
	}
	return identity.Apply("/etc", identity.Hostname(name, s.id))
}

// ntpServers are the configured servers and pools, defaultNTP when none;
// nil when NTP is disabled.
func ntpServers(cfg *config.Config) []string {
	if cfg.NTP == nil {
		return defaultNTP
	}
	if cfg.NTP.Enabled != nil && !*cfg.NTP.Enabled {
		return nil
	}
	out := append(append([]string{}, cfg.NTP.Servers...), cfg.NTP.Pools...)
	if len(out) == 0 {
		return defaultNTP
	}
	return out
}

// sshHostKey is the SSH server's host key, on data so it survives updates.
var sshHostKey = filepath.Join(mounts.DataDir, "basalt", "ssh_host_ed25519_key")

// startSSH starts the SSH server for the config's users with keys (nothing
// listens without keys) and the reload socket.
func (s *system) startSSH() error {
	srv, err := sshd.Start(sshd.Options{HostKey: sshHostKey}, sshd.Users(s.config()))
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.ssh = srv
	s.mu.Unlock()
	if a := srv.Addr(); a != nil {
		say.Printf("ssh listening on %s", a)
	}
	return status.ServeJSON(s.ctx, status.ReloadSocket, func() any { return s.reload() })
}

// reload re-reads the device config (basalt-init config reload); reloads
// are serialised by the socket's accept loop.
func (s *system) reload() devconfig.ReloadResult {
	o := devconfig.ReloadOptions{
		Sources:     s.configSources(),
		Apply:       devconfig.ApplyOptions{Root: "/", Chown: true},
		SetHostname: func(name string) error { return identity.Apply("/etc", identity.Hostname(name, s.id)) },
	}
	s.mu.Lock()
	o.SSH = s.ssh
	if n := s.k3s; n != nil {
		o.RestartOrchestrator = n.Restart
	}
	s.mu.Unlock()
	if umount, err := mountBoot(s.boot); err == nil {
		defer umount()
		o.Sources.BootDir = bootMount
	}
	// A seed may have been plugged in since boot: list again.
	devs, _ := blockdev.List("/sys")
	if dev, _, err := mountSeed(devs, s.data); err == nil && dev != "" {
		defer unix.Unmount(seedMount, 0)
		o.Sources.SeedDir = seedMount
	}
	r, err := devconfig.Reload(s.ctx, s.config(), o)
	if err != nil {
		r.Errors = append(r.Errors, err.Error())
	}
	if r.Config != nil {
		s.mu.Lock()
		s.cfg.Config, s.cfg.Sources = r.Config, r.Sources
		s.mu.Unlock()
	}
	if r.NTPChanged {
		select { // the clock discipline reads the new servers from s.config()
		case s.ntpKick <- struct{}{}:
		default: // a kick is pending already
		}
	}
	say.Printf("config reload:\n%s", r.Summary())
	return r
}
