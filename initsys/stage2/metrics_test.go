package stage2

import (
	"strings"
	"testing"
	"time"

	"github.com/basaltos/basalt/initsys/boot"
)

func TestOwnTime(t *testing.T) {
	rs := []boot.Result{{Name: "api-filesystems", Duration: 50 * time.Millisecond}, {Name: "network", Duration: 3 * time.Second},
		{Name: "clock", Duration: 3 * time.Second}, {Name: "services", Duration: 40 * time.Millisecond}}
	if got := ownTime(rs); got != 90*time.Millisecond {
		t.Errorf("ownTime = %v, want 90ms", got)
	}
}

func TestVmRSS(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		err  bool
	}{
		{"Name:\tbasalt-init\nVmPeak:\t 1 kB\nVmRSS:\t    9876 kB\nRssAnon: 1 kB\n", 9876 << 10, false},
		{"Name:\tx\n", 0, true},
		{"VmRSS:\t12 MB\n", 0, true},
	}
	for _, tc := range tests {
		got, err := vmRSS(strings.NewReader(tc.in))
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("vmRSS(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}
