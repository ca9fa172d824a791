package update

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

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
func (u *Updater) check(m bundle.Manifest, o Options, rootSize int64, st ab.State) error {
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
	p, _ := m.Payload(bundle.RootFS)
	if p.Size > rootSize {
		return refusef("rootfs of %d bytes does not fit slot %s (%d bytes)", p.Size, u.d.Booted.Other(), rootSize)
	}
	return nil
}

// Apply installs the bundle at src (a file or an http(s) URL) into the
// other slot and arms a trial boot of it. It returns the manifest.
func (u *Updater) Apply(ctx context.Context, src string, o Options) (bundle.Manifest, error) {
	u.op.Lock()
	defer u.op.Unlock()
	target := u.d.Booted.Other()
	var (
		m      bundle.Manifest
		raw    []byte
		r      *bundle.Reader
		closer io.Closer
	)
	defer func() {
		if closer != nil {
			closer.Close()
		}
	}()
	if len(u.d.Keys) == 0 {
		err := refusef("this image trusts no update key (spec update.publicKey)")
		u.setPhase(Failed, "", "", err.Error())
		return m, err
	}
	// open starts one streaming pass over the bundle.
	open := func(phase Phase) (*bundle.Reader, error) {
		if closer != nil {
			closer.Close()
		}
		rc, size, err := openSource(ctx, src)
		if err != nil {
			return nil, err
		}
		closer = rc
		pr := &progress{r: rc, total: size, report: func(pct int) {
			u.set(func(rec *record) { rec.Status.Phase, rec.Status.Percent = phase, pct }, false)
			if pct%25 == 0 {
				u.logf("%s %d%%", phase, pct)
			}
		}}
		return bundle.Open(pr, u.d.Keys)
	}
	steps := []boot.Step{
		{Name: "verify", Essential: true, Run: func() error {
			u.setPhase(Verifying, "", target, "")
			var err error
			if r, err = open(Verifying); err != nil {
				return refusef("%v", err)
			}
			m, raw = r.Manifest(), r.RawManifest()
			var st ab.State
			if err := u.withBoot(func(d ab.Dir) (err error) { st, err = u.mech.State(d, u.env()); return err }); err != nil {
				return err
			}
			size, err := deviceSize(u.d.RootDev[target])
			if err != nil {
				return err
			}
			if err := u.check(m, o, size, st); err != nil {
				return err
			}
			u.logf("applying %s %s into slot %s", m.Image, m.Version, target)
			for {
				_, pr, err := r.Next()
				if err == io.EOF {
					return nil
				}
				if err == nil {
					_, err = io.Copy(io.Discard, pr)
				}
				if err != nil {
					return refusef("%v", err)
				}
			}
		}},
		{Name: "disarm", Essential: true, Run: func() error {
			// From here on the other slot is not bootable by default until armed.
			return u.withBoot(func(d ab.Dir) error {
				if err := u.mech.Disarm(d, target); err != nil {
					return err
				}
				return d.Remove(contract.SlotDir(target) + "/" + contract.BootVersionFile)
			})
		}},
		{Name: "write-root", Essential: true, Run: func() error {
			u.setPhase(Downloading, m.Version, target, "")
			var err error
			if r, err = open(Downloading); err != nil {
				return err
			}
			if !bytes.Equal(r.RawManifest(), raw) {
				return errors.New("the bundle changed between the verifying and the writing pass")
			}
			p, pr, err := r.Next()
			if err != nil {
				return err
			}
			if p.Name != bundle.RootFS {
				return fmt.Errorf("first payload %s, want %s", p.Name, bundle.RootFS)
			}
			return writeDevice(u.d.RootDev[target], pr)
		}},
		{Name: "write-boot", Essential: true, Run: func() error {
			return u.withBoot(func(d ab.Dir) error {
				sd := contract.SlotDir(target)
				for {
					p, pr, err := r.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						return err
					}
					name := sd + "/" + contract.KernelFile
					switch p.Kind {
					case bundle.Initrd:
						name = sd + "/" + contract.InitrdFile
					case bundle.DTB:
						name = sd + "/" + contract.DTBDir + "/" + path.Clean(strings.TrimPrefix(p.Name, bundle.DTBPrefix))
					case bundle.RootFS:
						return fmt.Errorf("a second %s payload", bundle.RootFS)
					}
					if err := d.WriteFrom(name, pr); err != nil {
						return fmt.Errorf("%s: %w", name, err)
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
			e := ab.Entry{Slot: target, Title: m.Image + " " + m.Version, Version: m.Version, Cmdline: m.Cmdline}
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
		return m, err
	}
	u.Refresh()
	return m, nil
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
// (tar, sha256) and writing overlap: a goroutine fills buffers while the
// previous one is written.
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
	for {
		c := <-full
		if len(c.b) > 0 {
			if _, err := f.Write(c.b); err != nil {
				f.Close()
				return fmt.Errorf("write %s: %w", dev, err)
			}
		}
		if c.err == io.EOF {
			break
		}
		if c.err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", dev, c.err)
		}
		free <- c.b[:cap(c.b)]
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", dev, err)
	}
	return f.Close()
}

// onlyWriter hides os.File's ReadFrom, so CopyBuffer uses the big buffer.
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(b []byte) (int, error) { return o.w.Write(b) }

// progress counts bytes read and reports whole percents.
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
		if pct := int(p.n * 100 / p.total); pct != p.last {
			p.last = pct
			p.report(pct)
		}
	}
	return n, err
}
