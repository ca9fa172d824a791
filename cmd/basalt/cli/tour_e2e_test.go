//go:build e2e

package cli

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/internal/testutil"
)

// TestE2EReadmeTour runs every basalt command of README.md's sh blocks, in
// order, as a user would type it, with the basalt binary built from this
// tree. The Debian inputs were fetched online by `make testdata` (which ran
// the same builds once into .cache/tour); here builds run with --offline
// from that cache, so the test touches no network. `basalt qemu` runs until
// the device is ready.
func TestE2EReadmeTour(t *testing.T) {
	repo, _ := filepath.Abs("../../..")
	prepared := filepath.Join(repo, ".cache", "tour")
	lock := filepath.Join(prepared, "examples", "retail-store", "basalt.lock")
	testutil.NeedFile(t, lock, "make testdata (it fetches the tour's Debian inputs)")

	bin := filepath.Join(t.TempDir(), "basalt")
	build := exec.Command("go", "build", "-o", bin, "./cmd/basalt")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	work := t.TempDir()
	copyTree(t, filepath.Join(repo, "examples"), filepath.Join(work, "examples"))
	// The default spec keeps no lock (it has no directory of its own): its
	// offline build resolves from the cached, signed indexes.
	copyTree(t, lock, filepath.Join(work, "examples", "retail-store", "basalt.lock"))
	// k3s is basalt's test orchestrator (initsys/k3s/testdata), not k3s.
	orch := filepath.Join(repo, ".cache", "test-orchestrator")
	testutil.NeedFile(t, filepath.Join(orch, "k3s"), "make testdata (it builds the test orchestrator)")
	env := append(os.Environ(), "BASALT_CACHE_DIR="+filepath.Join(repo, ".cache", "basalt"), "BASALT_K3S="+orch)

	ran := 0
	for _, line := range readmeCommands(t) {
		args := strings.Fields(line)
		if args[0] != "basalt" {
			continue
		}
		ran++
		args = args[1:]
		if args[0] == "build" {
			args = append(args, "--offline")
		}
		if args[0] == "qemu" {
			// Stopped as if the terminal closed (Ctrl-C takes the same path).
			bootUntilReady(t, bin, work, env, args, syscall.SIGHUP)
			continue
		}
		cmd := exec.Command(bin, args...)
		cmd.Dir, cmd.Env = work, env
		out, err := cmd.CombinedOutput()
		t.Logf("$ %s\n%s", line, out)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if args[0] == "inspect" && len(args) == 2 && !strings.Contains(string(out), "config:\n  a:"+contract.BakedConfig) && !strings.Contains(string(out), "config:\n  none (") {
			t.Errorf("inspect's config: heading lists nothing and does not say none:\n%s", out)
		}
		if args[0] == "config" && args[1] == "show" {
			for _, want := range []string{"hostname: store-0042 # basalt/config.d/50-store-0042.yaml:5", "timezone: Europe/Paris # baked:" + contract.BakedConfig} {
				if !strings.Contains(string(out), want) {
					t.Errorf("config show lacks %q (drop-in over the baked default):\n%s", want, out)
				}
			}
		}
	}
	if ran < 10 {
		t.Fatalf("only %d basalt commands found in README.md", ran)
	}
	// The default image bakes no config: show has nothing from the root to merge.
	cmd := exec.Command(bin, "config", "show", "out/basalt-demo-0.1.0-qemu-x86_64.img")
	cmd.Dir, cmd.Env = work, env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("config show of the default image: %v\n%s", err, out)
	}
}

// bootUntilReady runs `basalt qemu ...` until the ready marker, then stops it
// with sig as a user would (Ctrl-C, or the terminal closing: SIGHUP). Every
// boot step must succeed, and basalt qemu must leave no temporary directory.
func bootUntilReady(t *testing.T, bin, dir string, env, args []string, sig os.Signal) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tmp := t.TempDir()
	cmd := exec.CommandContext(ctx, bin, append(args, "--snapshot")...)
	cmd.Dir, cmd.Env = dir, append(env, "TMPDIR="+tmp)
	cmd.Cancel = func() error { return cmd.Process.Signal(sig) }
	cmd.WaitDelay = time.Minute
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Stop QEMU, then drain the console so that Wait can return; nothing
	// of basalt qemu (UEFI vars copy, disk overlay) may stay in TMPDIR.
	defer func() {
		cancel()
		io.Copy(io.Discard, out)
		cmd.Wait()
		if left, _ := os.ReadDir(tmp); len(left) > 0 {
			t.Errorf("basalt qemu stopped by %v left %v in TMPDIR", sig, left)
		}
	}()
	sc := bufio.NewScanner(out)
	var log strings.Builder
	grown, ready := false, false
	for sc.Scan() {
		l := sc.Text()
		log.WriteString(l + "\n")
		grown = grown || strings.Contains(l, "data filesystem grown")
		if m := failedStep.FindStringSubmatch(l); m != nil && !offlineOK(m[1], l) {
			t.Errorf("boot step %s failed: %s", m[1], l)
		}
		if strings.Contains(l, contract.MarkerReady) {
			if !grown {
				t.Errorf("ready without growing the data filesystem to the 4 GiB disk:\n%s", log.String())
			}
			ready = true
		}
		// After ready, the console's info screen says how to reach the device.
		if ready && strings.Contains(l, "press a key to show this again") {
			info := log.String()[strings.LastIndex(log.String(), contract.MarkerReady):]
			for _, want := range []string{"slot a", "address:  eth0 ", "login:    ssh ops@", "console:  no "} {
				if !strings.Contains(info, want) {
					t.Errorf("the console's info screen lacks %q:\n%s", want, info)
				}
			}
			if t.Failed() {
				t.Logf("console:\n%s", log.String())
			}
			return
		}
	}
	t.Fatalf("basalt %s: no %q before exit or deadline:\n%s", strings.Join(args, " "), contract.MarkerReady, log.String())
}

// failedStep matches the init's line for a failed boot step.
var failedStep = regexp.MustCompile(`basalt: step (\S+) failed`)

// offlineOK reports whether a failed step is one the test network causes by
// design: QEMU's user network runs with restrict=on here (no outside
// address, so no DNS and no NTP); on a user's network the clock step works.
func offlineOK(step, line string) bool {
	return step == "clock" && strings.Contains(line, "no DNS")
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-r", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp %s: %v\n%s", from, err, out)
	}
}
