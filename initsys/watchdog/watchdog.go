// Package watchdog keeps the hardware watchdog (/dev/watchdog0) fed from
// PID 1. Boards without a bootloader counter (the Raspberry Pi's tryboot)
// rely on it: a trial boot whose kernel or init hangs is reset by the
// hardware and the firmware boots the committed slot.
//
// Opening the device arms the watchdog; Close disarms it with the magic
// close ("V"), which a power-off needs (an armed watchdog would restart a
// halted board). A reboot leaves it armed: the restart comes first.
package watchdog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Device is the first watchdog's device node.
const Device = "/dev/watchdog0"

// Timeout is asked of the driver; drivers clamp it (the BCM2835's
// maximum is about 15 s).
const Timeout = 15 * time.Second

// wdiocGetTimeout is WDIOC_GETTIMEOUT (_IOR('W', 7, int)).
const wdiocGetTimeout = 0x80045707

// Dog is an armed watchdog being fed.
type Dog struct {
	f       *os.File
	timeout time.Duration
	stop    chan struct{}
	done    sync.WaitGroup
}

// Open arms the watchdog at path and feeds it every third of its timeout
// until Close. A missing device is (nil, nil): the board has none.
func Open(path string) (*Dog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENODEV) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("watchdog %s: %w", path, err)
	}
	d := &Dog{f: f, timeout: Timeout, stop: make(chan struct{})}
	unix.IoctlSetPointerInt(int(f.Fd()), unix.WDIOC_SETTIMEOUT, int(Timeout/time.Second))
	if secs, err := unix.IoctlGetInt(int(f.Fd()), wdiocGetTimeout); err == nil && secs > 0 {
		d.timeout = time.Duration(secs) * time.Second // as the driver clamped it
	}
	d.done.Add(1)
	go d.feed()
	return d, nil
}

// Timeout is the watchdog's timeout as the driver set it.
func (d *Dog) Timeout() time.Duration { return d.timeout }

func (d *Dog) feed() {
	defer d.done.Done()
	t := time.NewTicker(d.timeout / 3)
	defer t.Stop()
	for {
		d.f.Write([]byte{0}) // any write is a keepalive
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
	}
}

// Close stops feeding and disarms the watchdog (magic close). Safe on nil.
func (d *Dog) Close() error {
	if d == nil {
		return nil
	}
	close(d.stop)
	d.done.Wait()
	if _, err := d.f.Write([]byte("V")); err != nil {
		d.f.Close()
		return fmt.Errorf("watchdog: magic close: %w", err)
	}
	return d.f.Close()
}
