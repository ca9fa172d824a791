package stage2

import "testing"

// TestNoDNS: the clock step's one-line reason applies only when every NTP
// server is a name and the network gave no nameserver.
func TestNoDNS(t *testing.T) {
	for _, tc := range []struct {
		servers, ns []string
		want        bool
	}{
		{[]string{"pool.ntp.org"}, nil, true},
		{[]string{"pool.ntp.org", "192.0.2.1"}, nil, false},
		{[]string{"pool.ntp.org"}, []string{"10.0.2.3"}, false},
	} {
		if got := noDNS(tc.servers, tc.ns); got != tc.want {
			t.Errorf("noDNS(%v, %v) = %v, want %v", tc.servers, tc.ns, got, tc.want)
		}
	}
}
