package update

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/ab"
	"github.com/basaltos/basalt/contract/bundle"
	"github.com/basaltos/basalt/initsys/boot"
)

// Options of one apply.
type Options struct {
	// AllowDowngrade is the device config's update.allow_downgrade; a lower
	// version also needs the bundle's allow_downgrade.
	AllowDowngrade bool
	// Tries is how often the bootloader tries the new slot (0: ab.DefaultTries).
	Tries int
	// SkipVersion is refused (the channel's failed version); "" for none.
	SkipVersion string
}

// ErrRefused marks a bundle refused before anything was written.
var ErrRefused = errors.New("refused")

func refusef(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, a...))
}

// check decides whether m may be installed on this device, before any write.
// uki says whether the running slot boots a signed UKI (Secure Boot).
func (u *Updater) check(m bundle.Manifest, o Options, rootSize int64, st ab.State, uki bool) error {
	rel := u.d.Release
	if m.Board != rel["BOARD"] {
		return refusef("bundle is for board %s, this device is %s", m.Board, rel["BOARD"])
	}
	if want := rel[bundle.CompatKey]; m.Compat != want {
		return refusef("bundle compat %q, this device accepts %q", m.Compat, want)
	}
	c, err := bundle.CompareVersions(m.Version, rel["VERSION"])
	if err != nil {
		return refusef("%v", err)
	}
	switch {
	case c == 0:
		return refusef("version %s is the running version", m.Version)
	case c < 0 && !(m.AllowDowngrade && o.AllowDowngrade):
		return refusef("version %s is lower than the running %s (a downgrade needs allow_downgrade in both the bundle and the device config)", m.Version, rel["VERSION"])
	}
	if o.SkipVersion != "" && m.Version == o.SkipVersion {
		return refusef("version %s rolled back before; not retrying it by itself (apply it by hand to try again)", m.Version)
	}
	if st.OnTrial {
		return refusef("slot %s is on trial: it commits or rolls back first", u.d.Booted)
	}
	if st.Committed != u.d.Booted {
		return refusef("the running slot %s is not the committed slot (%s)", u.d.Booted, st)
	}
	switch {
	case uki && !m.UKI():
		return refusef("slot %s boots a signed UKI (Secure Boot): the bundle carries a kernel and initrd, which the firmware would refuse", u.d.Booted)
	case m.UKI() && rel[ab.ReleaseKey] != ab.BLSName:
		return refusef("the bundle boots a UKI (Secure Boot), which A/B mechanism %s cannot", rel[ab.ReleaseKey])
	}
	p, _ := m.Payload(bundle.RootFS)
	if p.Size > rootSize {
		return refusef("rootfs of %d bytes does not fit slot %s (%d bytes)", p.Size, u.d.Booted.Other(), rootSize)
	}
	return nil
}

