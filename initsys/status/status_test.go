package status

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/basaltos/basalt/initsys/boot"
	"github.com/basaltos/basalt/initsys/supervise"
)

func TestServeQuery(t *testing.T) {
	want := Status{Slot: "a", Version: "1.2.3", Ready: true,
		Steps:     []boot.Result{{Name: "mount-data", Essential: true, Duration: 12 * time.Millisecond}},
		Services:  []supervise.State{{Name: "k3s", Restart: "always", Phase: "running", PID: 42, Since: time.Unix(1700000000, 0).UTC()}},
		DataBytes: 4 << 30}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := filepath.Join(t.TempDir(), "run", "init.sock")
	if err := Serve(ctx, p, func() Status { return want }); err != nil {
		t.Fatal(err)
	}
	got, err := Query(p)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
}
