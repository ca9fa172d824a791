package watchdog

import (
	"os"
	"path/filepath"
	"testing"
)

// A file stands in for the device: Open feeds it at once, Close ends with
// the magic "V"; a missing device is no watchdog.
func TestFeedAndMagicClose(t *testing.T) {
	p := filepath.Join(t.TempDir(), "watchdog0")
	os.WriteFile(p, nil, 0o644)
	d, err := Open(p)
	if err != nil || d == nil {
		t.Fatalf("Open = %v, %v", d, err)
	}
	if d.Timeout() != Timeout {
		t.Errorf("timeout %s, want the default %s (a file answers no ioctl)", d.Timeout(), Timeout)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "\x00V" {
		t.Errorf("device got %q, want a keepalive then the magic close", b)
	}
	if d, err := Open(filepath.Join(t.TempDir(), "none")); d != nil || err != nil {
		t.Errorf("missing device: %v, %v", d, err)
	}
	var none *Dog
	if err := none.Close(); err != nil {
		t.Error(err)
	}
}