// Apply installs the bundle at src (a file or an http(s) URL) into the
// other slot and arms a trial boot of it, in one streaming pass over the
// bundle (one download): the signed head (manifest and signature) is
// checked before any write, then the rootfs streams into the slot while
// it is hashed, then the boot files. It returns the manifest.
func (u *Updater) Apply(ctx context.Context, src string, o Options) (bundle.Manifest, error) {
	u.op.Lock()
	defer u.op.Unlock()
	target := u.d.Booted.Other()
	var (
		m  bundle.Manifest
		r  *bundle.Reader
		rc io.ReadCloser
	)
	defer func() {
		if rc != nil {
			rc.Close()
		}
	}()
	if len(u.d.Keys) == 0 {
		err := refusef("this image trusts no update key (spec update.publicKey)")
		u.setPhase(Failed, "", "", err.Error())
		return m, err
	}
	steps := []boot.Step{
		{Name: "verify", Essential: true, Run: func() error {
			// Reads only the bundle's head: no payload byte before the
			// signature, board, compat, version and fit are checked.
			u.setPhase(Verifying, "", target, "")
			var size int64
			var err error
			if rc, size, err = openSource(ctx, src); err != nil {
				return err
			}
			pr := &progress{r: rc, total: size, report: u.progress}
			if r, err = bundle.Open(pr, u.d.Keys); err != nil {
				return refusef("%v", err)
			}
			m = r.Manifest()
			var st ab.State
			var uki bool
			if err := u.withBoot(func(d ab.Dir) (err error) {
				names, _ := d.Names(contract.SlotDir(u.d.Booted))
				uki = slices.Contains(names, contract.UKIFile)
				st, err = u.mech.State(d, u.env())
				return err
			}); err != nil {
				return err
			}
			devSize, err := deviceSize(u.d.RootDev[target])
			if err != nil {
				return err
			}
			if err := u.check(m, o, devSize, st, uki); err != nil {
				return err
			}
			u.logf("applying %s %s into slot %s", m.Image, m.Version, target)
			return nil
		}},
		{Name: "disarm", Essential: true, Run: func() error {
			// From here on the other slot is not bootable by default until
			// armed. With no entry or trial of it (a fresh image, a
			// failed apply) the boot partition is not written.
			return u.withBoot(func(d ab.Dir) error {
				if err := u.mech.Disarm(d, target); err != nil {
					return err
				}
				return d.Remove(contract.SlotDir(target) + "/" + contract.BootVersionFile)
			})
		}},
		{Name: "write-root", Essential: true, Run: func() error {
			u.setPhase(Downloading, m.Version, target, "")
			p, pr, err := r.Next()
			if err != nil {
				return payloadErr(err)
			}
			if p.Name != bundle.RootFS {
				return fmt.Errorf("first payload %s, want %s", p.Name, bundle.RootFS)
			}
			return payloadErr(writeDevice(u.d.RootDev[target], pr))
		}},
		{Name: "write-boot", Essential: true, Run: func() error {
			return u.withBoot(func(d ab.Dir) error {
				// Each payload goes to NAME.new first; only when all of them
				// hashed right do they replace the slot's boot files, so a
				// bad one leaves every boot file as it was.
				sd := contract.SlotDir(target)
				var names []string
				staged := func(err error) error {
					for _, n := range names {
						d.Remove(n + stagedSuffix)
					}
					return err
				}
				for {
					p, pr, err := r.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						return staged(payloadErr(err))
					}
					name := sd + "/" + contract.KernelFile
					switch p.Kind {
					case bundle.Initrd:
						name = sd + "/" + contract.InitrdFile
					case bundle.DTB:
						name = sd + "/" + contract.DTBDir + "/" + path.Clean(strings.TrimPrefix(p.Name, bundle.DTBPrefix))
					case bundle.UKI:
						// Secure Boot: one signed UKI per slot (its signed
						// command line names the slot); the target's one is
						// the slot's uki.efi, the other is only hashed.
						if p.Name != bundle.UKIName(target) {
							if _, err := io.Copy(io.Discard, pr); err != nil {
								return staged(payloadErr(err))
							}
							continue
						}
						name = sd + "/" + contract.UKIFile
					case bundle.RootFS:
						return staged(fmt.Errorf("a second %s payload", bundle.RootFS))
					}
					if err := d.WriteFrom(name+stagedSuffix, pr); err != nil {
						return staged(payloadErr(fmt.Errorf("%s: %w", name, err)))
					}
					if p.Kind != bundle.DTB {
						u.logf("wrote %s (%d bytes)", name+stagedSuffix, p.Size)
					}
					names = append(names, name)
				}
				for _, name := range names {
					if err := d.Rename(name+stagedSuffix, name); err != nil {
						return err
					}
				}
				return d.WriteFile(sd+"/"+contract.BootVersionFile, []byte(m.Version+"\n"))
			})
		}},
		{Name: "arm", Essential: true, Run: func() error {
			tries := o.Tries
			if tries <= 0 {
				tries = ab.DefaultTries
			}
			e := ab.Entry{Slot: target, Title: m.Image + " " + m.Version, Version: m.Version, Cmdline: m.Cmdline, UKI: m.UKI()}
			if p, _ := m.Payload(bundle.RootFS); p.Verity != nil {
				// The new root is mounted under dm-verity with its signed root hash.
				e.Args = p.Verity.CmdlineArgs()
			}
			if err := u.withBoot(func(d ab.Dir) error { return u.mech.Arm(d, e, tries) }); err != nil {
				return err
			}
			u.set(func(rec *record) { rec.TrialVersion, rec.TrialReason = m.Version, "" }, false)
			u.setPhase(Written, m.Version, target, fmt.Sprintf("armed for %d trial boots: reboot to try it", tries))
			u.logf("slot %s armed for trial: %s %s, %d tries", target, m.Image, m.Version, tries)
			return nil
		}},
	}
	_, err := boot.Sequence{Name: "update", Steps: steps}.Run()
	if err != nil {
		var se *boot.StepError
		if errors.As(err, &se) {
			err = se.Err
		}
		if errors.Is(err, ErrRefused) {
			u.logf("%v", err)
		} else {
			u.logf("apply failed: %v", err)
		}
		u.setPhase(Failed, m.Version, target, err.Error())
		u.Refresh() // a slot disarmed before its write failed shows so
		return m, err
	}
	u.Refresh()
	return m, nil
}

