package cache

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestProgress: a download's line shows bytes, total, rate and time left.
func TestProgressRateETA(t *testing.T) {
	var out bytes.Buffer
	t0 := time.Unix(1000, 0)
	now := t0
	p := &progress{w: &out, name: "linux.deb", total: 4 << 20, now: func() time.Time { return now }}
	p.Write(nil) // starts the clock
	now = t0.Add(time.Second)
	p.Write(make([]byte, 1<<20))
	got := out.String()
	for _, want := range []string{"linux.deb 1.0/4.0 MiB  25%", "1.0 MiB/s", "ETA 3s"} {
		if !strings.Contains(got, want) {
			t.Errorf("progress %q lacks %q", got, want)
		}
	}
}

func TestProgressName(t *testing.T) {
	for url, want := range map[string]string{
		"http://deb.debian.org/debian/dists/trixie/main/binary-amd64/by-hash/SHA256/be3d7d96": "trixie/main/binary-amd64 index",
		"http://deb.debian.org/debian/pool/main/t/tzdata/tzdata_2026f_all.deb":                "tzdata_2026f_all.deb",
	} {
		if got := progressName(url); got != want {
			t.Errorf("progressName(%s) = %q, want %q", url, got, want)
		}
	}
}
