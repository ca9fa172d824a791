// Package clock sets the system clock before the orchestrator starts: never
// earlier than the image's build time (BUILD_EPOCH= in contract.ReleaseFile),
// then from SNTP servers with a timeout, and keeps it disciplined (small
// offsets slewed with adjtimex, large ones stepped).
package clock

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/basaltos/basalt/contract"
)

// BuildEpoch reads the build epoch (Unix seconds) from a release file
// (contract.ReleaseFile).
func BuildEpoch(path string) (time.Time, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, fmt.Errorf("build epoch: %w", err)
	}
	rel, err := contract.ParseRelease(b)
	if err != nil {
		return time.Time{}, fmt.Errorf("build epoch: %w", err)
	}
	if rel.BuildEpoch == 0 {
		return time.Time{}, fmt.Errorf("build epoch: no %s= in %s", contract.ReleaseBuildEpoch, path)
	}
	return time.Unix(rel.BuildEpoch, 0), nil
}

// Floor steps the clock to floor when it is earlier; it reports whether it did.
func Floor(floor time.Time) (bool, error) {
	if !time.Now().Before(floor) {
		return false, nil
	}
	return true, step(floor)
}

func step(t time.Time) error {
	tv := unix.NsecToTimeval(t.UnixNano())
	if err := unix.Settimeofday(&tv); err != nil {
		return fmt.Errorf("set clock to %s: %w", t.UTC().Format(time.RFC3339), err)
	}
	return nil
}

// ntpEpochOffset is the seconds from 1900 (NTP) to 1970 (Unix).
const ntpEpochOffset = 2208988800

// Query asks one SNTP server (host or host:port) and returns the offset of
// its clock from ours. A host name is resolved with r (nil: the default
// resolver); PID 1 passes one that asks the servers the network step
// learned, so nothing depends on when /etc/resolv.conf was read.
func Query(ctx context.Context, r *net.Resolver, server string) (time.Duration, error) {
	host, port, err := net.SplitHostPort(server)
	if err != nil {
		host, port = server, "123"
	}
	if r == nil {
		r = net.DefaultResolver
	}
	ips, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return 0, fmt.Errorf("ntp %s: resolve: %w", server, err)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", net.JoinHostPort(ips[0].Unmap().String(), port))
	if err != nil {
		return 0, fmt.Errorf("ntp %s: %w", server, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	req := make([]byte, 48)
	req[0] = 0x23 // LI 0, version 4, mode 3 (client)
	t1 := time.Now()
	putNTP(req[40:], t1) // transmit timestamp, echoed as origin
	if _, err := c.Write(req); err != nil {
		return 0, fmt.Errorf("ntp %s: %w", server, err)
	}
	resp := make([]byte, 48)
	n, err := c.Read(resp)
	t4 := time.Now()
	if err != nil {
		return 0, fmt.Errorf("ntp %s: %w", server, err)
	}
	return offset(req, resp[:n], t1, t4)
}

// offset checks an SNTP reply and computes ((t2-t1)+(t3-t4))/2.
func offset(req, resp []byte, t1, t4 time.Time) (time.Duration, error) {
	if len(resp) < 48 {
		return 0, fmt.Errorf("ntp reply of %d bytes", len(resp))
	}
	if mode := resp[0] & 7; mode != 4 {
		return 0, fmt.Errorf("ntp reply mode %d", mode)
	}
	if resp[1] == 0 || resp[1] > 15 {
		return 0, fmt.Errorf("ntp server unsynchronised (stratum %d)", resp[1])
	}
	if string(resp[24:32]) != string(req[40:48]) {
		return 0, errors.New("ntp reply does not answer our request")
	}
	t2, t3 := getNTP(resp[32:]), getNTP(resp[40:])
	return (t2.Sub(t1) + t3.Sub(t4)) / 2, nil
}

func putNTP(b []byte, t time.Time) {
	binary.BigEndian.PutUint32(b, uint32(t.Unix()+ntpEpochOffset))
	binary.BigEndian.PutUint32(b[4:], uint32((uint64(t.Nanosecond())<<32)/1e9))
}

func getNTP(b []byte) time.Time {
	s := int64(binary.BigEndian.Uint32(b)) - ntpEpochOffset
	f := uint64(binary.BigEndian.Uint32(b[4:]))
	return time.Unix(s, int64((f*1e9)>>32))
}

// StepLimit is the offset above which the clock is stepped, not slewed.
const StepLimit = 500 * time.Millisecond

// Sync queries servers in order (names resolved with r) until one answers
// within timeout, then corrects the clock (never below floor). It returns
// the offset applied.
func Sync(r *net.Resolver, servers []string, timeout time.Duration, floor time.Time) (time.Duration, error) {
	var errs []error
	for _, s := range servers {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		off, err := Query(ctx, r, s)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if time.Now().Add(off).Before(floor) {
			return 0, fmt.Errorf("ntp %s says %s, before the image's build time: ignored", s, time.Now().Add(off).UTC().Format(time.RFC3339))
		}
		return off, adjust(off)
	}
	if len(errs) == 0 {
		return 0, errors.New("no NTP servers configured")
	}
	return 0, errors.Join(errs...)
}

func adjust(off time.Duration) error {
	if off > StepLimit || off < -StepLimit {
		return step(time.Now().Add(off))
	}
	tx := unix.Timex{Modes: unix.ADJ_OFFSET_SINGLESHOT}
	setLong(&tx.Offset, off.Microseconds()) // within StepLimit: fits a 32-bit long
	if _, err := unix.Adjtimex(&tx); err != nil {
		return fmt.Errorf("slew clock by %v: %w", off, err)
	}
	return nil
}

// setLong stores v in a C long field of a kernel struct, which is int32 on
// 32-bit architectures (armhf) and int64 elsewhere.
func setLong[T int32 | int64](field *T, v int64) { *field = T(v) }

// Discipline re-syncs every interval, and at once when kick fires, until
// ctx ends. It asks servers() for the servers each time, so a config
// reload reaches the running loop; no servers means no sync that round.
// Each sync's servers, offset and error go to report.
func Discipline(ctx context.Context, r *net.Resolver, servers func() []string, kick <-chan struct{}, interval, timeout time.Duration, floor time.Time, report func([]string, time.Duration, error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-kick:
		}
		if list := servers(); len(list) > 0 {
			off, err := syncClock(r, list, timeout, floor)
			report(list, off, err)
		}
	}
}

// syncClock is Sync; tests replace it so that they do not touch the clock.
var syncClock = Sync