// stagedSuffix names a boot file written but not yet in place.
const stagedSuffix = ".new"

// payloadErr makes a payload that does not match the signed manifest a
// refusal: the slot it was streamed into stays unarmed.
func payloadErr(err error) error {
	if errors.Is(err, bundle.ErrHash) {
		return fmt.Errorf("%w: %w (the slot stays unarmed)", ErrRefused, err)
	}
	return err
}

// deviceSize is the size of a block device (or file) by seeking to its end.
func deviceSize(dev string) (int64, error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Seek(0, io.SeekEnd)
}

// writeDevice streams r onto the device from offset 0 and syncs it. r is a
// verifying payload reader: its error at the end fails the write. Reading
// (download, tar, sha256) and writing overlap: a goroutine fills buffers
// while the previous one is written. Writeback of each chunk starts as soon
// as it is written and the writer then waits for the chunk before it
// (sync_file_range), so the device writes while the next chunk downloads
// and hashes, the final fsync has little left, and at most two chunks are
// dirty in the page cache (a device with little RAM does not fill it with
// a slot's worth of dirty pages and stall on writeback at the end).
func writeDevice(dev string, r io.Reader) error {
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	type chunk struct {
		b   []byte
		err error
	}
	const bufs, size = 3, 4 << 20
	free, full := make(chan []byte, bufs), make(chan chunk, bufs)
	for range bufs {
		free <- make([]byte, size)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			var b []byte
			select {
			case b = <-free:
			case <-done:
				return
			}
			n, err := io.ReadFull(r, b)
			if err == io.ErrUnexpectedEOF || err == io.EOF {
				// The end: read once more so a verifying reader reports.
				if _, err2 := r.Read(nil); err2 != nil && err2 != io.EOF {
					err = err2
				} else if n > 0 || err == io.EOF {
					err = io.EOF
				}
			}
			select {
			case full <- chunk{b[:n], err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	fail := func(format string, err error) error {
		f.Close()
		return fmt.Errorf(format, dev, err)
	}
	fd := int(f.Fd())
	var off, prev int64
	flush := true // until sync_file_range is refused (not every file system has it)
	for {
		c := <-full
		if len(c.b) > 0 {
			if _, err := f.Write(c.b); err != nil {
				return fail("write %s: %w", err)
			}
			if flush {
				err := unix.SyncFileRange(fd, off, int64(len(c.b)), unix.SYNC_FILE_RANGE_WRITE)
				if err == nil && off > 0 {
					err = unix.SyncFileRange(fd, prev, off-prev, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
				}
				if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ESPIPE) {
					flush = false
				} else if err != nil {
					return fail("write %s: %w", err)
				}
			}
			prev, off = off, off+int64(len(c.b))
		}
		if c.err == io.EOF {
			break
		}
		if c.err != nil {
			return fail("write %s: %w", c.err)
		}
		free <- c.b[:cap(c.b)]
	}
	if err := f.Sync(); err != nil {
		return fail("sync %s: %w", err)
	}
	return f.Close()
}

// progress puts the share of the bundle read so far in the status; the
// console gets a line every 10% (power-cut tests cut at them).
func (u *Updater) progress(pct int) {
	u.set(func(rec *record) { rec.Status.Percent = pct }, false)
	if pct%10 == 0 && pct < 100 {
		u.logf("downloading %d%%", pct)
	}
}

// progress counts bytes read and reports each whole percent it passes.
type progress struct {
	r      io.Reader
	total  int64
	n      int64
	last   int
	report func(int)
}

func (p *progress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.total > 0 {
		for pct := int(p.n * 100 / p.total); p.last < pct; {
			p.last++
			p.report(p.last)
		}
	}
	return n, err
}
