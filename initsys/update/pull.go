package update

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/basaltos/basalt/contract/bundle"
	"github.com/basaltos/basalt/contract/config"
)

// Channel is the pull channel's settings (from the device config).
type Channel struct {
	URL      string
	Interval time.Duration
	Jitter   time.Duration
	Window   *config.Window
	Options  Options
}

// ChannelOf reads the channel settings of a device config ("" URL: none).
func ChannelOf(u *config.Update) Channel {
	c := Channel{Interval: 6 * time.Hour}
	if u == nil {
		return c
	}
	if u.Channel != nil {
		c.URL = strings.TrimRight(*u.Channel, "/")
	}
	if u.Interval != nil {
		if d, err := time.ParseDuration(*u.Interval); err == nil {
			c.Interval = d
		}
	}
	if u.Jitter != nil {
		c.Jitter, _ = time.ParseDuration(*u.Jitter)
	}
	c.Window = u.Window
	if u.AllowDowngrade != nil {
		c.Options.AllowDowngrade = *u.AllowDowngrade
	}
	if u.Tries != nil {
		c.Options.Tries = *u.Tries
	}
	return c
}

// InWindow reports whether t is inside the maintenance window (nil: always).
func InWindow(w *config.Window, t time.Time) bool {
	if w == nil {
		return true
	}
	var h, m int
	if _, err := fmt.Sscanf(w.Start, "%d:%d", &h, &m); err != nil {
		return true
	}
	d, err := time.ParseDuration(w.Duration)
	if err != nil {
		return true
	}
	// The window may have started yesterday and still run.
	for _, day := range []int{0, -1} {
		start := time.Date(t.Year(), t.Month(), t.Day()+day, h, m, 0, 0, t.Location())
		if !t.Before(start) && t.Before(start.Add(d)) && dayOK(w.Days, start.Weekday()) {
			return true
		}
	}
	return false
}

func dayOK(days []string, wd time.Weekday) bool {
	if len(days) == 0 {
		return true
	}
	name := strings.ToLower(wd.String()[:3])
	for _, d := range days {
		if d == name {
			return true
		}
	}
	return false
}

// Pull polls the channel until ctx ends: at start and every interval (plus
// a random jitter), inside the window, it applies a newer bundle for this
// board and compat, then reboots to try it.
func (u *Updater) Pull(ctx context.Context, ch func() Channel, reboot func()) {
	for first := true; ; first = false {
		c := ch()
		wait := c.Interval
		if first {
			wait = 0
		}
		if c.Jitter > 0 {
			wait += rand.N(c.Jitter)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		c = ch()
		if c.URL == "" || !InWindow(c.Window, time.Now()) {
			continue
		}
		if ok, err := u.CheckChannel(ctx, c); err != nil {
			u.logf("channel %s: %v", c.URL, err)
		} else if ok {
			u.logf("rebooting to try the update")
			reboot()
			return
		}
	}
}

// CheckChannel reads the channel's index and applies a newer bundle; it
// reports whether one was armed.
func (u *Updater) CheckChannel(ctx context.Context, c Channel) (bool, error) {
	st := u.Status()
	if st.Phase == Trial || st.Phase == Written {
		return false, nil // a trial is pending: one update at a time
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/"+bundle.IndexName, nil)
	if err != nil {
		return false, err
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("GET %s: %s", req.URL, resp.Status)
	}
	var ix bundle.Index
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 1<<20)).Decode(&ix); err != nil {
		return false, fmt.Errorf("%s: %w", req.URL, err)
	}
	e, ok := ix.Find(u.d.Release["BOARD"], u.d.Release[bundle.CompatKey])
	if !ok {
		return false, nil
	}
	cmp, err := bundle.CompareVersions(e.Version, u.d.Release["VERSION"])
	if err != nil || cmp == 0 || (cmp < 0 && !c.Options.AllowDowngrade) {
		return false, err
	}
	if e.Version == st.FailedVersion {
		return false, nil // rolled back before: not by itself
	}
	if strings.Contains(e.File, "/") || strings.Contains(e.File, "..") {
		return false, fmt.Errorf("index names file %q: want a name in the channel", e.File)
	}
	o := c.Options
	o.SkipVersion = st.FailedVersion
	u.logf("channel offers %s %s", e.Image, e.Version)
	if _, err := u.Apply(ctx, c.URL+"/"+e.File, o); err != nil {
		return false, err
	}
	return true, nil
}
